// End-to-end: gyre-orchestrator and gyre-agent run as separate processes and
// talk real gRPC over loopback; workflows are submitted and watched as a
// client would.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "gyre/v1/agent_service.grpc.pb.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "libs/workflow/workflow_parser.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// Runs the gyre CLI against the orchestrator at `address` to its end: its
// exit code (-1 if it did not exit) and its output, stdout and stderr
// together.
std::pair<int, std::string> RunGyre(const std::string& address, std::vector<std::string> args) {
  args.insert(args.begin(), Binary("cmd/gyre/gyre"));
  args.push_back("--orchestrator=" + address);
  auto process = ChildProcess::Start(args);
  if (!process.ok()) return {-1, std::string(process.status().message())};
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(30));
  (void)(*process)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  return {status.has_value() && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1,
          (*process)->Output()};
}

// The line of `text` that starts with `start`; empty if none does.
std::string LineStartingWith(const std::string& text, const std::string& start) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, start)) return std::string(line);
  }
  return "";
}

TEST_F(Cluster, DiamondDagPassesContextAlongEdges) {
  StartAgent("a1");
  const std::string exec = Start(R"(
name: diamond
context: {GREETING: hello}
tasks:
  - {id: top, shell: true, command: 'echo "{\"FROM_TOP\": \"$GREETING-top\"}" > "$GYRE_OUTPUT"', outputs: [FROM_TOP]}
  - {id: left, shell: true, depends_on: [top], command: 'echo "{\"LEFT\": \"l\"}" > "$GYRE_OUTPUT"', outputs: [LEFT]}
  - {id: right, shell: true, depends_on: [top], command: 'echo "{\"RIGHT\": \"r\"}" > "$GYRE_OUTPUT"', outputs: [RIGHT]}
  - {id: bottom, shell: true, depends_on: [left, right], command: 'echo "$FROM_TOP $LEFT $RIGHT $GREETING"'}
)");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Logs(exec, "bottom"), "hello-top l r hello\n");
  const v1::TaskRun bottom = Task(exec, "bottom");
  ASSERT_EQ(bottom.attempts_size(), 1);
  EXPECT_EQ(bottom.attempts(0).exit_code(), 0);
  EXPECT_GT(bottom.attempts(0).peak_rss_bytes(), 0);
}

TEST_F(Cluster, FailedTaskIsRetriedWithBackoffThenSucceeds) {
  StartAgent("a1");
  const std::string exec = Start(R"(
name: retry
tasks:
  - id: flaky
    shell: true
    command: '[ "$GYRE_ATTEMPT" -ge 3 ] || exit 7'
    retries: {count: 3, initial_backoff: 50ms}
)");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun run = Task(exec, "flaky");
  ASSERT_EQ(run.attempts_size(), 3);
  EXPECT_EQ(run.attempts(0).exit_code(), 7);
  EXPECT_EQ(run.attempts(0).error(), "exit code 7");
  EXPECT_EQ(run.attempts(2).outcome(), v1::ATTEMPT_SUCCEEDED);
}

TEST_F(Cluster, TimeoutKillsTheTask) {
  StartAgent("a1");
  const absl::Time start = absl::Now();
  const std::string exec = Start(R"(
name: timeout
tasks:
  - {id: slow, command: [sleep, "60"], timeout: 300ms}
  - {id: after, builtin: noop, depends_on: [slow]}
)");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_FAILED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  const v1::TaskRun slow = Task(exec, "slow");
  EXPECT_EQ(slow.state(), v1::TASK_TIMED_OUT);
  EXPECT_EQ(slow.attempts(0).signal(), SIGTERM);
  EXPECT_EQ(Task(exec, "after").state(), v1::TASK_SKIPPED);
}

TEST_F(Cluster, EvaluatorChoosesTheBranch) {
  StartAgent("a1");
  const std::string exec = Start(R"(
name: branch
tasks:
  - id: judge
    evaluator: true
    shell: true
    command: |
      echo '{"run": ["good"], "skip": ["bad"]}'
  - {id: good, builtin: noop, depends_on: [judge]}
  - {id: bad, builtin: noop, depends_on: [judge]}
)");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Task(exec, "good").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(exec, "bad").state(), v1::TASK_SKIPPED);
}

TEST_F(Cluster, TargetsPullInOnlyTheirDependencies) {
  StartAgent("a1");
  absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(R"(
name: outcome
tasks:
  - {id: raw, builtin: noop}
  - {id: clean, builtin: noop, depends_on: [raw]}
  - {id: report, builtin: noop, depends_on: [clean]}
  - {id: unrelated, command: ["false"]}
)",
                                                                           "outcome.yaml");
  ASSERT_TRUE(def.ok());
  v1::StartExecutionRequest request;
  *request.mutable_definition() = *def;
  request.add_targets("report");
  grpc::ClientContext call;
  v1::Execution execution;
  ASSERT_TRUE(stub_->StartExecution(&call, request, &execution).ok());
  EXPECT_EQ(execution.task_counts().total(), 3);
  EXPECT_EQ(Wait(execution.name()), v1::EXECUTION_SUCCEEDED);
}

TEST_F(Cluster, CancelTerminatesRunningTasks) {
  StartAgent("a1");
  const std::string exec = Start(R"(
name: cancel
tasks:
  - {id: long, command: [sleep, "60"]}
  - {id: never, builtin: noop, depends_on: [long]}
)");
  ASSERT_TRUE(AwaitTaskState(exec, "long", v1::TASK_RUNNING));
  v1::Execution cancelled;
  ASSERT_TRUE(Cancel(exec, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::EXECUTION_CANCELLED);
  EXPECT_EQ(Task(exec, "never").state(), v1::TASK_CANCELLED);
  // The agent reports the terminated attempt.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline &&
         Task(exec, "long").attempts(0).outcome() != v1::ATTEMPT_CANCELLED) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Task(exec, "long").attempts(0).outcome(), v1::ATTEMPT_CANCELLED);
}

