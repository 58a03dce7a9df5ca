// The agent's executor alone (TaskRunner, in this process, no orchestrator):
// /bin/true tasks at a given concurrency against the machine's per-core
// spawn ceiling measured in the same run, and the CPU this process spends
// per task (its own, not the tasks'). For profiling the executor:
//
//   perf record -g -- build/bench/executor_bench --tasks=5000
//
//   executor_bench [--tasks=N] [--concurrency=C] [--runs=R]
//
// Also measured in the same run: the same tasks declaring 256 MiB and one
// core, each in a cgroup of its own where the machine allows it.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/spawn_ceiling.h"
#include "services/agent/task_cgroup.h"
#include "services/agent/task_runner.h"

namespace {

int g_tasks = 3000;
int g_concurrency = 64;
int g_runs = 3;

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

struct Measured {
  double rate = 0;
  double cpu_us = 0;
};

// g_tasks /bin/true tasks through a TaskRunner, g_concurrency at a time
// (as an agent with that many slots), each in its own working directory.
Measured ExecutorRate(const std::string& root,
                      std::shared_ptr<const gyre::agent::TaskCgroups> cgroups = nullptr) {
  gyre::agent::TaskRunner runner(gyre::Clock::Real(), cgroups);
  absl::Mutex mutex;
  int started = 0;
  int finished = 0;
  const double cpu_before = CpuSeconds();
  const absl::Time start = absl::Now();
  std::function<void()> start_one = [&] {
    gyre::agent::TaskLaunch launch;
    launch.argv = {"/bin/true"};
    int n;
    {
      absl::MutexLock lock(&mutex);
      n = started++;
    }
    launch.work_dir = absl::StrCat(root, "/t", n);
    launch.remove_work_dir = true;
    if (cgroups != nullptr) {
      launch.limits.memory_bytes = int64_t{256} << 20;
      launch.limits.cpu = 1;
    }
    runner.Start(std::move(launch), [&](gyre::agent::TaskOutcome outcome) {
      if (outcome.kind != gyre::agent::TaskOutcome::Kind::kSucceeded) {
        std::fprintf(stderr, "task failed: %s\n", outcome.error.c_str());
      }
      bool more = false;
      {
        absl::MutexLock lock(&mutex);
        finished++;
        more = started < g_tasks;
      }
      if (more) start_one();
    });
  };
  for (int i = 0; i < std::min(g_concurrency, g_tasks); ++i) start_one();
  absl::MutexLock lock(&mutex);
  auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) { return finished == g_tasks; };
  mutex.Await(absl::Condition(&all));
  Measured measured;
  measured.rate = g_tasks / absl::ToDoubleSeconds(absl::Now() - start);
  measured.cpu_us = (CpuSeconds() - cpu_before) * 1e6 / g_tasks;
  return measured;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--tasks=")) (void)absl::SimpleAtoi(arg.substr(8), &g_tasks);
    if (absl::StartsWith(arg, "--concurrency=")) {
      (void)absl::SimpleAtoi(arg.substr(14), &g_concurrency);
    }
    if (absl::StartsWith(arg, "--runs=")) (void)absl::SimpleAtoi(arg.substr(7), &g_runs);
  }
  char dir[] = "/tmp/gyre_executor_bench_XXXXXX";
  const std::string root = mkdtemp(dir);
  std::shared_ptr<const gyre::agent::TaskCgroups> cgroups =
      gyre::agent::TaskCgroups::Detect(absl::StrCat("gyre-bench-", getpid()));
  std::vector<double> ceilings, rates, cpu, cgroup_rates, cgroup_cpu;
  for (int run = 0; run < g_runs; ++run) {
    ceilings.push_back(
        gyre::bench::ConcurrentSpawnRate(std::max(1, g_tasks / gyre::bench::SpawnLoops())));
    const Measured measured = ExecutorRate(root);
    rates.push_back(measured.rate);
    cpu.push_back(measured.cpu_us);
    if (cgroups->enforced()) {
      const Measured limited = ExecutorRate(root, cgroups);
      cgroup_rates.push_back(limited.rate);
      cgroup_cpu.push_back(limited.cpu_us);
    }
  }
  std::filesystem::remove_all(root);
  std::printf("| Figure | Measured (median of %d) |\n|---|---|\n", g_runs);
  std::printf("| ceiling: one posix_spawn + waitpid loop per core | %.0f spawns/s |\n",
              Median(ceilings));
  std::printf("| TaskRunner, %d /bin/true tasks, %d at a time | %.0f tasks/s = %.0f%% |\n", g_tasks,
              g_concurrency, Median(rates), 100 * Median(rates) / Median(ceilings));
  std::printf("| TaskRunner's own CPU per task | %.0f us |\n", Median(cpu));
  if (cgroups->enforced()) {
    std::printf("| the same, each task in a cgroup (%s) | %.0f tasks/s = %.0f%% |\n",
                cgroups->description().substr(0, cgroups->description().find(' ', 10)).c_str(),
                Median(cgroup_rates), 100 * Median(cgroup_rates) / Median(ceilings));
    std::printf("| TaskRunner's own CPU per task, with cgroups | %.0f us |\n", Median(cgroup_cpu));
  } else {
    std::printf("| cgroups | not measured: %s |\n", cgroups->description().c_str());
  }
  return 0;
}
