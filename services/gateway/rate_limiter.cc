#include "services/gateway/rate_limiter.h"

#include <algorithm>

namespace gyre::gateway {

RateLimiter::RateLimiter(int64_t per_minute, int64_t burst)
    : buckets_({.per_second = static_cast<double>(std::max<int64_t>(0, per_minute)) / 60.0,
                .burst = static_cast<double>(std::max<int64_t>(1, burst))}) {}

}  // namespace gyre::gateway