TEST_F(Cluster, PauseHoldsNewWorkUntilResumed) {
  StartAgent("a1");
  const std::string exec = Start(R"(
name: pause
tasks:
  - {id: first, command: [sleep, "0.5"]}
  - {id: second, builtin: noop, depends_on: [first]}
)");
  ASSERT_TRUE(AwaitTaskState(exec, "first", v1::TASK_RUNNING));
  ASSERT_TRUE(Pause(exec).ok());
  ASSERT_TRUE(AwaitTaskState(exec, "first", v1::TASK_SUCCEEDED));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Task(exec, "second").state(), v1::TASK_READY) << "no lease while paused";
  ASSERT_TRUE(Resume(exec).ok());
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
}

// An agent killed (kill -9) again and again, at seeded moments while its
// tasks run, leaves no working directory and no task cgroup behind: the
// next agent to start removes what the dead ones left.
TEST_F(Cluster, AnAgentKilledAgainAndAgainLeavesNoDirectoriesOrCgroupsBehind) {
  agent_killed_ = true;
  const std::string root = root_ + "/phoenix";  // StartAgent's work_dir
  std::string yaml = "name: crashes\ntasks:\n";
  for (int i = 0; i < 16; ++i) {
    absl::StrAppend(&yaml, "  - {id: t", i,
                    ", command: [sh, -c, \"sleep 0.3\"], resources: {memory: 64Mi}}\n");
  }
  std::mt19937 random(20261205);
  for (int trial = 0; trial < 4; ++trial) {
    const int delay_ms = std::uniform_int_distribution<int>(20, 250)(random);
    SCOPED_TRACE(absl::StrCat("trial ", trial, ", killed after ", delay_ms, " ms"));
    ChildProcess* agent = StartAgent("phoenix", 8);
    const std::string exec = Start(yaml);
    ASSERT_TRUE(AwaitTaskState(exec, "t0", v1::TASK_RUNNING));
    absl::SleepFor(absl::Milliseconds(delay_ms));
    agent->Signal(SIGKILL);
    ASSERT_TRUE(agent->WaitForExit(absl::Seconds(10)).has_value());
    (void)Cancel(exec);  // its lost tasks are not for the next agent
  }
  // The killed agents' tasks (their own sessions) end on their own.
  absl::SleepFor(absl::Milliseconds(500));
  ChildProcess* last = StartAgent("phoenix", 8);
  EXPECT_EQ(Wait(Start(yaml)), v1::EXECUTION_SUCCEEDED);
  std::vector<std::string> slots;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".slots-")) slots.push_back(name);
  }
  EXPECT_EQ(slots.size(), 1u) << absl::StrJoin(slots, ", ") << "\n" << last->Output();
  // Where the task cgroups go, as the agent says at start: "cgroup v1
  // memory+cpu (BASE); ..." or "cgroup v2 (BASE)". Any agent starting
  // meanwhile (other tests run beside this one) may have removed the dead
  // ones: none may be left that nobody holds.
  const std::string output = last->Output();
  const size_t enforced = output.find("tasks' declared memory and CPU are enforced");
  if (enforced == std::string::npos) return;  // no cgroups here: nothing to leave
  const size_t open = output.find('(', enforced);
  const size_t close = output.find(')', open);
  ASSERT_NE(close, std::string::npos) << output;
  const std::string base = output.substr(open + 1, close - open - 1);
  std::vector<std::string> stale;
  for (const auto& entry : std::filesystem::directory_iterator(base)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "gyre-phoenix-")) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) stale.push_back(name);
    if (fd >= 0) ::close(fd);
  }
  EXPECT_TRUE(stale.empty()) << "left by the killed agents: " << absl::StrJoin(stale, ", ");
}

TEST_F(Cluster, TaskOfAKilledAgentRunsAgainElsewhere) {
  ChildProcess* doomed = StartAgent("doomed", 1);
  const std::string exec = Start(R"(
name: failover
tasks:
  - {id: work, command: [sh, -c, "sleep 1; echo done"]}
)");
  ASSERT_TRUE(AwaitTaskState(exec, "work", v1::TASK_RUNNING));
  // A follower is told of the loss, with the attempt and the agent.
  auto watch =
      ChildProcess::Start({Binary("cmd/gyre/gyre"), "watch", exec, "--orchestrator=" + address_});
  ASSERT_TRUE(watch.ok()) << watch.status();
  agent_killed_ = true;
  doomed->Signal(SIGKILL);
  ASSERT_TRUE(doomed->WaitForExit(absl::Seconds(10)).has_value());
  StartAgent("survivor", 1);
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  ASSERT_TRUE((*watch)->WaitForExit(absl::Seconds(30)).has_value()) << (*watch)->Output();
  (void)(*watch)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  EXPECT_TRUE(absl::StrContains((*watch)->Output(),
                                "ready (re-queued: its agent was lost (attempt 1: agent doomed"))
      << (*watch)->Output();
  const v1::TaskRun run = Task(exec, "work");
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_TRUE(absl::StartsWith(run.attempts(0).agent(), "agents/doomed"));
  EXPECT_EQ(run.attempts(1).outcome(), v1::ATTEMPT_SUCCEEDED);
  EXPECT_TRUE(absl::StartsWith(run.attempts(1).agent(), "agents/survivor"));
  EXPECT_EQ(Logs(exec, "work"), "done\n");

  // gyre status shows every attempt under the task: the lost one with its
  // agent, when it started and why it was lost, then the one that ran.
  const auto [status_code, status] = RunGyre(address_, {"status", exec});
  EXPECT_EQ(status_code, 0) << status;
  const std::string indent(27, ' ');  // the detail lines' column
  // (An agent's id is its name and a random suffix: "doomed-1f2e3d".)
  const std::string lost = LineStartingWith(status, indent + "attempt 1  agent doomed-");
  EXPECT_TRUE(absl::StrContains(lost, "  started ")) << status;
  EXPECT_TRUE(absl::StrContains(lost, "  took ")) << status;
  EXPECT_TRUE(absl::StrContains(lost, "  lost (agent doomed-")) << status;
  const std::string ran = LineStartingWith(status, indent + "attempt 2  agent survivor-");
  EXPECT_TRUE(absl::StrContains(ran, "  started ")) << status;
  EXPECT_TRUE(absl::EndsWith(ran, "  succeeded")) << status;
}

