#ifndef GYRE_SERVICES_GATEWAY_RATE_LIMITER_H_
#define GYRE_SERVICES_GATEWAY_RATE_LIMITER_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "libs/common/token_buckets.h"

namespace gyre::gateway {

// Requests per principal: `per_minute` tokens a minute, at most `burst`
// saved up (a token bucket per principal, memory bounded by
// KeyedTokenBuckets). Thread-safe.
class RateLimiter {
 public:
  // per_minute 0 disables limiting.
  RateLimiter(int64_t per_minute, int64_t burst);

  // Takes a token for `principal` at `now`; when there is none, how long
  // until there is (the Retry-After), else zero.
  absl::Duration Take(const std::string& principal, absl::Time now) {
    return buckets_.Take(principal, now);
  }

 private:
  KeyedTokenBuckets buckets_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_RATE_LIMITER_H_
