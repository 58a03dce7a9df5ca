// gyre-chaos: repeated, seeded fault trials against real processes (issue
// 23). Each trial starts one gyre-orchestrator and two gyre-agents on
// loopback, submits a mixed workload (a no-op fan-out of thousands of tasks,
// executions of subprocess tasks that append a line per attempt to a file, a
// task that fails its first attempt and is retried, an evaluator that runs
// one branch and skips the other, a global task two executions share) and,
// while it runs, follows a schedule drawn from the trial's seed: SIGKILL the
// orchestrator and restart it on the same port and data directory, SIGKILL an
// agent and restart it under the same id, SIGSTOP an agent past the lease
// timeout and SIGCONT it. Then it checks the promises of docs/testing.md
// ("Chaos") and prints one line per trial and a summary; it exits 1 when any
// invariant was violated. `scripts/chaos` runs it; ctest runs a short seeded
// version (chaos_short).
//
// Usage: gyre-chaos [--trials=N] [--seed=S] [--noop_tasks=N]
//   [--shell_tasks=N] [--faults=N] [--work_dir=DIR] [--keep]
// Binaries are found under $GYRE_BIN_DIR (the CMake build directory).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/workflow/workflow_parser.h"

namespace gyre::chaos {
namespace {

namespace v1 = ::gyre::v1;
using ::gyre::testing::ChildProcess;

// The lease the trials' orchestrator grants: short, so that a stopped agent
// is declared dead within a trial, and long enough for a loaded machine.
constexpr absl::Duration kLease = absl::Seconds(3);
constexpr int kAgents = 2;

struct Options {
  int trials = 3;
  uint64_t seed = 1;
  int noop_tasks = 2000;
  int shell_tasks = 40;
  int faults = 6;
  // Bazel's test scratch directory when run as a test.
  std::string work_dir = std::getenv("TEST_TMPDIR") != nullptr
                             ? absl::StrCat(std::getenv("TEST_TMPDIR"), "/chaos")
                             : std::string("/tmp/gyre-chaos");
  bool keep = false;
};

std::string Binary(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

bool IsTerminal(v1::ExecutionState state) {
  return state == v1::EXECUTION_SUCCEEDED || state == v1::EXECUTION_FAILED ||
         state == v1::EXECUTION_CANCELLED;
}

bool IsTerminalTask(v1::TaskState state) {
  return state == v1::TASK_SUCCEEDED || state == v1::TASK_FAILED || state == v1::TASK_SKIPPED ||
         state == v1::TASK_CANCELLED || state == v1::TASK_TIMED_OUT;
}

// One trial's processes: the orchestrator on a fixed port and data
// directory, the agents under fixed ids and work directories, so that a
// restart is the same member of the cluster coming back.
class TrialCluster {
 public:
  explicit TrialCluster(std::string root) : root_(std::move(root)) {}

  absl::Status StartOrchestrator() {
    std::vector<std::string> argv = {
        Binary("services/orchestrator/gyre-orchestrator"),
        "--grpc_address=" + (address_.empty() ? std::string("127.0.0.1:0") : address_),
        "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s", "--data_dir=" + root_ + "/data"};
    auto process = ChildProcess::Start(
        argv, {absl::StrCat("GYRE_LEASE_TIMEOUT=", absl::FormatDuration(kLease)),
               "GYRE_HEARTBEAT_INTERVAL=300ms", "GYRE_SNAPSHOT_EVERY_RECORDS=500"});
    if (!process.ok()) return process.status();
    auto serving = (*process)->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
        absl::Seconds(60));
    if (!serving.ok()) {
      return absl::InternalError(
          absl::StrCat("orchestrator did not serve: ", (*process)->Output()));
    }
    if (address_.empty()) {
      address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
      stub_ = v1::OrchestratorService::NewStub(
          grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    orchestrator_ = *std::move(process);
    return absl::OkStatus();
  }

  absl::Status StartAgent(int index) {
    const std::string id = absl::StrCat("chaos-agent-", index);
    auto process =
        ChildProcess::Start({Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
                             "--metrics_address=127.0.0.1:0", "--orchestrator_address=" + address_,
                             "--slots=4", "--work_dir=" + root_ + "/" + id, "--shutdown_grace=1s",
                             // Trials run as root in CI containers.
                             "--allow_root_tasks=true"},
                            {"GYRE_NAME=" + id, "GYRE_ID=" + id});
    if (!process.ok()) return process.status();
    auto registered = (*process)->WaitForLine(
        [](const std::string& line) {
          return absl::StrContains(line, "registered with the orchestrator");
        },
        absl::Seconds(60));
    if (!registered.ok()) {
      return absl::InternalError(
          absl::StrCat("agent ", id, " did not register: ", (*process)->Output()));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    agents_[index] = *std::move(process);
    return absl::OkStatus();
  }

  // SIGKILL and a restart on the same port and directory.
  absl::Status KillOrchestrator() {
    std::unique_ptr<ChildProcess> old;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      old = std::move(orchestrator_);
    }
    // Null when the last restart failed (already counted as a violation):
    // try to bring it back rather than crash the trial.
    if (old != nullptr) {
      old->Signal(SIGKILL);
      old->WaitForExit(absl::Seconds(30));
      dead_output_ += old->Output();
    }
    return Restarted([this] { return StartOrchestrator(); });
  }

  // A restart on a loaded machine may fail once (a slow start past its
  // wait); three tries, the last failure reported with its output.
  static absl::Status Restarted(const std::function<absl::Status()>& start) {
    absl::Status status;
    for (int attempt = 0; attempt < 3; ++attempt) {
      status = start();
      if (status.ok()) return status;
      absl::SleepFor(absl::Seconds(1));
    }
    return status;
  }

  absl::Status KillAgent(int index) {
    std::unique_ptr<ChildProcess> old;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      old = std::move(agents_[index]);
    }
    if (old != nullptr) {
      old->Signal(SIGKILL);
      old->WaitForExit(absl::Seconds(30));
    }
    return Restarted([this, index] { return StartAgent(index); });
  }

  // SIGSTOP past the lease (the orchestrator must declare the agent dead
  // and requeue its attempts), then SIGCONT: the agent's late results must
  // not count twice.
  void StopAgent(int index, absl::Duration stopped_for) {
    ChildProcess* agent;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      agent = agents_[index].get();
    }
    if (agent == nullptr) return;  // its restart failed (a violation already)
    agent->Signal(SIGSTOP);
    absl::SleepFor(stopped_for);
    agent->Signal(SIGCONT);
  }

  v1::OrchestratorService::Stub& stub() { return *stub_; }
  const std::string& root() const { return root_; }

  // Everything the orchestrators of this trial logged (the live one last).
  std::string OrchestratorOutput() {
    std::lock_guard<std::mutex> lock(mutex_);
    return dead_output_ + (orchestrator_ != nullptr ? orchestrator_->Output() : "");
  }

 private:
  std::string root_;
  std::string address_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
  std::mutex mutex_;
  std::unique_ptr<ChildProcess> orchestrator_;
  std::map<int, std::unique_ptr<ChildProcess>> agents_;
  std::string dead_output_;
};

// What a client sees of one execution's events: follows WatchBatches and,
// when the stream breaks (an orchestrator restart), resumes with the last
// sequence it saw, as any client must. Records each event in order.
class Watcher {
 public:
  Watcher(v1::OrchestratorService::Stub& stub, std::string execution, absl::Time deadline)
      : stub_(stub), execution_(std::move(execution)), deadline_(deadline) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Watcher() {
    if (thread_.joinable()) thread_.join();
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  const std::vector<v1::Event>& events() const { return events_; }
  const std::vector<std::string>& problems() const { return problems_; }
  bool finished() const { return finished_; }
  int reconnects() const { return reconnects_; }

 private:
  void Run() {
    int64_t next_sequence = 1;
    while (absl::Now() < deadline_) {
      grpc::ClientContext call;
      call.set_deadline(absl::ToChronoTime(deadline_));
      call.set_wait_for_ready(true);
      v1::WatchRequest request;
      request.set_execution(execution_);
      request.set_from_sequence(next_sequence);
      auto reader = stub_.WatchBatches(&call, request);
      v1::EventBatch batch;
      while (reader->Read(&batch)) {
        for (const v1::Event& event : batch.events()) {
          if (event.sequence() != next_sequence) {
            problems_.push_back(absl::StrCat(execution_, ": watcher expected sequence ",
                                             next_sequence, ", got ", event.sequence(),
                                             " (a gap or a repeat after a resume)"));
          }
          next_sequence = event.sequence() + 1;
          events_.push_back(event);
        }
      }
      const grpc::Status status = reader->Finish();
      if (status.ok()) {
        finished_ = true;
        return;
      }
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
          status.error_code() != grpc::StatusCode::CANCELLED) {
        problems_.push_back(absl::StrCat(execution_, ": watch ended with ", status.error_code(),
                                         " ", status.error_message()));
        if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) return;
      }
      ++reconnects_;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  v1::OrchestratorService::Stub& stub_;
  const std::string execution_;
  const absl::Time deadline_;
  std::thread thread_;
  std::vector<v1::Event> events_;
  std::vector<std::string> problems_;
  bool finished_ = false;
  int reconnects_ = 0;
};

// One submitted execution and what the checks expect of it.
struct Submitted {
  std::string kind;  // "noop", "shell", "global"
  std::string request_id;
  std::string name;  // as acknowledged
  v1::StartExecutionRequest request;
};

struct TrialResult {
  int kills = 0;  // orchestrator and agents
  int orchestrator_kills = 0;
  int stops = 0;
  int tasks = 0;
  int reconnects = 0;
  std::vector<std::string> violations;
};

std::string NoopYaml(int tasks) {
  std::string yaml = "name: chaos-noop\ntasks:\n";
  for (int i = 0; i < tasks; ++i) absl::StrAppend(&yaml, "  - {id: n", i, ", builtin: noop}\n");
  return yaml;
}

// Subprocess tasks append "execution task attempt" to `side_file` per
// attempt; a flaky task fails its first attempt; an evaluator runs "chosen"
// and skips "skipped"; a global task is shared with the other executions.
std::string ShellYaml(int tasks, const std::string& side_file) {
  const std::string append =
      absl::StrCat("echo \\\"$GYRE_EXECUTION_ID $GYRE_TASK_ID $GYRE_ATTEMPT\\\" >> ", side_file);
  std::string yaml = "name: chaos-shell\ntasks:\n";
  absl::StrAppend(&yaml, "  - {id: shared, global: true, command: [sh, -c, \"", append,
                  "; sleep 0.2\"]}\n");
  for (int i = 0; i < tasks; ++i) {
    absl::StrAppend(&yaml, "  - {id: s", i, ", depends_on: [", i == 0 ? "shared" : "s0",
                    "], command: [sh, -c, \"", append, "; sleep 0.", i % 5, "\"]}\n");
  }
  absl::StrAppend(&yaml,
                  "  - {id: flaky, depends_on: [s0], retries: {count: 3, "
                  "initial_backoff: 100ms}, command: [sh, -c, \"",
                  append, "; test $GYRE_ATTEMPT -gt 1\"]}\n");
  absl::StrAppend(
      &yaml, "  - {id: judge, evaluator: true, depends_on: [flaky], command: [sh, -c, \"", append,
      "; echo '{\\\"run\\\": [\\\"chosen\\\"], \\\"skip\\\": "
      "[\\\"skipped\\\"]}'\"]}\n");
  absl::StrAppend(&yaml, "  - {id: chosen, depends_on: [judge], command: [sh, -c, \"", append,
                  "\"]}\n");
  absl::StrAppend(&yaml, "  - {id: skipped, depends_on: [judge], command: [sh, -c, \"", append,
                  "\"]}\n");
  return yaml;
}

// StartExecution until acknowledged (the orchestrator may be down or
// restarting); the request_id makes a retry the same execution.
absl::StatusOr<std::string> StartAcknowledged(v1::OrchestratorService::Stub& stub,
                                              const v1::StartExecutionRequest& request,
                                              absl::Time deadline) {
  std::string last_error;
  while (absl::Now() < deadline) {
    grpc::ClientContext call;
    call.set_wait_for_ready(true);
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::Execution execution;
    const grpc::Status status = stub.StartExecution(&call, request, &execution);
    if (status.ok()) return execution.name();
    last_error = status.error_message();
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return absl::InternalError(absl::StrCat("StartExecution refused: ", last_error));
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("StartExecution never acknowledged: ", last_error));
}

template <typename Call>
grpc::Status Retrying(absl::Time deadline, Call call) {
  grpc::Status status;
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    status = call(context);
    if (status.ok() || status.error_code() != grpc::StatusCode::UNAVAILABLE) return status;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return status;
}

std::vector<v1::TaskRun> AllTaskRuns(v1::OrchestratorService::Stub& stub,
                                     const std::string& execution, absl::Time deadline,
                                     grpc::Status* status) {
  std::vector<v1::TaskRun> runs;
  std::string token;
  do {
    v1::ListTaskRunsRequest request;
    request.set_parent(execution);
    request.set_page_size(1000);
    request.set_page_token(token);
    v1::ListTaskRunsResponse response;
    *status = Retrying(deadline, [&](grpc::ClientContext& context) {
      return stub.ListTaskRuns(&context, request, &response);
    });
    if (!status->ok()) return runs;
    for (v1::TaskRun& run : *response.mutable_task_runs()) runs.push_back(std::move(run));
    token = response.next_page_token();
  } while (!token.empty());
  return runs;
}

// An execution's id: its name's last part (the side file may hold either).
std::string ExecutionId(const std::string& name) {
  return std::string(name.substr(name.rfind('/') + 1));
}

// Per execution, task and attempt: how many lines the subprocess tasks
// appended.
std::map<std::string, std::map<std::string, std::map<int64_t, int>>> ReadSideEffects(
    const std::string& path) {
  std::map<std::string, std::map<std::string, std::map<int64_t, int>>> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    int64_t attempt = 0;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[2], &attempt)) continue;
    ++lines[ExecutionId(parts[0])][parts[1]][attempt];
  }
  return lines;
}