// What the API stores, the CLI shows: gyre workflows list and show.
TEST_F(Cluster, GyreWorkflowsListsAndShowsStoredDefinitions) {
  const auto gyre = [&](std::vector<std::string> args) { return RunGyre(address_, args); };
  const auto [empty_code, empty] = gyre({"workflows", "list"});
  EXPECT_EQ(empty_code, 0) << empty;
  EXPECT_TRUE(absl::StartsWith(empty, "no stored workflows")) << empty;

  absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(
      "name: nightly\n"
      "description: Nightly ETL\n"
      "context: {REGION: eu}\n"
      "tasks:\n"
      "  - {id: extract, command: [echo, x]}\n"
      "  - {id: load, builtin: noop, depends_on: [extract], queue: io}\n",
      "nightly.yaml");
  ASSERT_TRUE(def.ok()) << def.status();
  for (int version = 1; version <= 2; ++version) {
    grpc::ClientContext call;
    v1::CreateWorkflowRequest create;
    *create.mutable_workflow() = *def;
    v1::WorkflowDefinition stored;
    grpc::Status status = version == 1 ? stub_->CreateWorkflow(&call, create, &stored) : [&] {
      v1::UpdateWorkflowRequest update;
      *update.mutable_workflow() = *def;
      return stub_->UpdateWorkflow(&call, update, &stored);
    }();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const auto [list_code, list] = gyre({"workflows", "list"});
  EXPECT_EQ(list_code, 0) << list;
  EXPECT_TRUE(absl::StartsWith(list, "WORKFLOW  VERSION  TASKS  CREATED  ")) << list;
  EXPECT_TRUE(absl::StrContains(list, "\nnightly   2        2      ")) << list;
  EXPECT_TRUE(absl::EndsWith(list, "  Nightly ETL")) << list;

  const auto [show_code, show] = gyre({"workflows", "show", "nightly", "--version=1"});
  EXPECT_EQ(show_code, 0) << show;
  EXPECT_TRUE(absl::StartsWith(show, "workflow   nightly\nversion    1\n")) << show;
  EXPECT_TRUE(absl::StrContains(show, "\ncontext    REGION=eu\ntasks      2\n")) << show;
  EXPECT_TRUE(absl::StrContains(show, "\n  load     extract     io     noop")) << show;
  const auto [missing_code, missing] = gyre({"workflows", "show", "nighty"});
  EXPECT_EQ(missing_code, 2) << missing;
}

TEST_F(Cluster, AgentDrainsRunningTasksOnSigterm) {
  ChildProcess* agent = StartAgent("draining", 1);
  const std::string exec = Start(R"(
name: drain
tasks:
  - {id: work, command: [sh, -c, "sleep 0.5; echo finished"]}
)");
  ASSERT_TRUE(AwaitTaskState(exec, "work", v1::TASK_RUNNING));
  agent->Signal(SIGTERM);
  const std::optional<int> status = agent->WaitForExit(absl::Seconds(15));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0) << agent->Output();
  EXPECT_EQ(Wait(exec, absl::Seconds(10)), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Logs(exec, "work"), "finished\n");
}

TEST_F(Cluster, OrchestratorKilledMidRunRecoversAndRecordsEveryTaskOnce) {
  StartAgent("a1", 4);
  std::string yaml = "name: crash\ntasks:\n";
  for (int layer = 0; layer < 3; ++layer) {
    for (int i = 0; i < 4; ++i) {
      absl::StrAppend(&yaml, "  - {id: t", layer, "-", i, ", command: [sleep, \"0.3\"]",
                      layer == 0 ? "" : absl::StrCat(", depends_on: [t", layer - 1, "-", i, "]"),
                      "}\n");
    }
  }
  const std::string exec = Start(yaml);
  // All of layer 1 has reached the agent (an assignment still in flight at
  // the crash would be lost and run again, rightly).
  for (int i = 0; i < 4; ++i) {
    const std::string task = absl::StrCat("t1-", i);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::TaskState state = Task(exec, task).state();
    while (state != v1::TASK_RUNNING && state != v1::TASK_SUCCEEDED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      state = Task(exec, task).state();
    }
    ASSERT_TRUE(state == v1::TASK_RUNNING || state == v1::TASK_SUCCEEDED) << task;
  }
  // Layer 0's 9 records and t1's leases pass snapshot_every_records (10):
  // the crash then recovers from a snapshot plus the log after it.
  ASSERT_TRUE(
      orchestrator_
          ->WaitForLine(
              [](const std::string& line) { return absl::StrContains(line, "snapshot written"); },
              absl::Seconds(10))
          .ok());
  const std::string recovered = RestartOrchestrator();
  EXPECT_TRUE(absl::StrContains(recovered, "\"from_snapshot\":true")) << recovered;
  ASSERT_EQ(Wait(exec, absl::Seconds(60)), v1::EXECUTION_SUCCEEDED)
      << "orchestrator:\n"
      << orchestrator_->Output() << "\nagent:\n"
      << agents_[0]->Output();
  grpc::ClientContext call;
  call.set_wait_for_ready(true);
  v1::ListTaskRunsRequest request;
  request.set_parent(exec);
  v1::ListTaskRunsResponse runs;
  ASSERT_TRUE(stub_->ListTaskRuns(&call, request, &runs).ok());
  ASSERT_EQ(runs.task_runs_size(), 12);
  for (const v1::TaskRun& run : runs.task_runs()) {
    EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED) << run.task_id();
    int succeeded = 0;
    for (const v1::TaskAttempt& attempt : run.attempts()) {
      succeeded += attempt.outcome() == v1::ATTEMPT_SUCCEEDED ? 1 : 0;
    }
    EXPECT_EQ(succeeded, 1) << run.task_id() << " must be recorded exactly once";
    // Nothing ran twice: layer 0 had finished, and the agent, which lived
    // on, kept layer 1's attempts in flight at the crash and reported them
    // to the new orchestrator.
    EXPECT_EQ(run.attempts_size(), 1) << run.task_id();
  }
  EXPECT_LE(Metric("gyre_task_outcomes_total{outcome=\"lost\"}"), 0) << "no attempt was lost";
}

