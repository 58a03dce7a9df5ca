#ifndef GYRE_SERVICES_ORCHESTRATOR_RETRY_BACKOFF_H_
#define GYRE_SERVICES_ORCHESTRATOR_RETRY_BACKOFF_H_

#include <cstdint>

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace gyre::orchestrator {

// How long to wait before retrying a failed task attempt.
struct RetryBackoffPolicy {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Minutes(5);
  double multiplier = 2.0;
  // Fraction of the delay that is randomized, in [0, 1]: 0 is deterministic;
  // 1 is "full jitter". Jitter spreads retries of tasks that failed together
  // (a flapping dependency) so they do not return in lockstep.
  double jitter = 0.2;
};

// Delay before attempt number `next_attempt` (2 for the first retry):
//   base = min(max, initial * multiplier^(next_attempt - 2))
//   delay = base * (1 - jitter * u), u uniform in [0, 1)
// Never negative, never above `max`.
absl::Duration RetryDelay(const RetryBackoffPolicy& policy, int64_t next_attempt,
                          absl::BitGenRef random);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_RETRY_BACKOFF_H_
