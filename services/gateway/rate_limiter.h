#ifndef GYRE_SERVICES_GATEWAY_RATE_LIMITER_H_
#define GYRE_SERVICES_GATEWAY_RATE_LIMITER_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gyre::gateway {

// A token bucket per principal: `per_minute` tokens a minute, at most
// `burst` saved up. Thread-safe (one mutex; a request costs one hash
// lookup under it).
class RateLimiter {
 public:
  // per_minute 0 disables limiting.
  RateLimiter(int64_t per_minute, int64_t burst);

  // Takes a token for `principal` at `now`; when there is none, how long
  // until there is (the Retry-After), else zero.
  absl::Duration Take(const std::string& principal, absl::Time now);

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  const double per_second_;
  const double burst_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_RATE_LIMITER_H_