TEST_F(Cluster, GyreRunFollowsItsExecutionAcrossAnOrchestratorRestart) {
  StartAgent("a1", 2);
  auto run = StartGyreRun(
      "name: follow\n"
      "tasks:\n"
      "  - {id: first, command: [sleep, \"0.2\"]}\n"
      "  - {id: middle, command: [sleep, \"1\"], depends_on: [first]}\n"
      "  - {id: last, command: [sleep, \"0.2\"], depends_on: [middle]}\n");
  ASSERT_TRUE(run.ok()) << run.status();
  // "follow: 3 tasks, execution executions/..." once the start is durable.
  auto header = (*run)->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "3 tasks, execution "); },
      absl::Seconds(20));
  ASSERT_TRUE(header.ok()) << header.status() << "\n" << (*run)->Output();
  const std::string exec = header->substr(header->find("executions/"));
  ASSERT_TRUE(AwaitTaskState(exec, "middle", v1::TASK_RUNNING));
  // The stream breaks under gyre run; it resumes from where it was.
  RestartOrchestrator();
  const std::optional<int> status = (*run)->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << (*run)->Output();
  const std::string output = (*run)->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output;
  EXPECT_TRUE(absl::StrContains(output, exec + " succeeded: 3 succeeded, 0 failed")) << output;
  // Every task's success shown once: nothing missed, nothing repeated.
  for (const char* task : {"first", "middle", "last"}) {
    int shown = 0;
    for (absl::string_view line : absl::StrSplit(output, '\n')) {
      shown += absl::StartsWith(line, absl::StrCat("  ", task, " ")) &&
                       absl::EndsWith(line, " succeeded")
                   ? 1
                   : 0;
    }
    EXPECT_EQ(shown, 1) << task << " in:\n" << output;
  }
}

TEST_F(Cluster, GyreRunSaysWhyAReadyTaskIsNotTaken) {
  StartAgent("a1", 1);
  // One slot for "hold" and "queued": one of them waits for it, which is no
  // reason to speak up. "train" waits for an agent serving "gpu". (The 3 s
  // tasks outlive the 1.5 s lease timeout: TearDown checks that heartbeats
  // kept their agent alive.)
  auto run = StartGyreRun(
      "name: stuck\n"
      "tasks:\n"
      "  - {id: hold, command: [sleep, \"3\"]}\n"
      "  - {id: queued, command: [sleep, \"3\"]}\n"
      "  - {id: train, queue: gpu, builtin: noop}\n");
  ASSERT_TRUE(run.ok()) << run.status();
  auto said = (*run)->WaitForLine(
      [](const std::string& line) {
        return absl::StartsWith(line, "  train ") &&
               absl::EndsWith(line, "ready (waiting for an agent serving queue \"gpu\")");
      },
      absl::Seconds(20));
  ASSERT_TRUE(said.ok()) << said.status() << "\n" << (*run)->Output();
  StartAgent("gpu1", 1, {"--queues=gpu"});
  const std::optional<int> status = (*run)->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << (*run)->Output();
  const std::string output = (*run)->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output;
  EXPECT_TRUE(absl::StrContains(output, "succeeded: 3 succeeded, 0 failed")) << output;
  // Said once (the reason did not change), and nothing about the task that
  // only waited for the slot.
  const std::vector<absl::string_view> around_notices = absl::StrSplit(output, "ready (");
  EXPECT_EQ(around_notices.size(), 2u) << output;
}

TEST_F(Cluster, CleanShutdownSnapshotsAndTheNextStartLoadsIt) {
  StartAgent("a1", 4);
  const std::string first = Start(R"(
name: before-restart
tasks:
  - {id: a, builtin: noop}
  - {id: b, builtin: noop, depends_on: [a]}
  - {id: c, command: [sh, -c, 'echo "{\"K\": \"v\"}" > "$GYRE_OUTPUT"'], depends_on: [a], outputs: [K]}
)");
  ASSERT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED);
  const std::string recovered = RestartOrchestrator(SIGTERM, "\"msg\":\"snapshot written\"");
  EXPECT_TRUE(absl::StrContains(recovered, "\"from_snapshot\":true")) << recovered;
  EXPECT_TRUE(absl::StrContains(recovered, "\"records\":0")) << "nothing to replay: " << recovered;
  // Everything from before is still there, and work goes on.
  EXPECT_EQ(Task(first, "c").outputs().fields().at("K").string_value(), "v");
  EXPECT_EQ(Task(first, "b").attempts_size(), 1);
  const std::string second = Start("name: after-restart\ntasks:\n  - {id: a, builtin: noop}\n");
  EXPECT_EQ(Wait(second), v1::EXECUTION_SUCCEEDED);
}