// Checks one execution's final state against the store, the side effects
// and its watcher's events.
void CheckExecution(
    const Submitted& submitted, const v1::Execution& execution,
    const std::vector<v1::TaskRun>& runs,
    const std::map<std::string, std::map<std::string, std::map<int64_t, int>>>& side_effects,
    const Watcher& watcher, TrialResult& result) {
  auto violation = [&](const std::string& what) {
    result.violations.push_back(absl::StrCat(submitted.name, ": ", what));
  };
  if (execution.state() != v1::EXECUTION_SUCCEEDED) {
    violation(absl::StrCat("ended ", v1::ExecutionState_Name(execution.state()), " (",
                           execution.reason(), "), expected SUCCEEDED"));
  }
  const auto effects = side_effects.find(ExecutionId(submitted.name));
  for (const v1::TaskRun& run : runs) {
    int successes = 0;
    int64_t succeeded_attempt = 0;
    std::set<int64_t> numbers;
    for (const v1::TaskAttempt& attempt : run.attempts()) {
      if (!numbers.insert(attempt.attempt()).second) {
        violation(
            absl::StrCat("task ", run.task_id(), " lists attempt ", attempt.attempt(), " twice"));
      }
      if (attempt.outcome() == v1::ATTEMPT_SUCCEEDED) {
        ++successes;
        succeeded_attempt = attempt.attempt();
      }
    }
    const bool skipped = run.task_id() == "skipped";
    const bool shared_elsewhere = !run.satisfied_by().empty();
    if (skipped) {
      if (run.state() != v1::TASK_SKIPPED) {
        violation(
            absl::StrCat("task skipped by the evaluator is ", v1::TaskState_Name(run.state())));
      }
      continue;
    }
    if (run.state() != v1::TASK_SUCCEEDED) {
      violation(absl::StrCat("task ", run.task_id(), " is ", v1::TaskState_Name(run.state()), " (",
                             run.reason(), ")"));
      continue;
    }
    if (shared_elsewhere) continue;  // the global task's run is checked where it ran
    if (successes != 1) {
      violation(absl::StrCat("task ", run.task_id(), " has ", successes,
                             " succeeded attempts recorded; exactly one expected"));
    }
    if (run.task_id() == "flaky" && succeeded_attempt < 2) {
      violation("task flaky succeeded on its first attempt, which always fails");
    }
    if (submitted.kind != "shell") continue;
    // The side file: the recorded success came from a run that happened,
    // and no attempt number ran twice.
    if (effects == side_effects.end() || !effects->second.contains(run.task_id()) ||
        !effects->second.at(run.task_id()).contains(succeeded_attempt)) {
      violation(absl::StrCat("task ", run.task_id(), " recorded attempt ", succeeded_attempt,
                             " as succeeded, but that attempt never ran"));
    } else {
      for (const auto& [attempt, count] : effects->second.at(run.task_id())) {
        if (count > 1) {
          violation(
              absl::StrCat("task ", run.task_id(), " attempt ", attempt, " ran ", count, " times"));
        }
      }
    }
  }
  // The watcher: gap-free (checked as it read), it saw the end, and what it
  // saw last of each task and of the execution is the final state.
  for (const std::string& problem : watcher.problems()) violation(problem);
  if (!watcher.finished()) violation("the watcher never saw the stream end");
  std::map<std::string, v1::TaskState> last_task_state;
  std::set<std::string> succeeded;
  v1::ExecutionState last_state = v1::EXECUTION_STATE_UNSPECIFIED;
  for (const v1::Event& event : watcher.events()) {
    if (event.has_execution_snapshot()) {
      if (IsTerminal(last_state) && event.execution_snapshot().state() != last_state) {
        violation(absl::StrCat("event ", event.sequence(), " moves the ended execution from ",
                               v1::ExecutionState_Name(last_state), " to ",
                               v1::ExecutionState_Name(event.execution_snapshot().state())));
      }
      last_state = event.execution_snapshot().state();
    }
    if (event.has_task_run()) {
      const v1::TaskRun& run = event.task_run();
      if (succeeded.contains(run.task_id()) && run.state() != v1::TASK_SUCCEEDED) {
        violation(absl::StrCat("event ", event.sequence(), " moves succeeded task ", run.task_id(),
                               " to ", v1::TaskState_Name(run.state())));
      }
      if (run.state() == v1::TASK_SUCCEEDED) succeeded.insert(run.task_id());
      last_task_state[run.task_id()] = run.state();
    }
  }
  if (last_state != execution.state()) {
    violation(absl::StrCat("the watcher's last execution state is ",
                           v1::ExecutionState_Name(last_state), ", the store's ",
                           v1::ExecutionState_Name(execution.state())));
  }
  for (const v1::TaskRun& run : runs) {
    const auto seen = last_task_state.find(run.task_id());
    if (seen != last_task_state.end() && IsTerminalTask(run.state()) &&
        seen->second != run.state()) {
      violation(absl::StrCat("the watcher last saw task ", run.task_id(), " ",
                             v1::TaskState_Name(seen->second), ", the store has ",
                             v1::TaskState_Name(run.state())));
    }
  }
}

