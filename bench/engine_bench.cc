// Engine benchmarks: real gyre-orchestrator / gyre-agent / gyre processes on
// loopback, driven over gRPC like any client. Prints each figure beside its
// target; figures are medians over several runs (this machine is shared and
// noisy, so nothing here is an assertion).
//
//   engine_bench [--bin_dir=build] [--runs=3] [--quick] [--only=SECTION,...]
//                [--noop_tasks=N]  (longer no-op and dev runs, for profiling)
//                [--before_agent=PATH]  (a gyre-agent of an earlier commit, measured
//                                        beside this build's in the `true` and
//                                        `noop` sections)
//                [--status_pages_on_heap]  (the postgres section's status client
//                                           as gyre status was before its arena)
//                [--status_paged]  (the status client paging ListTaskRuns, as gyre
//                                   status did before StreamTaskRuns)
//
// Sections: noop, dev, spawn, true, dag, latency, memory, restart, postgres
// (the PostgreSQL store beside the embedded one, in the same run, on a
// throwaway local PostgreSQL 15 that the section starts), scheduler (no-op
// and 100x100 DAG runs with a gyre-scheduler attached beside runs without,
// alternated in the same run), predictor (no-op throughput with a
// gyre-predictor attached beside without, same run).
#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/spawn_ceiling.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/load_average.h"
#include "libs/testing/postgres_server.h"
#include "services/agent/task_cgroup.h"

