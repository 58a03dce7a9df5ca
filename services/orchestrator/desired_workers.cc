#include "services/orchestrator/desired_workers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gyre::orchestrator {

absl::Status WorkerPoolPolicy::Validate() const {
  if (min_workers < 0) {
    return absl::InvalidArgumentError(absl::StrCat("min_workers ", min_workers, " is negative"));
  }
  if (max_workers < min_workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_workers ", max_workers, " is below min_workers ", min_workers));
  }
  if (tasks_per_worker < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("factor ", tasks_per_worker, " must be at least 1"));
  }
  return absl::OkStatus();
}

int64_t DesiredWorkers(int64_t queued, int64_t running, const WorkerPoolPolicy& policy) {
  const int64_t backlog = std::max<int64_t>(0, queued) + std::max<int64_t>(0, running);
  const int64_t factor = std::max<int64_t>(1, policy.tasks_per_worker);
  const int64_t wanted = (backlog + factor - 1) / factor;
  return std::clamp(wanted, policy.min_workers, policy.max_workers);
}

}  // namespace gyre::orchestrator