TrialResult RunTrial(const Options& options, uint64_t seed) {
  TrialResult result;
  std::mt19937_64 random(seed);
  const std::string root = absl::StrCat(options.work_dir, "/trial-", seed);
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  const std::string side_file = root + "/side-effects.txt";
  TrialCluster cluster(root);
  if (absl::Status started = cluster.StartOrchestrator(); !started.ok()) {
    result.violations.push_back(absl::StrCat("setup: ", started.message()));
    return result;
  }
  for (int i = 0; i < kAgents; ++i) {
    if (absl::Status started = cluster.StartAgent(i); !started.ok()) {
      result.violations.push_back(absl::StrCat("setup: ", started.message()));
      return result;
    }
  }

  // The workload: one no-op fan-out and three subprocess executions.
  std::vector<Submitted> submitted;
  auto add = [&](const std::string& kind, const std::string& yaml) {
    absl::StatusOr<v1::WorkflowDefinition> definition =
        workflow::ParseWorkflowYaml(yaml, kind + ".yaml");
    if (!definition.ok()) {
      result.violations.push_back(absl::StrCat("workload: ", definition.status().ToString()));
      return;
    }
    Submitted one;
    one.kind = kind;
    one.request_id = absl::StrCat("chaos-", seed, "-", submitted.size());
    *one.request.mutable_definition() = *definition;
    one.request.set_request_id(one.request_id);
    submitted.push_back(std::move(one));
  };
  add("noop", NoopYaml(options.noop_tasks));
  for (int i = 0; i < 3; ++i) add("shell", ShellYaml(options.shell_tasks, side_file));
  if (!result.violations.empty()) return result;

  // The fault schedule, drawn from the seed: the workload is submitted
  // while it runs.
  std::atomic<bool> faults_done = false;
  std::thread faults([&] {
    for (int i = 0; i < options.faults; ++i) {
      absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(200, 1500)(random)));
      const int kind = std::uniform_int_distribution<int>(0, 9)(random);
      const int agent = std::uniform_int_distribution<int>(0, kAgents - 1)(random);
      absl::Status status;
      if (kind < 4) {
        status = cluster.KillOrchestrator();
        ++result.kills;
        ++result.orchestrator_kills;
      } else if (kind < 7) {
        status = cluster.KillAgent(agent);
        ++result.kills;
      } else {
        cluster.StopAgent(agent, kLease + absl::Milliseconds(1500));
        ++result.stops;
      }
      if (!status.ok()) result.violations.push_back(absl::StrCat("fault: ", status.message()));
    }
    faults_done = true;
  });

  const absl::Time deadline = absl::Now() + absl::Seconds(300);
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (Submitted& one : submitted) {
    absl::StatusOr<std::string> name = StartAcknowledged(cluster.stub(), one.request, deadline);
    if (!name.ok()) {
      result.violations.push_back(absl::StrCat(one.request_id, ": ", name.status().message()));
      continue;
    }
    one.name = *name;
    watchers.push_back(std::make_unique<Watcher>(cluster.stub(), one.name, deadline));
    absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(0, 800)(random)));
  }
  faults.join();
  for (auto& watcher : watchers) watcher->Join();

  // Every acknowledged execution completes; re-sending its request_id is
  // the same execution.
  std::map<std::string, v1::Execution> final_state;
  for (const Submitted& one : submitted) {
    if (one.name.empty()) continue;
    v1::Execution execution;
    v1::GetExecutionRequest request;
    request.set_name(one.name);
    while (absl::Now() < deadline) {
      const grpc::Status status = Retrying(deadline, [&](grpc::ClientContext& context) {
        return cluster.stub().GetExecution(&context, request, &execution);
      });
      if (!status.ok()) {
        result.violations.push_back(
            absl::StrCat(one.name, ": GetExecution: ", status.error_message()));
        break;
      }
      if (IsTerminal(execution.state())) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    final_state[one.name] = execution;
    absl::StatusOr<std::string> again = StartAcknowledged(cluster.stub(), one.request, deadline);
    if (!again.ok() || *again != one.name) {
      result.violations.push_back(
          absl::StrCat(one.name, ": re-sending request_id ", one.request_id, " gave ",
                       again.ok() ? *again : std::string(again.status().message())));
    }
  }

  const auto side_effects = ReadSideEffects(side_file);
  std::map<std::string, std::vector<v1::TaskRun>> final_runs;
  for (size_t i = 0; i < submitted.size(); ++i) {
    const Submitted& one = submitted[i];
    if (one.name.empty()) continue;
    grpc::Status status;
    std::vector<v1::TaskRun> runs = AllTaskRuns(cluster.stub(), one.name, deadline, &status);
    if (!status.ok()) {
      result.violations.push_back(
          absl::StrCat(one.name, ": ListTaskRuns: ", status.error_message()));
      continue;
    }
    result.tasks += static_cast<int>(runs.size());
    const Watcher* watcher = nullptr;
    for (const auto& w : watchers) {
      if (!w->events().empty() && w->events().front().execution() == one.name) watcher = w.get();
    }
    if (watcher == nullptr) {
      result.violations.push_back(absl::StrCat(one.name, ": its watcher saw no event"));
      continue;
    }
    result.reconnects += watcher->reconnects();
    CheckExecution(one, final_state[one.name], runs, side_effects, *watcher, result);
    final_runs[one.name] = std::move(runs);
  }
  // The global task ran once for all three shell executions.
  int shared_runs = 0;
  for (const auto& [name, runs] : final_runs) {
    for (const v1::TaskRun& run : runs) {
      if (run.task_id() == "shared" && run.satisfied_by().empty()) ++shared_runs;
    }
  }
  if (shared_runs != 1) {
    result.violations.push_back(
        absl::StrCat("the global task ran in ", shared_runs, " executions; one expected"));
  }

  // A last SIGKILL on a quiet system: what recovers is what was seen.
  if (absl::Status killed = cluster.KillOrchestrator(); !killed.ok()) {
    result.violations.push_back(absl::StrCat("final restart: ", killed.message()));
  } else {
    for (const auto& [name, before] : final_state) {
      v1::Execution after;
      v1::GetExecutionRequest request;
      request.set_name(name);
      const grpc::Status status = Retrying(deadline, [&](grpc::ClientContext& context) {
        return cluster.stub().GetExecution(&context, request, &after);
      });
      if (!status.ok() || after.state() != before.state() ||
          after.last_sequence() != before.last_sequence()) {
        result.violations.push_back(absl::StrCat(
            name, ": after a restart on a quiet system the execution is ",
            v1::ExecutionState_Name(after.state()), " at sequence ", after.last_sequence(),
            "; before it ", v1::ExecutionState_Name(before.state()), " at ", before.last_sequence(),
            " ", status.error_message()));
      }
    }
  }
  if (!result.violations.empty()) {
    std::ofstream(root + "/orchestrator.log") << cluster.OrchestratorOutput();
  } else if (!options.keep) {
    std::filesystem::remove_all(root);
  }
  return result;
}

