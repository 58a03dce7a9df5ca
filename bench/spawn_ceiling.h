#ifndef GYRE_BENCH_SPAWN_CEILING_H_
#define GYRE_BENCH_SPAWN_CEILING_H_

namespace gyre::bench {

// The machine's ceiling for running subprocesses, with no Gyre involved:
// posix_spawn + waitpid of /bin/true in a loop. The benchmarks compare
// Gyre's subprocess tasks with it, measured in the same run (the figure
// moves by 2x on a shared VM between quiet and busy minutes).

// One such loop per core (std::thread::hardware_concurrency), all running
// at once, `spawns_per_loop` each: what a spawner with every core can do.
// Spawns per second. `task_cpu_us`, when given, gets the CPU each spawned
// process used (from its clone to its exit, RUSAGE_CHILDREN), in us: what
// a task costs with no Gyre around it. The caller must have no other child
// ending meanwhile.
double ConcurrentSpawnRate(int spawns_per_loop, double* task_cpu_us = nullptr);

// One loop alone (one core), `spawns` spawns: the second reference.
// Spawns per second.
double SequentialSpawnRate(int spawns);

// The number of concurrent loops ConcurrentSpawnRate runs.
int SpawnLoops();

}  // namespace gyre::bench

#endif  // GYRE_BENCH_SPAWN_CEILING_H_