TEST_F(Cluster, WatchBatchesCarriesTheSameEventsAsWatchInBoundedBatches) {
  StartAgent("agent-1");
  // Three events per task: more than one batch's worth.
  std::string yaml = "name: wide\ntasks:\n";
  for (int i = 0; i < 1500; ++i) absl::StrAppend(&yaml, "  - {id: t", i, ", builtin: noop}\n");
  const std::string execution = Start(yaml);

  grpc::ClientContext call;
  v1::WatchRequest request;
  request.set_execution(execution);
  auto reader = stub_->WatchBatches(&call, request);
  std::vector<int64_t> batched;
  int batches = 0;
  for (v1::EventBatch batch; reader->Read(&batch);) {
    ++batches;
    EXPECT_GT(batch.events_size(), 0);
    // The limits EventBatch documents: 4,096 events, about 1 MiB.
    EXPECT_LE(batch.events_size(), 4096);
    EXPECT_LE(batch.ByteSizeLong(), (size_t{1} << 20) + 1024);
    for (const v1::Event& event : batch.events()) batched.push_back(event.sequence());
  }
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();

  const std::vector<v1::Event> one_by_one = WatchAll(execution);
  ASSERT_GT(one_by_one.size(), 4096u);  // more than one batch can hold
  ASSERT_EQ(batched.size(), one_by_one.size());
  for (size_t i = 0; i < batched.size(); ++i) {
    ASSERT_EQ(batched[i], static_cast<int64_t>(i) + 1);
    ASSERT_EQ(one_by_one[i].sequence(), batched[i]);
  }
  EXPECT_GT(batches, 1);
  EXPECT_LT(batches, static_cast<int>(batched.size()) / 2) << "events were not batched";
  EXPECT_TRUE(one_by_one.back().has_execution_snapshot());
  EXPECT_EQ(one_by_one.back().execution_snapshot().state(), v1::EXECUTION_SUCCEEDED);

  // Replayed whole, the history is all pending at once: cut at the limit.
  grpc::ClientContext replay_call;
  auto replay = stub_->WatchBatches(&replay_call, request);
  std::vector<int> sizes;
  for (v1::EventBatch batch; replay->Read(&batch);) sizes.push_back(batch.events_size());
  EXPECT_TRUE(replay->Finish().ok());
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], 4096);
  EXPECT_EQ(sizes[0] + sizes[1], static_cast<int>(batched.size()));

  // Resuming a batched watch part way sends exactly the rest.
  grpc::ClientContext resume_call;
  request.set_from_sequence(4000);
  auto resumed = stub_->WatchBatches(&resume_call, request);
  int64_t expected = 4000;
  for (v1::EventBatch batch; resumed->Read(&batch);) {
    for (const v1::Event& event : batch.events()) EXPECT_EQ(event.sequence(), expected++);
  }
  EXPECT_TRUE(resumed->Finish().ok());
  EXPECT_EQ(expected, static_cast<int64_t>(batched.size()) + 1);
}

TEST_F(Cluster, RunExecutionStartsAndFollowsTheExecutionToItsEnd) {
  StartAgent("agent-1");
  // Three events per task: more than one message's worth.
  std::string yaml = "name: run-and-follow\ntasks:\n";
  for (int i = 0; i < 1500; ++i) absl::StrAppend(&yaml, "  - {id: t", i, ", builtin: noop}\n");
  absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(yaml, "test.yaml");
  ASSERT_TRUE(def.ok()) << def.status();
  v1::RunExecutionRequest request;
  *request.mutable_start()->mutable_definition() = *def;
  request.mutable_start()->set_request_id("run-and-follow-1");

  // The execution (first message only) and every event, in order.
  struct Followed {
    std::string name;
    int32_t total_tasks = 0;
    std::vector<v1::Event> events;
  };
  auto follow = [&]() {
    Followed followed;
    grpc::ClientContext call;
    auto stream = stub_->RunExecution(&call, request);
    v1::RunExecutionResponse message;
    for (int i = 0; stream->Read(&message); ++i) {
      EXPECT_EQ(message.has_execution(), i == 0) << "message " << i;
      if (i == 0) {
        followed.name = message.execution().name();
        followed.total_tasks = message.execution().task_counts().total();
      }
      EXPECT_LE(message.events_size(), 4096);
      EXPECT_LE(message.ByteSizeLong(), (size_t{1} << 20) + 4096);
      for (v1::Event& event : *message.mutable_events()) {
        followed.events.push_back(std::move(event));
      }
    }
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return followed;
  };

  const Followed first = follow();
  ASSERT_FALSE(first.name.empty());
  EXPECT_EQ(first.total_tasks, 1500);
  ASSERT_GT(first.events.size(), 4096u);
  for (size_t i = 0; i < first.events.size(); ++i) {
    ASSERT_EQ(first.events[i].sequence(), static_cast<int64_t>(i) + 1) << "no gap, no repeat";
  }
  ASSERT_TRUE(first.events.back().has_execution_snapshot());
  EXPECT_EQ(first.events.back().execution_snapshot().state(), v1::EXECUTION_SUCCEEDED);
  // The same history a watcher gets.
  const std::vector<v1::Event> watched = WatchAll(first.name);
  ASSERT_EQ(watched.size(), first.events.size());
  for (size_t i = 0; i < watched.size(); ++i) {
    ASSERT_EQ(watched[i].type(), first.events[i].type()) << i;
    ASSERT_EQ(watched[i].task_run().state(), first.events[i].task_run().state()) << i;
  }

  // The same request again starts nothing: it follows the first execution.
  const Followed again = follow();
  EXPECT_EQ(again.name, first.name);
  EXPECT_EQ(again.events.size(), first.events.size());
}

