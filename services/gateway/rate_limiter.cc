#include "services/gateway/rate_limiter.h"

#include <algorithm>

namespace gyre::gateway {

RateLimiter::RateLimiter(int64_t per_minute, int64_t burst)
    : per_second_(static_cast<double>(per_minute) / 60.0),
      burst_(static_cast<double>(std::max<int64_t>(1, burst))) {}

absl::Duration RateLimiter::Take(const std::string& principal, absl::Time now) {
  if (per_second_ <= 0) return absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = buckets_.try_emplace(principal, Bucket{burst_, now});
  Bucket& bucket = it->second;
  if (!inserted) {
    bucket.tokens =
        std::min(burst_, bucket.tokens + absl::ToDoubleSeconds(now - bucket.updated) * per_second_);
    bucket.updated = now;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - bucket.tokens) / per_second_);
}

}  // namespace gyre::gateway
