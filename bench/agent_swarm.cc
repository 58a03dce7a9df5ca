// 10,000 agents on one orchestrator (issue 27): a real gyre-orchestrator
// process, and in this process an AgentSwarm of lightweight agents (each its
// own Connect stream and id, one slot, heartbeats at the orchestrator's
// interval) multiplexed over a few channels. Rounds of concurrent
// executions of no-op tasks run against it for a while; then it prints the
// lease latency, whether any live agent was timed out, and the
// orchestrator's threads, RSS and CPU, each beside its target. Nothing here
// is an assertion (tests/agent_swarm_test.cc is the small checked version).
//
//   agent_swarm [--bin_dir=build] [--agents=10000] [--channels=64]
//               [--executions=1000] [--tasks=10] [--seconds=60]
//               [--heartbeat_interval=5s] [--lease_timeout=30s]
//
// Run it once with --bin_dir pointing at the build before a change (a copy
// of the old gyre-orchestrator under services/orchestrator/) and once after.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/testing/agent_swarm.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"

namespace gyre::bench {
namespace {

namespace v1 = ::gyre::v1;
using testing::AgentSwarm;
using testing::ChildProcess;

struct Flags {
  std::string bin_dir = "build";
  int agents = 10000;
  int channels = 64;
  int executions = 1000;
  int tasks = 10;
  int seconds = 60;
  int idle_seconds = 0;  // connected but no load first: heartbeats alone
  std::string heartbeat_interval = "5s";
  std::string lease_timeout = "30s";
};

// A field of /proc/PID/status ("Threads:", "VmRSS:" in kB).
int64_t ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  while (status >> key) {
    if (key == field) {
      int64_t value = 0;
      status >> value;
      return value;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

// CPU time (user + system) the process has used so far, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The cumulative buckets of a Prometheus histogram: upper bound -> count.
std::map<double, double> Buckets(const std::string& metrics, const std::string& name) {
  std::map<double, double> buckets;
  const std::string prefix = name + "_bucket{le=\"";
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    line.remove_prefix(prefix.size());
    const size_t quote = line.find('"');
    const size_t space = line.rfind(' ');
    double bound = 0, count = 0;
    const absl::string_view bound_text = line.substr(0, quote);
    if (bound_text == "+Inf") {
      bound = 1e300;
    } else if (!absl::SimpleAtod(bound_text, &bound)) {
      continue;
    }
    if (absl::SimpleAtod(line.substr(space + 1), &count)) buckets[bound] = count;
  }
  return buckets;
}

// A quantile of the observations between two scrapes of a histogram,
// interpolated linearly inside its bucket (as Prometheus'
// histogram_quantile does).
double Quantile(const std::map<double, double>& before, const std::map<double, double>& after,
                double q) {
  std::vector<std::pair<double, double>> delta;
  for (const auto& [bound, count] : after) {
    auto it = before.find(bound);
    delta.push_back({bound, count - (it == before.end() ? 0 : it->second)});
  }
  if (delta.empty() || delta.back().second <= 0) return 0;
  const double rank = q * delta.back().second;
  double lower = 0, below = 0;
  for (const auto& [bound, count] : delta) {
    if (count >= rank) {
      if (bound > 1e299) return lower;
      return lower + (bound - lower) * (rank - below) / std::max(count - below, 1e-9);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

double Gauge(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
    }
  }
  return -1;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

std::string Metrics(int port) {
  absl::StatusOr<testing::HttpResponse> response = testing::HttpGet("127.0.0.1", port, "/metrics");
  return response.ok() ? response->body : "";
}

// Samples the orchestrator's threads and RSS while the load runs.
class ProcessSampler {
 public:
  explicit ProcessSampler(pid_t pid) : pid_(pid), thread_([this] { Run(); }) {}
  ~ProcessSampler() {
    {
      absl::MutexLock lock(&mutex_);
      stop_ = true;
    }
    thread_.join();
  }
  int64_t peak_threads() {
    absl::MutexLock lock(&mutex_);
    return peak_threads_;
  }
  int64_t peak_rss_kb() {
    absl::MutexLock lock(&mutex_);
    return peak_rss_kb_;
  }

 private:
  void Run() {
    absl::MutexLock lock(&mutex_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stop_; };
    while (!mutex_.AwaitWithTimeout(absl::Condition(&stop), absl::Milliseconds(250))) {
      peak_threads_ = std::max(peak_threads_, ProcStatus(pid_, "Threads:"));
      peak_rss_kb_ = std::max(peak_rss_kb_, ProcStatus(pid_, "VmRSS:"));
    }
  }

  const pid_t pid_;
  absl::Mutex mutex_;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t peak_threads_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t peak_rss_kb_ ABSL_GUARDED_BY(mutex_) = 0;
  std::thread thread_;
};

v1::StartExecutionRequest NoopExecution(int tasks) {
  v1::StartExecutionRequest request;
  request.mutable_definition()->set_name("swarm");
  for (int i = 0; i < tasks; ++i) {
    v1::TaskSpec* task = request.mutable_definition()->add_tasks();
    task->set_id(absl::StrCat("t", i));
    task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  }
  return request;
}

// Starts `count` executions at once (the callback API: no thread each);
// returns their names with the time each call began.
std::map<std::string, absl::Time> StartExecutions(v1::OrchestratorService::Stub* stub, int count,
                                                  const v1::StartExecutionRequest& request) {
  struct Call {
    grpc::ClientContext context;
    v1::Execution execution;
    absl::Time began;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  absl::Mutex mutex;
  int done = 0;
  for (int i = 0; i < count; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* call = calls.back().get();
    call->began = absl::Now();
    stub->async()->StartExecution(&call->context, &request, &call->execution,
                                  [call, &mutex, &done](grpc::Status status) {
                                    absl::MutexLock lock(&mutex);
                                    call->status = std::move(status);
                                    ++done;
                                  });
  }
  absl::MutexLock lock(&mutex);
  auto all = [&done, count]() { return done == count; };
  mutex.Await(absl::Condition(&all));
  std::map<std::string, absl::Time> started;
  for (const auto& call : calls) {
    if (!call->status.ok()) {
      std::fprintf(stderr, "start failed: %s\n", call->status.error_message().c_str());
      continue;
    }
    started[call->execution.name()] = call->began;
  }
  return started;
}

int Main(const Flags& flags) {
  // Each stream is no descriptor here (they share the channels), but be
  // generous: the orchestrator inherits this limit too.
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);

  char dir[] = "/tmp/gyre_swarm_XXXXXX";
  const std::string root = mkdtemp(dir);
  auto orchestrator = ChildProcess::Start(
      {flags.bin_dir + "/services/orchestrator/gyre-orchestrator", "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--data_dir=" + root + "/data"},
      {"GYRE_HEARTBEAT_INTERVAL=" + flags.heartbeat_interval,
       "GYRE_LEASE_TIMEOUT=" + flags.lease_timeout});
  if (!orchestrator.ok()) {
    std::fprintf(stderr, "%s\n", orchestrator.status().ToString().c_str());
    return 1;
  }
  auto serving = (*orchestrator)
                     ->WaitForLine(
                         [](const std::string& line) {
                           return absl::StrContains(line, "\"msg\":\"serving\"");
                         },
                         absl::Seconds(30));
  if (!serving.ok()) {
    std::fprintf(stderr, "orchestrator did not start: %s\n", serving.status().ToString().c_str());
    return 1;
  }
  const pid_t pid = (*orchestrator)->pid();
  const std::string address =
      absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
  const int metrics_port = *testing::JsonIntField(*serving, "metrics_port");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);  // ListAgents of 10,000 agents
  auto stub = v1::OrchestratorService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));

  std::printf("orchestrator %s, %d agents over %d channels, heartbeat %s, lease timeout %s\n",
              flags.bin_dir.c_str(), flags.agents, flags.channels, flags.heartbeat_interval.c_str(),
              flags.lease_timeout.c_str());
  AgentSwarm swarm({.address = address, .agents = flags.agents, .channels = flags.channels});
  const absl::Time connect_start = absl::Now();
  const int registered = swarm.Connect(absl::Minutes(5));
  const absl::Duration connect_time = absl::Now() - connect_start;
  // Settle: every stream idle, heartbeats running.
  absl::SleepFor(absl::Seconds(2) + absl::Seconds(flags.idle_seconds));
  const int64_t idle_threads = ProcStatus(pid, "Threads:");
  const int64_t idle_rss_kb = ProcStatus(pid, "VmRSS:");
  std::printf(
      "connected %d of %d agents in %.1f s; idle: %lld threads, RSS %.0f MiB, %zu problems, %lld "
      "heartbeats\n",
      registered, flags.agents, absl::ToDoubleSeconds(connect_time),
      static_cast<long long>(idle_threads), static_cast<double>(idle_rss_kb) / 1024,
      swarm.Problems().size(), static_cast<long long>(swarm.heartbeats_sent()));

  const std::string metrics_before = Metrics(metrics_port);
  const v1::StartExecutionRequest request = NoopExecution(flags.tasks);
  std::map<std::string, absl::Time> started;
  std::vector<double> client_latency_ms;
  int rounds = 0;
  int64_t expected = 0;
  bool stalled = false;
  const double cpu_start = CpuSeconds(pid);
  const absl::Time load_start = absl::Now();
  {
    ProcessSampler sampler(pid);
    while (absl::Now() - load_start < absl::Seconds(flags.seconds)) {
      std::map<std::string, absl::Time> round =
          StartExecutions(stub.get(), flags.executions, request);
      expected += static_cast<int64_t>(round.size()) * flags.tasks;
      if (!swarm.AwaitResults(expected, absl::Minutes(2))) {
        std::fprintf(stderr, "round %d: %lld of %lld results after 2 minutes\n", rounds,
                     static_cast<long long>(swarm.results_sent()),
                     static_cast<long long>(expected));
        stalled = true;
        break;
      }
      ++rounds;
      started.merge(round);
      // Client side: from the start call's beginning to the assignment's
      // arrival at the agent (includes the start's durability wait).
      for (const AgentSwarm::Receipt& receipt : swarm.TakeReceipts()) {
        auto it = started.find(receipt.execution);
        if (it != started.end()) {
          client_latency_ms.push_back(absl::ToDoubleMilliseconds(receipt.received - it->second));
        }
      }
    }
    const double load_seconds = absl::ToDoubleSeconds(absl::Now() - load_start);
    const double cpu = CpuSeconds(pid) - cpu_start;
    const std::string metrics_after = Metrics(metrics_port);
    const auto before = Buckets(metrics_before, "gyre_lease_latency_seconds");
    const auto after = Buckets(metrics_after, "gyre_lease_latency_seconds");

    // Every execution ended well?
    int succeeded = 0;
    for (const auto& [name, began] : started) {
      for (int attempt = 0; attempt < 100; ++attempt) {
        grpc::ClientContext call;
        v1::GetExecutionRequest get;
        get.set_name(name);
        v1::Execution execution;
        if (stub->GetExecution(&call, get, &execution).ok() &&
            execution.state() == v1::EXECUTION_SUCCEEDED) {
          ++succeeded;
          break;
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    grpc::ClientContext list_call;
    v1::ListAgentsResponse agents;
    int connected = 0;
    if (stub->ListAgents(&list_call, v1::ListAgentsRequest(), &agents).ok()) {
      for (const v1::AgentInfo& agent : agents.agents()) {
        connected += agent.state() == v1::AgentInfo::CONNECTED;
      }
    }
    const std::string log = (*orchestrator)->Output();
    int declared_dead = 0;
    for (size_t at = log.find("agent declared dead"); at != std::string::npos;
         at = log.find("agent declared dead", at + 1)) {
      ++declared_dead;
    }
    const std::vector<std::string> problems = swarm.Problems();

    const double p50 = Quantile(before, after, 0.5) * 1000;
    const double p99 = Quantile(before, after, 0.99) * 1000;
    std::printf(
        "%d rounds of %d executions x %d no-op tasks in %.1f s: %zu executions, %d "
        "succeeded, %lld task results, %lld heartbeats%s\n",
        rounds, flags.executions, flags.tasks, load_seconds, started.size(), succeeded,
        static_cast<long long>(swarm.results_sent()),
        static_cast<long long>(swarm.heartbeats_sent()), stalled ? " (STALLED)" : "");
    std::printf("| figure | value | target | met |\n|---|---|---|---|\n");
    std::printf("| lease latency p50 (orchestrator histogram) | %.2f ms | | |\n", p50);
    std::printf("| lease latency p99 (orchestrator histogram) | %.2f ms | < 50 ms | %s |\n", p99,
                p99 < 50 ? "yes" : "no");
    std::printf("| start call -> assignment at agent, p50 / p99 (client) | %.1f / %.1f ms | | |\n",
                Percentile(client_latency_ms, 0.5), Percentile(client_latency_ms, 0.99));
    std::printf("| agents declared dead / connected at the end | %d / %d of %d | 0 / all | %s |\n",
                declared_dead, connected, registered,
                declared_dead == 0 && connected == registered ? "yes" : "no");
    std::printf("| swarm problems (streams ended, Shutdown, Cancel) | %zu | 0 | %s |\n",
                problems.size(), problems.empty() ? "yes" : "no");
    std::printf("| orchestrator threads, idle / peak under load | %lld / %lld | | |\n",
                static_cast<long long>(idle_threads),
                static_cast<long long>(sampler.peak_threads()));
    std::printf("| orchestrator RSS, idle / peak under load | %.0f / %.0f MiB | | |\n",
                static_cast<double>(idle_rss_kb) / 1024,
                static_cast<double>(sampler.peak_rss_kb()) / 1024);
    std::printf("| orchestrator CPU under load | %.2f cores (%.1f s in %.1f s) | | |\n",
                cpu / load_seconds, cpu, load_seconds);
    std::printf("| gyre_agents_connected at the end | %.0f | | |\n",
                Gauge(metrics_after, "gyre_agents_connected"));
    for (size_t i = 0; i < problems.size() && i < 5; ++i) {
      std::printf("problem: %s\n", problems[i].c_str());
    }
  }
  std::filesystem::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace gyre::bench

int main(int argc, char** argv) {
  gyre::bench::Flags flags;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    auto value = [arg](absl::string_view name) -> std::optional<std::string> {
      if (!absl::StartsWith(arg, name)) return std::nullopt;
      return std::string(arg.substr(name.size()));
    };
    if (auto v = value("--bin_dir=")) flags.bin_dir = *v;
    if (auto v = value("--agents=")) (void)absl::SimpleAtoi(*v, &flags.agents);
    if (auto v = value("--channels=")) (void)absl::SimpleAtoi(*v, &flags.channels);
    if (auto v = value("--executions=")) (void)absl::SimpleAtoi(*v, &flags.executions);
    if (auto v = value("--tasks=")) (void)absl::SimpleAtoi(*v, &flags.tasks);
    if (auto v = value("--seconds=")) (void)absl::SimpleAtoi(*v, &flags.seconds);
    if (auto v = value("--idle_seconds=")) (void)absl::SimpleAtoi(*v, &flags.idle_seconds);
    if (auto v = value("--heartbeat_interval=")) flags.heartbeat_interval = *v;
    if (auto v = value("--lease_timeout=")) flags.lease_timeout = *v;
  }
  return gyre::bench::Main(flags);
}