TEST_F(Cluster, RunExecutionRejectsABadStartAndStoresNothing) {
  auto executions = [&] {
    grpc::ClientContext call;
    v1::ListExecutionsResponse list;
    EXPECT_TRUE(stub_->ListExecutions(&call, v1::ListExecutionsRequest(), &list).ok());
    return list.executions_size();
  };
  const int before = executions();
  auto run = [&](const v1::RunExecutionRequest& request) {
    grpc::ClientContext call;
    auto stream = stub_->RunExecution(&call, request);
    v1::RunExecutionResponse message;
    EXPECT_FALSE(stream->Read(&message)) << "no message for a rejected start";
    return stream->Finish();
  };
  v1::RunExecutionRequest empty;
  grpc::Status status = run(empty);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "run execution: set start.workflow or start.definition");

  v1::RunExecutionRequest unknown;
  unknown.mutable_start()->set_workflow("workflows/no-such-workflow");
  status = run(unknown);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "no-such-workflow"))
      << status.error_message();
  EXPECT_EQ(executions(), before);
}

TEST_F(Cluster, OutputStreamsToWatchersWhileTheTaskRuns) {
  StartAgent("a1");
  // The task writes only once the test's watch is known to be live (log
  // events are not replayed): the test creates $GO when it sees it running.
  const std::string go = root_ + "/go";
  const std::string exec = Start(R"(
name: logs
context: {GO: ""}
tasks:
  - id: chatty
    shell: true
    command: |
      while [ ! -f "$GO" ]; do sleep 0.02; done
      echo first line; sleep 1; echo second line >&2
)",
                                 {{"GO", go}});
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::WatchRequest request;
  request.set_execution(exec);
  request.set_include_logs(true);
  auto reader = stub_->Watch(&call, request);
  v1::Event event;
  std::string stdout_seen;
  std::string stderr_seen;
  bool first_line_before_success = false;
  while (reader->Read(&event)) {
    if (event.type() == v1::Event::TASK_LOG) {
      EXPECT_EQ(event.sequence(), 0) << "log events are not part of the sequence";
      const v1::LogChunk& chunk = event.log().chunk();
      (chunk.stream() == v1::LogChunk::STDOUT ? stdout_seen : stderr_seen) += chunk.data();
    } else if (event.has_task_run() && event.task_run().state() == v1::TASK_RUNNING) {
      std::ofstream(go) << "go";
    } else if (event.has_task_run() && event.task_run().state() == v1::TASK_SUCCEEDED) {
      first_line_before_success = stdout_seen == "first line\n";
    }
  }
  reader->Finish();
  EXPECT_TRUE(first_line_before_success) << "output must arrive while the task runs";
  EXPECT_EQ(stdout_seen, "first line\n");
  EXPECT_EQ(stderr_seen, "second line\n");
}

TEST_F(Cluster, DesiredWorkersFollowsTheBacklogOnMetrics) {
  // No agent yet: 18 tasks queue on "default" (pool: min 0, max 4, factor 6).
  std::string yaml = "name: backlog\ntasks:\n";
  for (int i = 0; i < 18; ++i) absl::StrAppend(&yaml, "  - {id: t", i, ", builtin: noop}\n");
  const std::string exec = Start(yaml);
  EXPECT_EQ(Metric("orchestrator_desired_workers{worker_type=\"default\"}"), 3);
  EXPECT_EQ(Metric("gyre_queue_depth{worker_type=\"default\"}"), 18);
  EXPECT_EQ(Metric("gyre_executions{state=\"pending\"}"), 1);
  EXPECT_EQ(Metric("gyre_executions{state=\"succeeded\"}"), 0);
  StartAgent("a1", 8);
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Metric("orchestrator_desired_workers{worker_type=\"default\"}"), 0);
  EXPECT_EQ(Metric("gyre_task_outcomes_total{outcome=\"succeeded\"}"), 18);
  EXPECT_EQ(Metric("gyre_task_outcomes_total{outcome=\"failed\"}"), 0) << "exported from zero";
  EXPECT_EQ(Metric("gyre_agents_connected"), 1);
  EXPECT_EQ(Metric("gyre_executions{state=\"pending\"}"), 0);
  EXPECT_EQ(Metric("gyre_executions{state=\"succeeded\"}"), 1);
  // Rebuilt from the log after a crash, not counted from zero.
  RestartOrchestrator();
  EXPECT_EQ(Metric("gyre_executions{state=\"succeeded\"}"), 1);
  EXPECT_EQ(Metric("gyre_executions{state=\"running\"}"), 0);
}