namespace gyre::bench {
namespace {

namespace v1 = ::gyre::v1;
using testing::ChildProcess;

std::string g_bin_dir = "build";
int g_runs = 3;
bool g_quick = false;
int g_noop_tasks = 0;             // --noop_tasks: longer no-op runs, for profiling
int g_true_slots = 64;            // --true_slots: slots of each agent for the /bin/true tasks
int g_true_tasks = 0;             // --true_tasks: /bin/true tasks per run; 0 for the default
std::vector<std::string> g_only;  // sections to run; empty for all
// --before_agent: a gyre-agent built from an earlier commit, measured in
// the same run as this build's, with the same flags.
std::string g_before_agent;
// --status_pages_on_heap: the status loop reads each ListTaskRuns page into
// a message of its own on the heap, as gyre status did before it used an
// arena (for a before/after of the client's CPU).
bool g_status_pages_on_heap = false;
// --status_paged: the status loop pages ListTaskRuns, one call a page, as
// gyre status did before StreamTaskRuns (for a before/after; implied by
// --status_pages_on_heap).
bool g_status_paged = false;
// The agent binary and its extra flags for the suites being started.
std::string g_agent_binary;
std::vector<std::string> g_agent_flags = {"--allow_root_tasks=true"};

bool Selected(absl::string_view section) {
  return g_only.empty() || std::find(g_only.begin(), g_only.end(), section) != g_only.end();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  if (values.empty()) return 0;
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

int64_t RssBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

// CPU time of process `pid` (utime + stime from /proc), in seconds; with
// `children`, that of its children it has reaped instead (cutime + cstime).
double CpuSeconds(pid_t pid, bool children = false) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  // Fields after the command name, which may hold spaces, in parentheses.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
  int64_t utime = 0, stime = 0;
  const size_t first = children ? 13 : 11;
  if (fields.size() < first + 2 || !absl::SimpleAtoi(fields[first], &utime) ||
      !absl::SimpleAtoi(fields[first + 1], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The whole machine's CPU time so far, from /proc/stat, in seconds: what
// every CPU spent idle (idle + iowait), and what it spent on anything.
struct MachineCpu {
  double idle = 0;
  double busy = 0;
};
MachineCpu MachineCpuSeconds() {
  std::ifstream stat("/proc/stat");
  std::string line;
  std::getline(stat, line);
  std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
  MachineCpu cpu;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  // cpu user nice system idle iowait irq softirq steal (guest time is in user).
  for (size_t i = 1; i < fields.size() && i <= 8; ++i) {
    int64_t ticks = 0;
    if (!absl::SimpleAtoi(fields[i], &ticks)) continue;
    (i == 4 || i == 5 ? cpu.idle : cpu.busy) += static_cast<double>(ticks) / tick;
  }
  return cpu;
}

// CPU time the calling thread has used so far, in seconds.
double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

bool IsServing(const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); }

// An orchestrator (or `gyre dev`) plus agents, on fresh ports and data.
class Suite {
 public:
  // dev: one `gyre dev` process with an embedded agent of `slots` slots;
  // otherwise one orchestrator and `agents` agent processes.
  // `orchestrator_env`: settings ("GYRE_KEY=value") for the orchestrator,
  // e.g. another store.
  static constexpr const char* kManyTasks = "GYRE_MAX_WORKFLOW_TASKS=2000000";

  Suite(bool dev, int agents, int slots, const std::vector<std::string>& orchestrator_env = {}) {
    char dir[] = "/tmp/gyre_bench_XXXXXX";
    root_ = mkdtemp(dir);
    std::vector<std::string> argv;
    if (dev) {
      argv = {g_bin_dir + "/cmd/gyre/gyre", "dev", "--http_address=127.0.0.1:0",
              absl::StrCat("--agent_slots=", slots)};
    } else {
      argv = {g_bin_dir + "/services/orchestrator/gyre-orchestrator"};
    }
    argv.push_back("--grpc_address=127.0.0.1:0");
    argv.push_back("--metrics_address=127.0.0.1:0");
    argv.push_back("--data_dir=" + root_ + "/data");
    // The memory and restart sections run up to a million tasks in one
    // workflow, over the default limit of 100,000.
    std::vector<std::string> env = orchestrator_env;
    env.push_back(kManyTasks);
    server_ = *ChildProcess::Start(argv, env);
    auto serving = server_->WaitForLine(IsServing, absl::Seconds(30));
    if (!serving.ok()) {
      std::fprintf(stderr, "server did not start: %s\n", serving.status().ToString().c_str());
      std::exit(1);
    }
    address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    metrics_port_ = testing::JsonIntField(*serving, "metrics_port").value_or(0);
    for (int i = 0; !dev && i < agents; ++i) {
      std::vector<std::string> agent_argv = {
          g_agent_binary.empty() ? g_bin_dir + "/services/agent/gyre-agent" : g_agent_binary,
          "--grpc_address=127.0.0.1:0",
          "--metrics_address=127.0.0.1:0",
          "--orchestrator_address=" + address_,
          absl::StrCat("--slots=", slots),
          "--work_dir=" + root_ + "/agent" + std::to_string(i)};
      agent_argv.insert(agent_argv.end(), g_agent_flags.begin(), g_agent_flags.end());
      agents_.push_back(*ChildProcess::Start(agent_argv));
      (void)agents_.back()->WaitForLine(
          [](const std::string& line) { return absl::StrContains(line, "registered"); },
          absl::Seconds(30));
      auto agent_serving = agents_.back()->WaitForLine(IsServing, absl::Seconds(30));
      agent_metrics_ports_.push_back(
          agent_serving.ok() ? testing::JsonIntField(*agent_serving, "metrics_port").value_or(0)
                             : 0);
    }
    stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  ~Suite() {
    agents_.clear();
    server_.reset();
    // GYRE_BENCH_KEEP_DATA=1 leaves the data directory for profiling.
    if (getenv("GYRE_BENCH_KEEP_DATA") == nullptr) std::filesystem::remove_all(root_);
  }

  // Starts the definition; returns the RPC latency and the execution name.
  std::pair<absl::Duration, std::string> Start(const v1::WorkflowDefinition& def) {
    v1::StartExecutionRequest request;
    *request.mutable_definition() = def;
    grpc::ClientContext context;
    v1::Execution execution;
    const absl::Time start = absl::Now();
    const grpc::Status status = stub_->StartExecution(&context, request, &execution);
    const absl::Duration latency = absl::Now() - start;
    if (!status.ok()) {
      std::fprintf(stderr, "start failed: %s\n", status.error_message().c_str());
      std::exit(1);
    }
    return {latency, execution.name()};
  }

  // Waits for the execution to end; returns whether it succeeded.
  bool Wait(const std::string& execution) {
    grpc::ClientContext context;
    v1::WatchRequest request;
    request.set_execution(execution);
    // As gyre run follows an execution.
    auto reader = stub_->WatchBatches(&context, request);
    v1::EventBatch batch;
    v1::ExecutionState state = v1::EXECUTION_STATE_UNSPECIFIED;
    // A run counts only if the watcher saw every event, in order.
    int64_t last_sequence = 0;
    bool gapless = true;
    while (reader->Read(&batch)) {
      for (const v1::Event& event : batch.events()) {
        if (event.sequence() > 0) {
          gapless = gapless && event.sequence() == last_sequence + 1;
          last_sequence = event.sequence();
        }
        if (event.has_execution_snapshot()) state = event.execution_snapshot().state();
      }
    }
    reader->Finish();
    if (!gapless) std::fprintf(stderr, "warning: the event stream had gaps\n");
    return gapless && state == v1::EXECUTION_SUCCEEDED;
  }

  // Starts the definition and follows it to its end in one RunExecution
  // call, as gyre run does; returns whether it succeeded.
  bool Run(const v1::WorkflowDefinition& def) {
    v1::RunExecutionRequest request;
    *request.mutable_start()->mutable_definition() = def;
    grpc::ClientContext context;
    auto stream = stub_->RunExecution(&context, request);
    v1::RunExecutionResponse message;
    v1::ExecutionState state = v1::EXECUTION_STATE_UNSPECIFIED;
    while (stream->Read(&message)) {
      for (const v1::Event& event : message.events()) {
        if (event.has_execution_snapshot()) state = event.execution_snapshot().state();
      }
    }
    const grpc::Status status = stream->Finish();
    if (!status.ok()) {
      std::fprintf(stderr, "run failed: %s\n", status.error_message().c_str());
      std::exit(1);
    }
    return state == v1::EXECUTION_SUCCEEDED;
  }

  pid_t server_pid() const { return server_->pid(); }

  // CPU seconds used so far by the orchestrator (or gyre dev) alone.
  double ServerCpuSeconds() const { return bench::CpuSeconds(server_->pid()); }
  // One sample of the server's /metrics (e.g. a counter with its labels),
  // or -1 when absent.
  double Metric(const std::string& sample) const { return MetricAt(metrics_port_, sample); }
  // The sum of one sample over the agents' /metrics, or -1 when one lacks
  // it (an agent of an earlier commit).
  double AgentsMetric(const std::string& sample) const {
    double sum = 0;
    for (int port : agent_metrics_ports_) {
      const double value = MetricAt(port, sample);
      if (value < 0) return -1;
      sum += value;
    }
    return sum;
  }
  static double MetricAt(int port, const std::string& sample) {
    auto response = testing::HttpGet("127.0.0.1", port, "/metrics");
    if (!response.ok()) return -1;
    const std::string prefix = "\n" + sample + " ";
    const size_t at = response->body.find(prefix);
    if (at == std::string::npos) return -1;
    const size_t start = at + prefix.size();
    double value = -1;
    if (!absl::SimpleAtod(response->body.substr(start, response->body.find('\n', start) - start),
                          &value)) {
      return -1;
    }
    return value;
  }

  // CPU seconds used so far by the orchestrator (or gyre dev) and agents.
  double CpuSeconds() const {
    double seconds = bench::CpuSeconds(server_->pid());
    for (const auto& agent : agents_) seconds += bench::CpuSeconds(agent->pid());
    return seconds;
  }
  // The CPU of the agents' tasks, reaped so far: what the tasks themselves
  // cost, with what the agent did in each child before its exec.
  double TaskCpuSeconds() const {
    double seconds = 0;
    for (const auto& agent : agents_) seconds += bench::CpuSeconds(agent->pid(), true);
    return seconds;
  }

  // Waits until the PostgreSQL store's projection (postgres_projector.h)
  // on database `dsn` has read every record the store holds (its cursor
  // against the last position), read from the database itself: the
  // projector's gauges are stale for as long as a batch runs. Returns how
  // long that took.
  static absl::Duration WaitForProjection(const std::string& dsn,
                                          absl::Duration limit = absl::Seconds(600)) {
    const absl::Time start = absl::Now();
    try {
      pqxx::connection connection(dsn);
      while (absl::Now() - start < limit) {
        pqxx::nontransaction tx(connection);
        const pqxx::row row = tx.exec1(
            "SELECT coalesce((SELECT position FROM projection_cursor WHERE name = 'relational'), "
            "0) >= greatest((SELECT max(position) FROM state_records), "
            "(SELECT max(position) FROM snapshots), 0)");
        if (row[0].as<bool>()) return absl::Now() - start;
        absl::SleepFor(absl::Milliseconds(100));
      }
      std::fprintf(stderr, "warning: the projection did not catch up within %s\n",
                   absl::FormatDuration(limit).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "projection: %s\n", e.what());
    }
    return absl::Now() - start;
  }

  // One GetExecution round trip.
  absl::Duration Get(const std::string& execution) {
    v1::GetExecutionRequest request;
    request.set_name(execution);
    grpc::ClientContext context;
    v1::Execution reply;
    const absl::Time start = absl::Now();
    (void)stub_->GetExecution(&context, request, &reply);
    return absl::Now() - start;
  }

  // What `gyre status EXECUTION` asks (cmd/gyre/execution_commands.cc):
  // GetExecution, then every page at the default page size, in one
  // StreamTaskRuns call (or, --status_paged, ListTaskRuns page by page).
  // Returns the time of the whole sequence; `runs` gets the task runs seen.
  absl::Duration Status(const std::string& execution, int* runs) {
    const absl::Time start = absl::Now();
    {
      v1::GetExecutionRequest request;
      request.set_name(execution);
      grpc::ClientContext context;
      v1::Execution reply;
      (void)stub_->GetExecution(&context, request, &reply);
    }
    *runs = 0;
    // Pages parsed onto one arena and kept to the end, as gyre status does.
    google::protobuf::Arena arena;
    v1::ListTaskRunsRequest list;
    list.set_parent(execution);
    if (!g_status_paged && !g_status_pages_on_heap) {
      grpc::ClientContext context;
      std::unique_ptr<grpc::ClientReader<v1::ListTaskRunsResponse>> pages =
          stub_->StreamTaskRuns(&context, list);
      for (;;) {
        auto* page = google::protobuf::Arena::CreateMessage<v1::ListTaskRunsResponse>(&arena);
        if (!pages->Read(page)) break;
        *runs += page->task_runs_size();
      }
      (void)pages->Finish();
      return absl::Now() - start;
    }
    do {
      grpc::ClientContext context;
      if (g_status_pages_on_heap) {  // as gyre status read them before
        v1::ListTaskRunsResponse page;
        if (!stub_->ListTaskRuns(&context, list, &page).ok()) break;
        *runs += page.task_runs_size();
        list.set_page_token(page.next_page_token());
        continue;
      }
      auto* page = google::protobuf::Arena::CreateMessage<v1::ListTaskRunsResponse>(&arena);
      if (!stub_->ListTaskRuns(&context, list, page).ok()) break;
      *runs += page->task_runs_size();
      list.set_page_token(page->next_page_token());
    } while (!list.page_token().empty());
    return absl::Now() - start;
  }

  // What a restart found and how long it took.
  struct Restart {
    absl::Duration took;   // start to serving
    int64_t snapshot = 0;  // records covered by the snapshot it loaded
    int64_t replayed = 0;  // records replayed after it
  };

  // SIGKILLs the orchestrator and starts it on the same data directory.
  Restart KillAndRestart() {
    server_->Signal(SIGKILL);
    (void)server_->WaitForExit(absl::Seconds(30));
    agents_.clear();
    const absl::Time start = absl::Now();
    server_ = *ChildProcess::Start(
        {g_bin_dir + "/services/orchestrator/gyre-orchestrator", "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--data_dir=" + root_ + "/data"},
        {kManyTasks});
    (void)server_->WaitForLine(IsServing, absl::Seconds(300));
    Restart restart{absl::Now() - start};
    auto recovered = server_->WaitForLine(
        [](const std::string& line) {
          return absl::StrContains(line, "\"msg\":\"state recovered\"");
        },
        absl::Seconds(1));
    auto engine = server_->WaitForLine(
        [](const std::string& line) {
          return absl::StrContains(line, "\"msg\":\"engine recovered\"");
        },
        absl::Seconds(1));
    // For the reader of the run: where the restart spent its time.
    std::fprintf(stderr, "%s\n%s\n", recovered.ok() ? recovered->c_str() : "",
                 engine.ok() ? engine->c_str() : "");
    if (recovered.ok()) {
      restart.snapshot = testing::JsonIntField(*recovered, "snapshot_record").value_or(0);
      restart.replayed = testing::JsonIntField(*recovered, "records_replayed").value_or(0);
    }
    return restart;
  }

 private:
  std::string root_;
  std::string address_;
  int metrics_port_ = 0;
  std::vector<int> agent_metrics_ports_;
  std::unique_ptr<ChildProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
};

// The machine's ceilings (bench/spawn_ceiling.h), medians over the runs.
double RawSpawnRate() {
  std::vector<double> rates;
  for (int run = 0; run < g_runs; ++run) rates.push_back(SequentialSpawnRate(g_quick ? 200 : 1000));
  return Median(rates);
}

double ParallelSpawnRate() {
  std::vector<double> rates;
  for (int run = 0; run < g_runs; ++run) rates.push_back(ConcurrentSpawnRate(g_quick ? 200 : 1000));
  return Median(rates);
}

v1::WorkflowDefinition Independent(int tasks, bool subprocess) {
  v1::WorkflowDefinition def;
  def.set_name("workflows/bench");
  for (int i = 0; i < tasks; ++i) {
    v1::TaskSpec* task = def.add_tasks();
    task->set_id(absl::StrCat("t", i));
    if (subprocess) {
      task->add_command("/bin/true");
    } else {
      task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    }
  }
  return def;
}

v1::WorkflowDefinition Layered(int layers, int width, int parents, uint32_t seed) {
  std::mt19937 random(seed);
  v1::WorkflowDefinition def;
  def.set_name("workflows/layered");
  for (int layer = 0; layer < layers; ++layer) {
    for (int i = 0; i < width; ++i) {
      v1::TaskSpec* task = def.add_tasks();
      task->set_id(absl::StrCat("l", layer, "-", i));
      task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
      if (layer == 0) continue;
      std::vector<int> above(static_cast<size_t>(width));
      for (int k = 0; k < width; ++k) above[static_cast<size_t>(k)] = k;
      std::shuffle(above.begin(), above.end(), random);
      for (int k = 0; k < parents; ++k) {
        task->add_depends_on(absl::StrCat("l", layer - 1, "-", above[static_cast<size_t>(k)]));
      }
    }
  }
  return def;
}

// The machine's price of one durable PostgreSQL commit, in the same
// window as the store's figures: `count` one-row INSERTs in autocommit, one
// at a time, on their own connection to `dsn` (what pgbench -c1 of one
// INSERT measures); their p50 in ms, or -1 with the error on stderr.
double CommitP50(const std::string& dsn, int count) {
  try {
    pqxx::connection connection(dsn);
    pqxx::nontransaction tx(connection);
    tx.exec0("CREATE TABLE IF NOT EXISTS bench_commit (id bigint, payload bytea)");
    const std::string payload(200, 'x');
    std::vector<double> latencies;
    for (int i = 0; i < count; ++i) {
      const absl::Time start = absl::Now();
      tx.exec_params0("INSERT INTO bench_commit (id, payload) VALUES ($1, $2)", i,
                      pqxx::binarystring(payload.data(), payload.size()));
      latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
    return Percentile(latencies, 0.5);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "commit reference: %s\n", e.what());
    return -1;
  }
}

// Running `def` to completion on a fresh suite, medians over the runs.
struct Throughput {
  double tasks_per_second = 0;
  // CPU of the Gyre processes (orchestrator or gyre dev, agents) per task:
  // what the rate costs. It moves with the machine too (up to 2x on this
  // VM between quiet and busy hours), so compare builds side by side.
  double cpu_us_per_task = 0;
};

Throughput MeasureThroughput(bool dev, int agents, int slots, const v1::WorkflowDefinition& def) {
  std::vector<double> rates, cpu;
  for (int run = 0; run < g_runs; ++run) {
    Suite suite(dev, agents, slots);
    const double cpu_before = suite.CpuSeconds();
    const absl::Time start = absl::Now();
    auto [latency, execution] = suite.Start(def);
    if (!suite.Wait(execution)) std::fprintf(stderr, "warning: execution did not succeed\n");
    rates.push_back(def.tasks_size() / absl::ToDoubleSeconds(absl::Now() - start));
    cpu.push_back((suite.CpuSeconds() - cpu_before) * 1e6 / def.tasks_size());
  }
  return {Median(rates), Median(cpu)};
}

struct Row {
  std::string figure;
  std::string measured;
  std::string target;
  bool met;
};

void Print(const std::vector<Row>& rows) {
  std::printf("\n| Figure | Measured (median of %d) | Target | Met |\n|---|---|---|---|\n", g_runs);
  for (const Row& row : rows) {
    // A reference figure has no target, so it is neither met nor missed.
    const char* met = row.target == "(reference)" ? "—" : row.met ? "yes" : "**no**";
    std::printf("| %s | %s | %s | %s |\n", row.figure.c_str(), row.measured.c_str(),
                row.target.c_str(), met);
  }
}

int Main() {
  const int noop_tasks = g_noop_tasks > 0 ? g_noop_tasks : g_quick ? 2000 : 20000;
  const int true_tasks = g_true_tasks > 0 ? g_true_tasks : g_quick ? 500 : 3000;
  std::vector<Row> rows;

  auto cpu_row = [](const Throughput& measured) {
    return Row{"  CPU of the Gyre processes per task (reference)",
               absl::StrFormat("%.1f us", measured.cpu_us_per_task), "(reference)", true};
  };
  if (Selected("noop")) {
    const Throughput grpc_noop = MeasureThroughput(false, 2, 512, Independent(noop_tasks, false));
    rows.push_back(
        {absl::StrFormat("independent no-op tasks, 2 agent processes, fsync on (%d tasks)",
                         noop_tasks),
         absl::StrFormat("%.0f tasks/s", grpc_noop.tasks_per_second), ">= 30,000 tasks/s",
         grpc_noop.tasks_per_second >= 30000});
    rows.push_back(cpu_row(grpc_noop));
    if (!g_before_agent.empty()) {
      // The same suite with an earlier commit's agent, then this build's
      // again, in this run: the agent's share of a change in throughput.
      g_agent_binary = g_before_agent;
      const Throughput before = MeasureThroughput(false, 2, 512, Independent(noop_tasks, false));
      g_agent_binary.clear();
      const Throughput again = MeasureThroughput(false, 2, 512, Independent(noop_tasks, false));
      // This build's two measurements bracket the earlier agent's, so
      // their mean faces a machine about as loaded as it was.
      const double after = (grpc_noop.tasks_per_second + again.tasks_per_second) / 2;
      rows.push_back({"  the same with the --before_agent agent (reference)",
                      absl::StrFormat("%.0f tasks/s", before.tasks_per_second), "(reference)",
                      true});
      rows.push_back({"  this build's agent measured again after it (reference)",
                      absl::StrFormat("%.0f tasks/s", again.tasks_per_second), "(reference)",
                      true});
      const double ratio = after / std::max(1.0, before.tasks_per_second);
      rows.push_back({"  this build / --before_agent, no-op throughput (mean of this build's two)",
                      absl::StrFormat("%.2f", ratio), ">= 0.95", ratio >= 0.95});
    }
  }
  if (Selected("dev")) {
    const Throughput dev_noop = MeasureThroughput(true, 0, 1024, Independent(noop_tasks, false));
    rows.push_back(
        {absl::StrFormat("independent no-op tasks, gyre dev one process (%d tasks)", noop_tasks),
         absl::StrFormat("%.0f tasks/s", dev_noop.tasks_per_second), ">= 100,000 tasks/s",
         dev_noop.tasks_per_second >= 100000});
    rows.push_back(cpu_row(dev_noop));
  }
  double ceiling = 0;
  if (Selected("spawn") || Selected("true")) {
    const double raw_spawn = RawSpawnRate();
    ceiling = ParallelSpawnRate();
    rows.push_back({absl::StrFormat("machine ceiling: one posix_spawn + waitpid loop of /bin/true "
                                    "per core (%u), concurrently, no Gyre (reference)",
                                    std::max(1u, std::thread::hardware_concurrency())),
                    absl::StrFormat("%.0f spawns/s", ceiling), "(reference)", true});
    rows.push_back({"  one sequential posix_spawn + waitpid loop, no Gyre (reference)",
                    absl::StrFormat("%.0f spawns/s", raw_spawn), "(reference)", true});
  }
  if (Selected("true")) {
    // Each run measures the per-core ceiling right before Gyre's runs and
    // takes the share against it: the ceiling moves by 2x within minutes on
    // a shared VM, so a share against another minute's ceiling means
    // little. Medians of the per-run figures.
    struct Subprocess {
      std::vector<double> rates, shares, cpu, orchestrator_cpu, starts_sent, task_cpu, idle, rest,
          copied_table, client;
    };
    // One run of `def` on `suite`, into `into`.
    auto run_once = [&](Suite& suite, Subprocess* into, const v1::WorkflowDefinition& def,
                        double ceiling_now) {
      const double cpu_before = suite.CpuSeconds();
      const double server_before = suite.ServerCpuSeconds();
      const double tasks_before = suite.TaskCpuSeconds();
      const MachineCpu machine_before = MachineCpuSeconds();
      const double client_before = bench::CpuSeconds(getpid());
      const double sent_before =
          suite.AgentsMetric("gyre_agent_task_starts_total{report=\"sent\"}");
      const double copied_before =
          suite.AgentsMetric("gyre_agent_task_spawns_total{descriptors=\"copied\"}");
      const double shared_before =
          suite.AgentsMetric("gyre_agent_task_spawns_total{descriptors=\"shared\"}");
      const absl::Time start = absl::Now();
      auto [latency, execution] = suite.Start(def);
      if (!suite.Wait(execution)) std::fprintf(stderr, "warning: execution did not succeed\n");
      const double rate = def.tasks_size() / absl::ToDoubleSeconds(absl::Now() - start);
      into->rates.push_back(rate);
      into->shares.push_back(ceiling_now > 0 ? rate / ceiling_now : 0);
      into->cpu.push_back((suite.CpuSeconds() - cpu_before) * 1e6 / def.tasks_size());
      into->orchestrator_cpu.push_back((suite.ServerCpuSeconds() - server_before) * 1e6 /
                                       def.tasks_size());
      into->task_cpu.push_back((suite.TaskCpuSeconds() - tasks_before) * 1e6 / def.tasks_size());
      // Where the rest of the machine's time went: idle CPUs (the pipeline
      // ran dry), and busy time that is neither Gyre's nor its tasks' (the
      // benchmark's own client, kernel threads, interrupts).
      const MachineCpu machine_after = MachineCpuSeconds();
      into->idle.push_back((machine_after.idle - machine_before.idle) * 1e6 / def.tasks_size());
      into->client.push_back((bench::CpuSeconds(getpid()) - client_before) * 1e6 /
                             def.tasks_size());
      into->rest.push_back((machine_after.busy - machine_before.busy) * 1e6 / def.tasks_size() -
                           into->cpu.back() - into->task_cpu.back() - into->client.back());
      // The rest of the starts travelled in their results (start_report_delay).
      const double sent = suite.AgentsMetric("gyre_agent_task_starts_total{report=\"sent\"}");
      into->starts_sent.push_back(sent < 0 ? -1 : (sent - sent_before) / def.tasks_size());
      // How many children copied the agent's whole descriptor table (an
      // older agent has no such metric: -1).
      const double copied =
          suite.AgentsMetric("gyre_agent_task_spawns_total{descriptors=\"copied\"}");
      const double shared =
          suite.AgentsMetric("gyre_agent_task_spawns_total{descriptors=\"shared\"}");
      const double spawned = (copied - copied_before) + (shared - shared_before);
      into->copied_table.push_back(
          copied < 0 || shared < 0 || spawned <= 0 ? -1 : (copied - copied_before) / spawned);
    };
    // Fresh agents, then the same workflow again on the same ones. A fresh
    // agent's first tasks also pay for what it keeps afterwards (its
    // spawning threads, the working directories, memory grown); an agent
    // that has run for a while has done that long before. Both reported.
    auto measure = [&](Subprocess* fresh, Subprocess* again, const v1::WorkflowDefinition& def,
                       double ceiling_now) {
      Suite suite(false, 2, g_true_slots);
      run_once(suite, fresh, def, ceiling_now);
      run_once(suite, again, def, ceiling_now);
    };
    // The same tasks declaring memory: each runs in a cgroup of its own
    // (memory.max) where the agents can make one. No CPU is declared: 64
    // slots x 2 agents of a 2-core machine would then run 2 tasks at once.
    v1::WorkflowDefinition limited = Independent(true_tasks, true);
    for (v1::TaskSpec& task : *limited.mutable_tasks()) {
      task.mutable_resources()->set_memory_bytes(int64_t{64} << 20);
    }
    // What the agents will find (they detect it the same way); "" for none.
    const std::unique_ptr<agent::TaskCgroups> detected =
        agent::TaskCgroups::Detect(absl::StrCat("gyre-bench-", getpid()));
    const std::string cgroup_mode = detected->mode() == agent::TaskCgroups::Mode::kV2 ? "cgroup v2"
                                    : detected->mode() == agent::TaskCgroups::Mode::kV1
                                        ? "cgroup v1"
                                        : "";
    Subprocess before, before_cgroups, plain, cgroups;
    Subprocess before_again, before_cgroups_again, plain_again, cgroups_again;
    std::vector<double> ceilings, ceiling_task_cpu;
    for (int run = 0; run < g_runs; ++run) {
      double task_cpu_us = 0;
      const double ceiling_now = ConcurrentSpawnRate(g_quick ? 200 : 1000, &task_cpu_us);
      ceilings.push_back(ceiling_now);
      ceiling_task_cpu.push_back(task_cpu_us);
      const int runs = g_runs;
      g_runs = 1;  // one suite per figure in this run
      auto measure_before = [&] {
        if (g_before_agent.empty()) return;
        g_agent_binary = g_before_agent;
        measure(&before, &before_again, Independent(true_tasks, true), ceiling_now);
        if (!cgroup_mode.empty()) {
          measure(&before_cgroups, &before_cgroups_again, limited, ceiling_now);
        }
        g_agent_binary.clear();
      };
      auto measure_this_build = [&] {
        measure(&plain, &plain_again, Independent(true_tasks, true), ceiling_now);
        if (!cgroup_mode.empty()) measure(&cgroups, &cgroups_again, limited, ceiling_now);
      };
      // Which agent goes first moved the share by 1-3 points, in either
      // direction from one series to the next (12-05: the same two agents
      // in one order, then the other): the order alternates run by run, so
      // that neither is always first.
      if (run % 2 == 0) {
        measure_before();
        measure_this_build();
      } else {
        measure_this_build();
        measure_before();
      }
      g_runs = runs;
    }
    auto true_rows = [&](const std::string& build, const Subprocess& measured) {
      const double share = Median(measured.shares);
      rows.push_back({absl::StrFormat("/bin/true subprocess tasks, 2 agents x %d slots (%d tasks), "
                                      "%s: share of the per-core ceiling of the same run",
                                      g_true_slots, true_tasks, build),
                      absl::StrFormat("%.0f tasks/s = %.0f%%", Median(measured.rates), share * 100),
                      ">= 85%", share >= 0.85});
      const double cpu = Median(measured.cpu);
      rows.push_back({absl::StrFormat("  %s: CPU of the Gyre processes per subprocess task "
                                      "(orchestrator %.0f us + agents)",
                                      build, Median(measured.orchestrator_cpu)),
                      absl::StrFormat("%.0f us", cpu), "<= 300 us", cpu <= 300});
      rows.push_back({absl::StrFormat("  %s: CPU of each task's own process (from its clone to "
                                      "its exit; the ceiling's: %.0f us)",
                                      build, Median(ceiling_task_cpu)),
                      absl::StrFormat("%.0f us", Median(measured.task_cpu)), "(reference)", true});
      rows.push_back({absl::StrFormat("  %s: per task, the machine's CPUs idle / the benchmark's "
                                      "client / the rest (kernel threads, interrupts)",
                                      build),
                      absl::StrFormat("%.0f us / %.0f us / %.0f us", Median(measured.idle),
                                      Median(measured.client), Median(measured.rest)),
                      "(reference)", true});
      if (Median(measured.copied_table) >= 0) {
        rows.push_back({absl::StrFormat("  %s: spawns whose child copied the agent's whole "
                                        "descriptor table (the others copied a few)",
                                        build),
                        absl::StrFormat("%.0f%%", Median(measured.copied_table) * 100),
                        "(reference)", true});
      }
      if (Median(measured.starts_sent) >= 0) {
        rows.push_back({absl::StrFormat("  %s: TaskStarted messages sent per task (the others' "
                                        "results carried their start)",
                                        build),
                        absl::StrFormat("%.2f", Median(measured.starts_sent)), "(reference)",
                        true});
      }
    };
    // Each build's fresh agents, then the same agents' second run.
    auto both_rows = [&](const std::string& build, const Subprocess& fresh,
                         const Subprocess& again) {
      true_rows(absl::StrCat(build, ", fresh agents"), fresh);
      true_rows(absl::StrCat(build, ", the same agents' second run"), again);
    };
    if (!g_before_agent.empty()) both_rows("before (--before_agent)", before, before_again);
    both_rows("this build", plain, plain_again);
    if (!cgroup_mode.empty()) {
      const std::string in_cgroups =
          absl::StrCat("each task in a cgroup (", cgroup_mode, ", 64 MiB)");
      if (!g_before_agent.empty()) {
        both_rows(absl::StrCat("before, ", in_cgroups), before_cgroups, before_cgroups_again);
      }
      both_rows(absl::StrCat("this build, ", in_cgroups), cgroups, cgroups_again);
    } else {
      rows.push_back(
          {"  the cgroup path", "not measured: " + detected->description(), "(reference)", true});
    }
    rows.push_back({"  the per-core ceilings of those runs (reference)",
                    absl::StrJoin(ceilings, ", ",
                                  [](std::string* out, double c) {
                                    absl::StrAppend(out, absl::StrFormat("%.0f", c));
                                  }),
                    "(reference)", true});
  }

  if (Selected("dag")) {
    const v1::WorkflowDefinition dag = Layered(100, 100, 3, 7);
    std::vector<double> cold_submit_ms;
    std::vector<double> submit_ms;
    std::vector<double> rates;
    for (int run = 0; run < g_runs; ++run) {
      Suite suite(false, 2, 512);
      // The first large submission to a fresh process also pays for growing
      // its heap (page faults are slow on this VM); a running orchestrator
      // has done that long before. Both are reported.
      auto [cold, warmup] = suite.Start(dag);
      cold_submit_ms.push_back(absl::ToDoubleMilliseconds(cold));
      suite.Wait(warmup);
      const absl::Time start = absl::Now();
      auto [latency, execution] = suite.Start(dag);
      submit_ms.push_back(absl::ToDoubleMilliseconds(latency));
      suite.Wait(execution);
      rates.push_back(dag.tasks_size() / absl::ToDoubleSeconds(absl::Now() - start));
    }
    rows.push_back(
        {"100x100 layered DAG (3 parents): submit validated, durable, first layer "
         "leased (a running orchestrator)",
         absl::StrFormat("%.1f ms", Median(submit_ms)), "< 50 ms", Median(submit_ms) < 50});
    rows.push_back({"  the same, first submission to a freshly started orchestrator (reference)",
                    absl::StrFormat("%.1f ms", Median(cold_submit_ms)), "(reference)", true});
    rows.push_back({"100x100 layered DAG: whole run, no-op executor",
                    absl::StrFormat("%.0f tasks/s", Median(rates)), ">= 20,000 tasks/s",
                    Median(rates) >= 20000});
  }

  if (Selected("scheduler")) {
    // Each run measures both, alternated, so the figure without the
    // scheduler is the reference taken at the same time on this machine.
    auto scheduler =
        ChildProcess::Start({g_bin_dir + "/services/scheduler/gyre-scheduler",
                             "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0"});
    if (!scheduler.ok()) {
      std::fprintf(stderr, "gyre-scheduler: %s\n", scheduler.status().ToString().c_str());
      return 1;
    }
    auto serving = (*scheduler)->WaitForLine(IsServing, absl::Seconds(30));
    if (!serving.ok()) {
      std::fprintf(stderr, "gyre-scheduler did not start: %s\n",
                   serving.status().ToString().c_str());
      return 1;
    }
    const std::string attach = absl::StrCat("GYRE_SCHEDULER_ADDRESS=127.0.0.1:",
                                            *testing::JsonIntField(*serving, "grpc_port"));
    const v1::WorkflowDefinition noop = Independent(noop_tasks, false);
    const v1::WorkflowDefinition dag = Layered(100, 100, 3, 7);
    std::map<bool, std::vector<double>> noop_rates, dag_rates;
    std::vector<double> noop_calls, dag_calls;  // RankAndPlace answers per attached run
    for (int run = 0; run < g_runs; ++run) {
      // Which goes first alternates too: the second of a pair tends to run
      // faster here (a warmer page cache, other processes' load moving).
      for (bool attached : {run % 2 == 1, run % 2 == 0}) {
        const std::vector<std::string> env =
            attached ? std::vector<std::string>{attach} : std::vector<std::string>{};
        {
          Suite suite(false, 2, 512, env);
          const absl::Time start = absl::Now();
          auto [latency, execution] = suite.Start(noop);
          if (!suite.Wait(execution)) std::fprintf(stderr, "warning: no-op run failed\n");
          noop_rates[attached].push_back(noop.tasks_size() /
                                         absl::ToDoubleSeconds(absl::Now() - start));
          if (attached) {
            noop_calls.push_back(suite.Metric("gyre_scheduler_link_calls_total{outcome=\"ok\"}"));
          }
        }
        {
          Suite suite(false, 2, 512, env);
          auto [cold, warmup] = suite.Start(dag);  // as the dag section: a warm process
          suite.Wait(warmup);
          const absl::Time start = absl::Now();
          auto [latency, execution] = suite.Start(dag);
          if (!suite.Wait(execution)) std::fprintf(stderr, "warning: DAG run failed\n");
          dag_rates[attached].push_back(dag.tasks_size() /
                                        absl::ToDoubleSeconds(absl::Now() - start));
          if (attached) {
            dag_calls.push_back(suite.Metric("gyre_scheduler_link_calls_total{outcome=\"ok\"}"));
          }
        }
      }
    }
    const double noop_ratio = Median(noop_rates[true]) / Median(noop_rates[false]);
    rows.push_back(
        {absl::StrFormat("independent no-op tasks (%d), 2 agents, without a scheduler", noop_tasks),
         absl::StrFormat("%.0f tasks/s", Median(noop_rates[false])), "(reference)", true});
    rows.push_back({"  the same with gyre-scheduler attached (scheduler_address)",
                    absl::StrFormat("%.0f tasks/s (%.2f x)", Median(noop_rates[true]), noop_ratio),
                    ">= 0.95 x without", noop_ratio >= 0.95});
    rows.push_back({"    RankAndPlace calls answered during such a run",
                    absl::StrFormat("%.0f", Median(noop_calls)), "(reference)", true});
    const double dag_ratio = Median(dag_rates[true]) / Median(dag_rates[false]);
    rows.push_back({"100x100 layered DAG whole run, without a scheduler",
                    absl::StrFormat("%.0f tasks/s", Median(dag_rates[false])), "(reference)",
                    true});
    rows.push_back({"  the same with gyre-scheduler attached",
                    absl::StrFormat("%.0f tasks/s (%.2f x)", Median(dag_rates[true]), dag_ratio),
                    "no slower (>= 0.95 x, the noise of this machine)", dag_ratio >= 0.95});
    rows.push_back({"    RankAndPlace calls answered during such a run (two executions)",
                    absl::StrFormat("%.0f", Median(dag_calls)), "(reference)", true});
  }
  if (Selected("predictor")) {
    // With and without a predictor link, alternated in the same run: the
    // orchestrator forwarding every attempt to a real gyre-predictor
    // process (issue 24) against the same orchestrator without one.
    char dir[] = "/tmp/gyre_bench_predictor_XXXXXX";
    const std::string predictor_dir = mkdtemp(dir);
    std::unique_ptr<ChildProcess> predictor = *ChildProcess::Start(
        {g_bin_dir + "/services/predictor/gyre-predictor", "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--data_dir=" + predictor_dir});
    auto serving = predictor->WaitForLine(IsServing, absl::Seconds(30));
    if (!serving.ok()) {
      std::fprintf(stderr, "predictor: %s\n", serving.status().ToString().c_str());
      std::exit(1);
    }
    const std::string predictor_address =
        absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    const v1::WorkflowDefinition noop = Independent(noop_tasks, false);
    // 0: no predictor; 1: attached; 2: a predictor_address nobody listens
    // on (the orchestrator's own cost: capture, buffer, failed sends, drops;
    // not the predictor's CPU, which shares this machine's two cores).
    std::map<int, std::vector<double>> rates;
    std::vector<double> ratios;  // attached / without, each run's pair
    const double load_before = gyre::testing::LoadAverage();
    for (int run = 0; run < std::max(g_runs, 3); ++run) {
      // Every other run the other way round, so neither side always runs
      // first (after the previous orchestrator's exit, on a cooler cache).
      const std::vector<int> order =
          run % 2 == 0 ? std::vector<int>{0, 1, 2} : std::vector<int>{2, 1, 0};
      for (const int variant : order) {
        std::vector<std::string> env;
        if (variant == 1) env.push_back("GYRE_PREDICTOR_ADDRESS=" + predictor_address);
        if (variant == 2) env.push_back("GYRE_PREDICTOR_ADDRESS=127.0.0.1:1");
        Suite suite(false, 2, 512, env);
        const absl::Time start = absl::Now();
        auto [latency, execution] = suite.Start(noop);
        if (!suite.Wait(execution)) std::fprintf(stderr, "warning: execution did not succeed\n");
        rates[variant].push_back(noop.tasks_size() / absl::ToDoubleSeconds(absl::Now() - start));
      }
      ratios.push_back(rates[1].back() / rates[0].back());
    }
    const double load_after = gyre::testing::LoadAverage();
    // What reached the predictor: its count behind the no-op program.
    auto stub = v1::PredictorService::NewStub(
        grpc::CreateChannel(predictor_address, grpc::InsecureChannelCredentials()));
    v1::PredictResourcesRequest request;
    *request.add_tasks() = noop.tasks(0);
    request.mutable_tasks(0)->set_id("bench-probe");
    v1::PredictResourcesResponse response;
    grpc::ClientContext context;
    const bool answered = stub->PredictResources(&context, request, &response).ok() &&
                          response.predictions_size() == 1;
    const double share = Median(rates[1]) / Median(rates[0]);
    rows.push_back(
        {absl::StrFormat("independent no-op tasks, 2 agent processes, predictor attached (%d "
                         "tasks), vs without in the same run",
                         noop_tasks),
         absl::StrFormat("%.0f tasks/s = %.0f%% of %.0f tasks/s", Median(rates[1]), share * 100,
                         Median(rates[0])),
         ">= 95%", share >= 0.95});
    std::string each;
    for (double ratio : ratios)
      absl::StrAppend(&each, each.empty() ? "" : " · ", std::lround(ratio * 100), "%");
    rows.push_back({"  attached / without, median of each run's pair (each run)",
                    absl::StrFormat("%.0f%% (%s)", Median(ratios) * 100, each), "(reference)",
                    true});
    rows.push_back({"  load average (1 min) before / after the section",
                    absl::StrFormat("%.2f / %.2f", load_before, load_after), "(reference)", true});
    rows.push_back({"  the same with predictor_address unreachable (the orchestrator's own cost)",
                    absl::StrFormat("%.0f tasks/s = %.0f%%", Median(rates[2]),
                                    Median(rates[2]) / Median(rates[0]) * 100),
                    "(reference)", true});
    rows.push_back(
        {"  observations the predictor holds for the no-op program afterwards (reference)",
         answered ? absl::StrFormat("%d", response.predictions(0).duration_seconds().observations())
                  : "no answer",
         "(reference)", true});
    predictor.reset();
    std::filesystem::remove_all(predictor_dir);
  }

  if (Selected("postgres")) {
    // Both stores in every run, alternated, so the embedded store is the
    // reference measured on the same machine at the same time.
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
        testing::PostgresServer::Start();
    if (!server.ok()) {
      std::fprintf(stderr, "postgres: %s\n", server.status().ToString().c_str());
      std::exit(1);
    }
    const v1::WorkflowDefinition noop = Independent(noop_tasks, false);
    const v1::WorkflowDefinition one = Independent(1, false);
    const v1::WorkflowDefinition status_def = Independent(10000, false);
    // Keyed by store; "busy" figures are taken right after a large run,
    // while the PostgreSQL store's projection (postgres_projector.h) still
    // writes that run's rows, the others once it has caught up.
    std::map<std::string, std::vector<double>> rates, p50, busy_p50, get_p50, get_p95, status_p50,
        status_p95, busy_status_p50, busy_status_p95, status_server_cpu, status_client_cpu,
        busy_status_server_cpu, catch_up_seconds;
    std::vector<double> commit_p50;  // one autocommit INSERT, same server and window
    // A single task's submit -> durable result, `count` times; the p50.
    const auto single_task_p50 = [&](Suite& suite, int count) {
      std::vector<double> latencies;
      for (int i = 0; i < count; ++i) {
        const absl::Time begin = absl::Now();
        if (!suite.Run(one)) std::fprintf(stderr, "warning: a single task did not succeed\n");
        latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - begin));
      }
      return Percentile(latencies, 0.5);
    };
    // 50 statuses as gyre status asks them: their latencies, and the CPU
    // per status of the orchestrator and of this client (reading the
    // pages): what a quiet machine would take, where the wall time on a
    // shared one is mostly waiting for a core.
    struct Statuses {
      std::vector<double> latencies;
      double server_cpu_ms = 0;
      double client_cpu_ms = 0;
    };
    const auto statuses_of = [&](Suite& suite, const std::string& execution) {
      Statuses measured;
      int runs_seen = 0;
      const double server_before = suite.ServerCpuSeconds();
      const double client_before = ThreadCpuSeconds();
      for (int i = 0; i < 50; ++i) {
        measured.latencies.push_back(
            absl::ToDoubleMilliseconds(suite.Status(execution, &runs_seen)));
      }
      measured.server_cpu_ms = (suite.ServerCpuSeconds() - server_before) * 1e3 / 50;
      measured.client_cpu_ms = (ThreadCpuSeconds() - client_before) * 1e3 / 50;
      if (runs_seen != status_def.tasks_size()) {
        std::fprintf(stderr, "warning: status listed %d task runs of %d\n", runs_seen,
                     status_def.tasks_size());
      }
      return measured;
    };
    for (int run = 0; run < g_runs; ++run) {
      // The run's database first, checkpointed and the machine's dirty
      // pages written out before either store is measured: CREATE DATABASE
      // writes and fsyncs ~1,000 files, and on this VM a flush waits for
      // everything written before it (a cache flush of the whole disk), so
      // a database created just before the PostgreSQL suite made its
      // commits 4-8 ms where the embedded store, measured before it, saw
      // 0.3 ms (perf trace of fdatasync, 2026-12-04).
      absl::StatusOr<std::string> database = (*server)->CreateDatabase();
      if (!database.ok()) {
        std::fprintf(stderr, "postgres: %s\n", database.status().ToString().c_str());
        std::exit(1);
      }
      const std::string dsn = (*server)->SocketDsn(*database);
      try {
        pqxx::connection connection(dsn);
        pqxx::nontransaction(connection).exec0("CHECKPOINT");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "postgres: CHECKPOINT: %s\n", e.what());
      }
      sync();
      // Which store goes first alternates: the second of a pair tends to
      // run in a different stretch of the machine.
      const std::vector<std::string> order = run % 2 == 0
                                                 ? std::vector<std::string>{"embedded", "postgres"}
                                                 : std::vector<std::string>{"postgres", "embedded"};
      for (const std::string& store : order) {
        std::vector<std::string> env;
        if (store == "postgres") env = {"GYRE_STORE=postgres", "GYRE_POSTGRES_DSN=" + dsn};
        Suite suite(false, 2, 512, env);
        const absl::Time start = absl::Now();
        auto [latency, execution] = suite.Start(noop);
        if (!suite.Wait(execution)) std::fprintf(stderr, "warning: execution did not succeed\n");
        rates[store].push_back(noop.tasks_size() / absl::ToDoubleSeconds(absl::Now() - start));
        for (int i = 0; i < 20; ++i) (void)suite.Run(one);  // warm up, as in "latency"
        // For a profiler to attach to (perf record -p, perf trace -p).
        std::fprintf(stderr, "run %d, %s store: single tasks on orchestrator pid %d\n", run,
                     store.c_str(), suite.server_pid());
        const int singles = g_quick ? 50 : 200;
        busy_p50[store].push_back(single_task_p50(suite, singles));
        catch_up_seconds[store].push_back(
            store == "postgres" ? absl::ToDoubleSeconds(Suite::WaitForProjection(dsn)) : 0);
        p50[store].push_back(single_task_p50(suite, singles));
        if (store == "postgres") {
          // A single task is two sequential commits (the submission with
          // its lease, then the result): set against the price of one.
          commit_p50.push_back(CommitP50(dsn, g_quick ? 100 : 300));
          std::fprintf(stderr,
                       "run %d: single task p50 %.2f ms (%.2f ms before the projection caught up "
                       "in %.1f s), one commit p50 %.2f ms\n",
                       run, p50[store].back(), busy_p50[store].back(),
                       catch_up_seconds[store].back(), commit_p50.back());
        }
        // The status of a finished 10,000-task execution: GetExecution
        // alone and the whole `gyre status` call path, 50 calls each.
        auto [status_latency, big] = suite.Start(status_def);
        if (!suite.Wait(big)) std::fprintf(stderr, "warning: execution did not succeed\n");
        std::vector<double> gets;
        for (int i = 0; i < 50; ++i) gets.push_back(absl::ToDoubleMilliseconds(suite.Get(big)));
        std::fprintf(stderr, "run %d, %s store: status calls on orchestrator pid %d\n", run,
                     store.c_str(), suite.server_pid());
        const Statuses busy = statuses_of(suite, big);
        const absl::Duration caught_up =
            store == "postgres" ? Suite::WaitForProjection(dsn) : absl::ZeroDuration();
        std::fprintf(stderr, "run %d, %s store: quiet status calls on orchestrator pid %d\n", run,
                     store.c_str(), suite.server_pid());
        const Statuses quiet = statuses_of(suite, big);
        std::fprintf(stderr,
                     "run %d, %s store: status p95 %.1f ms, CPU %.1f + %.1f ms (while the "
                     "projection caught up in %.1f s: p95 %.1f ms, CPU %.1f + %.1f ms)\n",
                     run, store.c_str(), Percentile(quiet.latencies, 0.95), quiet.server_cpu_ms,
                     quiet.client_cpu_ms, absl::ToDoubleSeconds(caught_up),
                     Percentile(busy.latencies, 0.95), busy.server_cpu_ms, busy.client_cpu_ms);
        get_p50[store].push_back(Percentile(gets, 0.5));
        get_p95[store].push_back(Percentile(gets, 0.95));
        status_p50[store].push_back(Percentile(quiet.latencies, 0.5));
        status_p95[store].push_back(Percentile(quiet.latencies, 0.95));
        status_server_cpu[store].push_back(quiet.server_cpu_ms);
        status_client_cpu[store].push_back(quiet.client_cpu_ms);
        busy_status_p50[store].push_back(Percentile(busy.latencies, 0.5));
        busy_status_p95[store].push_back(Percentile(busy.latencies, 0.95));
        busy_status_server_cpu[store].push_back(busy.server_cpu_ms);
      }
    }
    rows.push_back(
        {absl::StrFormat("independent no-op tasks, 2 agent processes, PostgreSQL store (%d tasks)",
                         noop_tasks),
         absl::StrFormat("%.0f tasks/s", Median(rates["postgres"])), ">= 10,000 tasks/s",
         Median(rates["postgres"]) >= 10000});
    rows.push_back({"  the same on the embedded store, same runs (reference)",
                    absl::StrFormat("%.0f tasks/s", Median(rates["embedded"])), "(reference)",
                    true});
    rows.push_back({"single task submit -> durable result (RunExecution) p50, PostgreSQL store",
                    absl::StrFormat("%.2f ms", Median(p50["postgres"])), "< 3 ms",
                    Median(p50["postgres"]) < 3});
    rows.push_back({"  the same on the embedded store, same runs (reference)",
                    absl::StrFormat("%.2f ms", Median(p50["embedded"])), "(reference)", true});
    rows.push_back(
        {"  the same right after the no-op run, while the projection writes its rows "
         "(caught up in: the median of its runs)",
         absl::StrFormat("%.2f ms (embedded store %.2f ms; caught up in %.1f s)",
                         Median(busy_p50["postgres"]), Median(busy_p50["embedded"]),
                         Median(catch_up_seconds["postgres"])),
         "< 3 ms", Median(busy_p50["postgres"]) < 3});
    rows.push_back(
        {"  one autocommit one-row INSERT on the same server, p50 (the machine's price of a "
         "durable commit; a single task is two in sequence)",
         absl::StrFormat("%.2f ms", Median(commit_p50)), "(reference)", true});
    rows.push_back(
        {g_status_paged || g_status_pages_on_heap
             ? "status of a finished 10,000-task execution as gyre status asked it before "
               "StreamTaskRuns (GetExecution + ListTaskRuns pages), p95 of 50, PostgreSQL store"
             : "status of a finished 10,000-task execution as gyre status asks it (GetExecution + "
               "StreamTaskRuns), p95 of 50, PostgreSQL store",
         absl::StrFormat("%.1f ms (p50 %.1f ms)", Median(status_p95["postgres"]),
                         Median(status_p50["postgres"])),
         "< 50 ms", Median(status_p95["postgres"]) < 50});
    rows.push_back({"  the same on the embedded store, same runs (reference)",
                    absl::StrFormat("%.1f ms (p50 %.1f ms)", Median(status_p95["embedded"]),
                                    Median(status_p50["embedded"])),
                    "(reference)", true});
    rows.push_back({"  CPU per such status: orchestrator + the client reading the pages",
                    absl::StrFormat("%.1f + %.1f ms (embedded store: %.1f + %.1f ms)",
                                    Median(status_server_cpu["postgres"]),
                                    Median(status_client_cpu["postgres"]),
                                    Median(status_server_cpu["embedded"]),
                                    Median(status_client_cpu["embedded"])),
                    "(reference)", true});
    rows.push_back(
        {"  the same status right after the execution ended, while the projection writes its "
         "rows (orchestrator CPU per status in brackets)",
         absl::StrFormat("%.1f ms (p50 %.1f ms; %.1f ms CPU) (embedded store %.1f ms)",
                         Median(busy_status_p95["postgres"]), Median(busy_status_p50["postgres"]),
                         Median(busy_status_server_cpu["postgres"]),
                         Median(busy_status_p95["embedded"])),
         "< 50 ms", Median(busy_status_p95["postgres"]) < 50});
    rows.push_back({"  of which GetExecution alone, p95 of 50, PostgreSQL store",
                    absl::StrFormat("%.2f ms (p50 %.2f ms)", Median(get_p95["postgres"]),
                                    Median(get_p50["postgres"])),
                    "< 50 ms", Median(get_p95["postgres"]) < 50});
    rows.push_back({"  the same on the embedded store, same runs (reference)",
                    absl::StrFormat("%.2f ms (p50 %.2f ms)", Median(get_p95["embedded"]),
                                    Median(get_p50["embedded"])),
                    "(reference)", true});
  }

  if (Selected("latency")) {
    // Percentiles of each run (fresh processes), then their medians: a p99
    // of one run's 300 samples is its 4th-slowest and moves with the noise.
    std::vector<double> p50, p99, two_call_p50, start_p50, get_p50;
    const v1::WorkflowDefinition one = Independent(1, false);
    for (int run = 0; run < (g_quick ? 1 : g_runs); ++run) {
      Suite suite(false, 1, 8);
      // Steady state: the first submissions of a fresh process pay for its
      // first connection, stream and allocations (10-15 ms for the very
      // first), which would be most of a p99 of 300.
      for (int i = 0; i < 20; ++i) (void)suite.Run(one);
      std::vector<double> latencies, two_call, start_latencies, get_latencies;
      for (int i = 0; i < (g_quick ? 50 : 300); ++i) {
        absl::Time start = absl::Now();
        if (!suite.Run(one)) {
          std::fprintf(stderr, "a single-task execution did not succeed\n");
          std::exit(1);
        }
        latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        // The same with two calls, as a client that starts and then watches.
        start = absl::Now();
        auto [latency, execution] = suite.Start(one);
        suite.Wait(execution);
        two_call.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        start_latencies.push_back(absl::ToDoubleMilliseconds(latency));
        get_latencies.push_back(absl::ToDoubleMilliseconds(suite.Get(execution)));
      }
      p50.push_back(Percentile(latencies, 0.5));
      p99.push_back(Percentile(latencies, 0.99));
      two_call_p50.push_back(Percentile(two_call, 0.5));
      start_p50.push_back(Percentile(start_latencies, 0.5));
      get_p50.push_back(Percentile(get_latencies, 0.5));
    }
    rows.push_back({"single task submit -> durable result over gRPC (RunExecution), p50",
                    absl::StrFormat("%.2f ms", Median(p50)), "< 1 ms", Median(p50) < 1});
    rows.push_back({"single task submit -> durable result over gRPC (RunExecution), p99",
                    absl::StrFormat("%.2f ms", Median(p99)), "< 5 ms", Median(p99) < 5});
    rows.push_back({"  the same as StartExecution, then WatchBatches, p50",
                    absl::StrFormat("%.2f ms", Median(two_call_p50)), "(reference)", true});
    rows.push_back({"  of which StartExecution (durable submission), p50",
                    absl::StrFormat("%.2f ms", Median(start_p50)), "(reference)", true});
    rows.push_back({"  a GetExecution round trip, p50", absl::StrFormat("%.2f ms", Median(get_p50)),
                    "(reference)", true});
  }

  if (Selected("memory")) {
    const int pending = g_quick ? 100000 : 1000000;
    Suite suite(false, 0, 1);
    const int64_t before = RssBytes(suite.server_pid());
    suite.Start(Independent(pending, false));
    absl::SleepFor(absl::Seconds(1));
    const double per_task = static_cast<double>(RssBytes(suite.server_pid()) - before) / pending;
    rows.push_back({absl::StrFormat("orchestrator memory per pending task (%d pending)", pending),
                    absl::StrFormat("%.0f bytes", per_task), "< 2,048 bytes", per_task < 2048});
  }
  if (Selected("restart")) {
    // Each task leaves two records (lease and result); a few hundred more
    // tasks than a million records need, as the last results may not be
    // durable yet when the orchestrator is killed.
    const int tasks = g_quick ? 20000 : 501000;
    std::vector<double> seconds;
    Suite::Restart last;
    for (int run = 0; run < (g_quick ? 1 : std::min(g_runs, 2)); ++run) {
      Suite suite(false, 2, 512);
      auto [latency, execution] = suite.Start(Independent(tasks, false));
      suite.Wait(execution);
      last = suite.KillAndRestart();
      seconds.push_back(absl::ToDoubleSeconds(last.took));
    }
    const int64_t records = last.snapshot + last.replayed;
    rows.push_back({absl::StrFormat("restart after SIGKILL: serving again (%d records in the log: "
                                    "snapshot at %d + %d replayed)",
                                    records, last.snapshot, last.replayed),
                    absl::StrFormat("%.2f s", Median(seconds)), "< 3 s (1,000,000 events)",
                    Median(seconds) < 3 && records >= 1000000});
  }
  Print(rows);
  return 0;
}

}  // namespace
}  // namespace gyre::bench

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--bin_dir=")) gyre::bench::g_bin_dir = arg.substr(10);
    // A count flag: a positive number, or the run stops with the reason.
    const auto count = [&](absl::string_view flag, int* into) {
      if (!absl::StartsWith(arg, flag)) return true;
      if (absl::SimpleAtoi(absl::string_view(arg).substr(flag.size()), into) && *into > 0) {
        return true;
      }
      std::fprintf(stderr, "engine_bench: %s wants a positive number, not \"%s\"\n",
                   std::string(flag.substr(0, flag.size() - 1)).c_str(),
                   arg.substr(flag.size()).c_str());
      return false;
    };
    if (!count("--runs=", &gyre::bench::g_runs) ||
        !count("--true_slots=", &gyre::bench::g_true_slots) ||
        !count("--true_tasks=", &gyre::bench::g_true_tasks)) {
      return 2;
    }
    if (arg == "--quick") gyre::bench::g_quick = true;
    if (arg == "--status_pages_on_heap") gyre::bench::g_status_pages_on_heap = true;
    if (arg == "--status_paged") gyre::bench::g_status_paged = true;
    if (absl::StartsWith(arg, "--before_agent=")) gyre::bench::g_before_agent = arg.substr(15);
    if (absl::StartsWith(arg, "--noop_tasks="))
      (void)absl::SimpleAtoi(arg.substr(13), &gyre::bench::g_noop_tasks);
    if (absl::StartsWith(arg, "--only=")) {
      gyre::bench::g_only = absl::StrSplit(arg.substr(7), ',', absl::SkipEmpty());
    }
  }
  return gyre::bench::Main();
}
