#include "bench/spawn_ceiling.h"

#include <spawn.h>
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

}  // namespace

int SpawnLoops() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

double ConcurrentSpawnRate(int spawns_per_loop) {
  const int loops = SpawnLoops();
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int loop = 0; loop < loops; ++loop) threads.emplace_back(SpawnLoop, spawns_per_loop);
  for (std::thread& thread : threads) thread.join();
  return loops * spawns_per_loop / absl::ToDoubleSeconds(absl::Now() - start);
}

double SequentialSpawnRate(int spawns) {
  const absl::Time start = absl::Now();
  SpawnLoop(spawns);
  return spawns / absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace gyre::bench