// Every metric family in the /metrics `body`, checked against
// docs/metrics.md; returns how many families there were.
int ExpectEveryFamilyDocumented(const std::string& body) {
  std::ifstream file(Binary("docs/metrics.md"));  // beside the binaries (copied by the build)
  EXPECT_TRUE(file.good()) << "docs/metrics.md not found";
  const std::string docs((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  int families = 0;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    // "# TYPE <name> <type>"
    if (!absl::ConsumePrefix(&line, "# TYPE ")) continue;
    const std::string name(line.substr(0, line.find(' ')));
    ++families;
    EXPECT_TRUE(absl::StrContains(docs, absl::StrCat("`", name, "`")))
        << name << " is exported but not described in docs/metrics.md";
  }
  return families;
}

TEST_F(Cluster, EverySeriesTheOrchestratorExportsIsDocumented) {
  StartAgent("a1", 2);
  ASSERT_EQ(Wait(Start("name: one\ntasks:\n  - {id: a, builtin: noop}\n")),
            v1::EXECUTION_SUCCEEDED);
  auto metrics = testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_GE(ExpectEveryFamilyDocumented(metrics->body), 10);
}

TEST_F(Cluster, EverySeriesAnAgentExportsIsDocumented) {
  ChildProcess* agent = StartAgent("a1", 2);
  ASSERT_EQ(Wait(Start("name: one\ntasks:\n  - {id: a, command: [/bin/true]}\n")),
            v1::EXECUTION_SUCCEEDED);
  absl::StatusOr<std::string> serving = agent->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
      absl::Seconds(20));
  ASSERT_TRUE(serving.ok()) << serving.status();
  const std::optional<int> port = testing::JsonIntField(*serving, "metrics_port");
  ASSERT_TRUE(port.has_value()) << *serving;
  auto metrics = testing::HttpGet("127.0.0.1", *port, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_TRUE(absl::StrContains(metrics->body, "gyre_agent_task_spawns_total{")) << metrics->body;
  EXPECT_GE(ExpectEveryFamilyDocumented(metrics->body), 5);
}

TEST_F(Cluster, EvaluatorStartsAChildWorkflowThatInheritsTheContext) {
  StartAgent("a1");
  absl::StatusOr<v1::WorkflowDefinition> child = workflow::ParseWorkflowYaml(R"(
name: report
context: {REGION: "", OWNER: ""}
tasks:
  - {id: summary, shell: true, command: 'echo "$REGION-$OWNER"'}
)",
                                                                             "report.yaml");
  ASSERT_TRUE(child.ok()) << child.status();
  {
    grpc::ClientContext call;
    v1::CreateWorkflowRequest request;
    *request.mutable_workflow() = *child;
    v1::WorkflowDefinition stored;
    const grpc::Status status = stub_->CreateWorkflow(&call, request, &stored);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(stored.name(), "workflows/report");
  }
  const std::string parent = Start(R"(
name: judge-then-report
context: {REGION: "", OWNER: ""}
tasks:
  - id: judge
    evaluator: true
    shell: true
    command: |
      echo '{"start": [{"workflow": "report", "context": {"OWNER": "data"}}]}'
)",
                                   {{"REGION", "eu"}, {"OWNER", "ops"}});
  ASSERT_EQ(Wait(parent), v1::EXECUTION_SUCCEEDED);
  // The child is started once the decision is recorded, which may be just
  // after the parent ended.
  std::vector<v1::Execution> children = ExecutionsOf("workflows/report");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       children.empty() && absl::Now() < deadline; children = ExecutionsOf("workflows/report")) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(children.size(), 1u) << "the decision starts exactly one child";
  // Lists carry no context (ExecutionView BASIC): the whole execution.
  v1::Execution started;
  {
    grpc::ClientContext call;
    v1::GetExecutionRequest get;
    get.set_name(children[0].name());
    ASSERT_TRUE(stub_->GetExecution(&call, get, &started).ok());
  }
  EXPECT_EQ(started.parent(), parent);
  // REGION inherited from the parent; the decision's OWNER wins over the
  // parent's.
  const std::map<std::string, std::string> context(started.context().begin(),
                                                   started.context().end());
  EXPECT_EQ(context, (std::map<std::string, std::string>{{"OWNER", "data"}, {"REGION", "eu"}}));
  ASSERT_EQ(Wait(started.name()), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Logs(started.name(), "summary"), "eu-data\n");
}