bool ParseFlag(const std::string& arg, const std::string& name, std::string* value) {
  const std::string prefix = "--" + name + "=";
  if (!absl::StartsWith(arg, prefix)) return false;
  *value = arg.substr(prefix.size());
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string value;
    bool ok = true;
    if (ParseFlag(arg, "trials", &value)) {
      ok = absl::SimpleAtoi(value, &options.trials);
    } else if (ParseFlag(arg, "seed", &value)) {
      ok = absl::SimpleAtoi(value, &options.seed);
    } else if (ParseFlag(arg, "noop_tasks", &value)) {
      ok = absl::SimpleAtoi(value, &options.noop_tasks);
    } else if (ParseFlag(arg, "shell_tasks", &value)) {
      ok = absl::SimpleAtoi(value, &options.shell_tasks);
    } else if (ParseFlag(arg, "faults", &value)) {
      ok = absl::SimpleAtoi(value, &options.faults);
    } else if (ParseFlag(arg, "work_dir", &value)) {
      options.work_dir = value;
    } else if (arg == "--keep") {
      options.keep = true;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "gyre-chaos: bad argument %s (see the usage in tests/chaos/chaos_main.cc)\n",
                   arg.c_str());
      return 2;
    }
  }
  int kills = 0, orchestrator_kills = 0, stops = 0, violations = 0, failed_trials = 0;
  int64_t tasks = 0;
  const absl::Time start = absl::Now();
  for (int trial = 0; trial < options.trials; ++trial) {
    const uint64_t seed = options.seed + trial;
    const absl::Time trial_start = absl::Now();
    TrialResult result = RunTrial(options, seed);
    kills += result.kills;
    orchestrator_kills += result.orchestrator_kills;
    stops += result.stops;
    tasks += result.tasks;
    violations += static_cast<int>(result.violations.size());
    if (!result.violations.empty()) ++failed_trials;
    std::printf(
        "trial seed=%llu tasks=%d kills=%d (orchestrator %d) stops=%d watcher_resumes=%d "
        "violations=%zu %s\n",
        static_cast<unsigned long long>(seed), result.tasks, result.kills,
        result.orchestrator_kills, result.stops, result.reconnects, result.violations.size(),
        absl::FormatDuration(absl::Trunc(absl::Now() - trial_start, absl::Seconds(1))).c_str());
    for (const std::string& violation : result.violations) {
      std::printf("  VIOLATION seed=%llu: %s\n", static_cast<unsigned long long>(seed),
                  violation.c_str());
    }
    std::fflush(stdout);
  }
  std::printf(
      "chaos: trials=%d tasks=%lld kills=%d (orchestrator %d) stops=%d violations=%d (failed "
      "trials %d) in %s\n",
      options.trials, static_cast<long long>(tasks), kills, orchestrator_kills, stops, violations,
      failed_trials,
      absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Seconds(1))).c_str());
  return violations == 0 ? 0 : 1;
}

}  // namespace
}  // namespace gyre::chaos

int main(int argc, char** argv) { return gyre::chaos::Main(argc, argv); }
