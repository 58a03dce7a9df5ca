#include "bench/spawn_ceiling.h"

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/time/clock.h"

extern char** environ;

namespace gyre::bench {
namespace {

void SpawnLoop(int spawns) {
  for (int i = 0; i < spawns; ++i) {
    pid_t pid = 0;
    char program[] = "/bin/true";
    char* argv[] = {program, nullptr};
    if (posix_spawn(&pid, program, nullptr, nullptr, argv, environ) == 0) {
      waitpid(pid, nullptr, 0);
    }
  }
}

double ChildrenCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

int SpawnLoops() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

double ConcurrentSpawnRate(int spawns_per_loop, double* task_cpu_us) {
  const int loops = SpawnLoops();
  const double children_before = ChildrenCpuSeconds();
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int loop = 0; loop < loops; ++loop) threads.emplace_back(SpawnLoop, spawns_per_loop);
  for (std::thread& thread : threads) thread.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (task_cpu_us != nullptr) {
    *task_cpu_us = (ChildrenCpuSeconds() - children_before) * 1e6 / (loops * spawns_per_loop);
  }
  return loops * spawns_per_loop / seconds;
}

double SequentialSpawnRate(int spawns) {
  const absl::Time start = absl::Now();
  SpawnLoop(spawns);
  return spawns / absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace gyre::bench