TEST_F(Cluster, GlobalTaskSharedByTwoGraphsRunsOnce) {
  // Both graphs hold the same global task with the same context: one
  // identity. It appends a line per run to `loads`.
  const std::string loads = root_ + "/loads";
  const std::string graph = R"(
context: {LOADS: ""}
tasks:
  - id: load-reference-data
    global: true
    shell: true
    command: 'echo load >> "$LOADS"; echo "{\"TABLE\": \"ref_v7\"}" > "$GYRE_OUTPUT"'
    outputs: [TABLE]
  - {id: report, shell: true, depends_on: [load-reference-data], command: 'echo "$TABLE"'}
)";
  // Both are started before any agent exists: neither graph can have
  // finished (or even begun) the task when the other needs it.
  const std::string first = Start("name: report-a" + graph, {{"LOADS", loads}});
  const std::string second = Start("name: report-b" + graph, {{"LOADS", loads}});
  StartAgent("a1");
  EXPECT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(second), v1::EXECUTION_SUCCEEDED);
  std::ifstream file(loads);
  const std::string ran((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(ran, "load\n") << "the global task must run once";
  const v1::TaskRun produced = Task(first, "load-reference-data");
  const v1::TaskRun reused = Task(second, "load-reference-data");
  EXPECT_EQ(produced.state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(produced.attempts_size(), 1);
  EXPECT_EQ(produced.satisfied_by(), "");
  EXPECT_EQ(reused.state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(reused.attempts_size(), 0);
  EXPECT_EQ(reused.satisfied_by(), first + "/tasks/load-reference-data");
  EXPECT_EQ(reused.identity(), produced.identity());
  // The waiting graph gets the run's outputs.
  EXPECT_EQ(Logs(first, "report"), "ref_v7\n");
  EXPECT_EQ(Logs(second, "report"), "ref_v7\n");

  // gyre logs says where the task ran instead of "no attempt".
  const std::string satisfied =
      absl::StrCat("load-reference-data did not run here: satisfied by ", first,
                   "/tasks/load-reference-data (a global task that already ran)");
  const auto [task_code, task_logs] = RunGyre(address_, {"logs", second, "load-reference-data"});
  EXPECT_EQ(task_code, 1) << task_logs;
  EXPECT_EQ(task_logs, absl::StrCat("gyre logs: ", second, "/tasks/", satisfied)) << task_logs;
  const auto [all_code, all_logs] = RunGyre(address_, {"logs", second});
  EXPECT_EQ(all_code, 0) << all_logs;
  EXPECT_TRUE(absl::StrContains(all_logs, absl::StrCat("==> ", satisfied, " <=="))) << all_logs;
  EXPECT_TRUE(absl::StrContains(all_logs, "==> report attempt 1: succeeded <==\nref_v7"))
      << all_logs;
}

TEST_F(Cluster, ResultOfAnAttemptLostWithItsAgentIsRejected) {
  // "silent" takes the task and then falls silent: declared dead on purpose.
  agent_killed_ = true;
  const std::string go = root_ + "/go";
  v1::AttemptRef lost;
  {
    HandDrivenAgentSession silent(address_, "silent");
    std::optional<v1::OrchestratorMessage> message = silent.Next();
    ASSERT_TRUE(message.has_value() && message->has_registered());
    EXPECT_EQ(message->registered().agent(), "agents/silent");
    // An attempt runs until the test lets it finish: the late result must
    // arrive while attempt 2 is running, fenced by its number alone.
    const std::string exec = Start(R"(
name: fenced
context: {GO: ""}
tasks:
  - id: work
    shell: true
    command: 'while [ ! -e "$GO" ]; do sleep 0.02; done; echo "attempt $GYRE_ATTEMPT"'
)",
                                   {{"GO", go}});
    message = silent.Next();
    ASSERT_TRUE(message.has_value() && message->has_assignment());
    ASSERT_EQ(message->assignment().tasks_size(), 1);
    lost = message->assignment().tasks(0).ref();
    EXPECT_EQ(lost.execution(), exec);
    EXPECT_EQ(lost.attempt(), 1);
    v1::AgentMessage started;
    *started.mutable_task_started()->mutable_ref() = lost;
    ASSERT_TRUE(silent.Send(started));
    ASSERT_TRUE(AwaitTaskState(exec, "work", v1::TASK_RUNNING));
    // No heartbeat: after the lease timeout the orchestrator gives up on it.
    message = silent.Next();
    ASSERT_TRUE(message.has_value() && message->has_shutdown());
    EXPECT_EQ(message->shutdown().reason(), "declared dead after missing heartbeats");
  }
  StartAgent("alive", 1);
  ASSERT_TRUE(AwaitTaskState(lost.execution(), "work", v1::TASK_RUNNING, /*attempts=*/2));

  // "silent" comes back as an agent does, holding the result it never got
  // acknowledged, and sends it while attempt 2 runs.
  HandDrivenAgentSession back(address_, "silent", {lost});
  v1::AgentMessage late;
  v1::TaskResult& result = *late.mutable_task_result();
  *result.mutable_ref() = lost;
  result.set_outcome(v1::ATTEMPT_SUCCEEDED);
  result.set_output_json(R"({"FROM": "the lost attempt"})");
  result.set_stdout_tail("attempt 1\n");
  result.set_stdout_bytes(10);
  result.set_sequence(1);
  ASSERT_TRUE(back.Send(late));
  // Told to stop the attempt it listed, and told to forget the result.
  bool cancelled = false;
  std::optional<v1::OrchestratorMessage> message;
  while ((message = back.Next()).has_value() && !message->has_result_ack()) {
    if (message->has_cancel()) {
      EXPECT_EQ(message->cancel().ref().SerializeAsString(), lost.SerializeAsString());
      cancelled = true;
    }
  }
  ASSERT_TRUE(message.has_value()) << "the stale result was never acknowledged";
  EXPECT_EQ(message->result_ack().through_sequence(), 1u);
  EXPECT_TRUE(cancelled) << "a listed attempt the agent no longer holds must be cancelled";
  auto rejected = orchestrator_->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "stale result rejected"); },
      absl::Seconds(10));
  ASSERT_TRUE(rejected.ok()) << rejected.status();
  EXPECT_TRUE(absl::StrContains(*rejected, "\"agent\":\"silent\"")) << *rejected;
  EXPECT_TRUE(absl::StrContains(*rejected, "\"attempt\":1,")) << *rejected;
  EXPECT_TRUE(absl::StrContains(*rejected, "\"current_attempt\":2")) << *rejected;
  EXPECT_EQ(Task(lost.execution(), "work").state(), v1::TASK_RUNNING) << "attempt 2 runs on";

  // Attempt 2 ends; the execution succeeds with its result only.
  std::ofstream(go) << "go";
  ASSERT_EQ(Wait(lost.execution()), v1::EXECUTION_SUCCEEDED);
  grpc::ClientContext call;
  v1::GetExecutionRequest request;
  request.set_name(lost.execution());
  v1::Execution execution;
  ASSERT_TRUE(stub_->GetExecution(&call, request, &execution).ok());
  EXPECT_EQ(execution.state(), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun run = Task(lost.execution(), "work");
  EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(run.attempts(0).agent(), "agents/silent");
  EXPECT_EQ(run.attempts(1).outcome(), v1::ATTEMPT_SUCCEEDED);
  EXPECT_TRUE(absl::StartsWith(run.attempts(1).agent(), "agents/alive")) << run.attempts(1).agent();
  EXPECT_FALSE(run.outputs().fields().contains("FROM"));
  EXPECT_EQ(Logs(lost.execution(), "work"), "attempt 2\n");
  // Recorded once: one success and one loss counted.
  EXPECT_EQ(Metric("gyre_task_outcomes_total{outcome=\"succeeded\"}"), 1);
  EXPECT_EQ(Metric("gyre_task_outcomes_total{outcome=\"lost\"}"), 1);
}

}  // namespace
}  // namespace gyre::e2e
