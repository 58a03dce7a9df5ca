#ifndef GYRE_SERVICES_SCHEDULER_UPWARD_RANK_H_
#define GYRE_SERVICES_SCHEDULER_UPWARD_RANK_H_

#include <vector>

#include "absl/status/statusor.h"

namespace gyre::scheduler {

// HEFT's upward rank of every task of one execution: its own predicted
// duration plus the longest predicted path through its dependants to the
// execution's end, i.e. how long the execution needs at least from the
// moment this task starts. `children[i]` are the tasks that depend on task
// i, `durations[i]` its predicted seconds. InvalidArgument when the sizes
// differ, a child index is out of range, or the graph has a cycle.
absl::StatusOr<std::vector<double>> UpwardRanks(const std::vector<std::vector<int>>& children,
                                                const std::vector<double>& durations);

// The same with a topological order the caller already has (parents before
// children), for callers that refresh ranks often; no checks.
std::vector<double> UpwardRanksInOrder(const std::vector<std::vector<int>>& children,
                                       const std::vector<int>& topological_order,
                                       const std::vector<double>& durations);

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_UPWARD_RANK_H_
