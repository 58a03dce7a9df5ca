#include "services/orchestrator/retry_backoff.h"

#include <algorithm>
#include <cmath>

#include "absl/random/distributions.h"

namespace gyre::orchestrator {

absl::Duration RetryDelay(const RetryBackoffPolicy& policy, int64_t next_attempt,
                          absl::BitGenRef random) {
  const int64_t retry_index = std::max<int64_t>(0, next_attempt - 2);
  const double max_seconds = absl::ToDoubleSeconds(policy.max);
  // Computed in doubles and capped before converting: a large attempt count
  // must not overflow into a negative or infinite duration.
  const double base_seconds =
      std::min(max_seconds, absl::ToDoubleSeconds(policy.initial) *
                                std::pow(std::max(1.0, policy.multiplier),
                                         static_cast<double>(std::min<int64_t>(retry_index, 64))));
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double factor = 1.0 - jitter * absl::Uniform(random, 0.0, 1.0);
  return absl::Seconds(std::max(0.0, base_seconds * factor));
}

}  // namespace gyre::orchestrator
