#include "services/scheduler/upward_rank.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace gyre::scheduler {

std::vector<double> UpwardRanksInOrder(const std::vector<std::vector<int>>& children,
                                       const std::vector<int>& topological_order,
                                       const std::vector<double>& durations) {
  std::vector<double> rank(durations.size(), 0.0);
  for (auto it = topological_order.rbegin(); it != topological_order.rend(); ++it) {
    const int task = *it;
    double longest_after = 0;
    for (int child : children[task]) longest_after = std::max(longest_after, rank[child]);
    rank[task] = durations[task] + longest_after;
  }
  return rank;
}

absl::StatusOr<std::vector<double>> UpwardRanks(const std::vector<std::vector<int>>& children,
                                                const std::vector<double>& durations) {
  const int n = static_cast<int>(children.size());
  if (durations.size() != children.size()) {
    return absl::InvalidArgumentError(absl::StrFormat("upward rank: %d tasks but %d durations", n,
                                                      static_cast<int>(durations.size())));
  }
  std::vector<int> unmet_parents(n, 0);
  for (int task = 0; task < n; ++task) {
    for (int child : children[task]) {
      if (child < 0 || child >= n) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "upward rank: task %d has child %d, outside 0..%d", task, child, n - 1));
      }
      ++unmet_parents[child];
    }
  }
  std::vector<int> order;
  order.reserve(n);
  for (int task = 0; task < n; ++task) {
    if (unmet_parents[task] == 0) order.push_back(task);
  }
  for (size_t next = 0; next < order.size(); ++next) {
    for (int child : children[order[next]]) {
      if (--unmet_parents[child] == 0) order.push_back(child);
    }
  }
  if (static_cast<int>(order.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("upward rank: the graph has a cycle (%d of %d tasks are on or after it)",
                        n - static_cast<int>(order.size()), n));
  }
  return UpwardRanksInOrder(children, order, durations);
}

}  // namespace gyre::scheduler
