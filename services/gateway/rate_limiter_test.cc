#include "services/gateway/rate_limiter.h"

#include "gtest/gtest.h"

namespace gyre::gateway {
namespace {

TEST(RateLimiterTest, AllowsTheBurstThenSaysWhenToRetry) {
  RateLimiter limiter(/*per_minute=*/60, /*burst=*/3);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take("a", t0), absl::ZeroDuration()) << i;
  const absl::Duration wait = limiter.Take("a", t0);
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LE(wait, absl::Seconds(1));
  // One token a second comes back.
  EXPECT_EQ(limiter.Take("a", t0 + absl::Seconds(1)), absl::ZeroDuration());
  // Principals have buckets of their own.
  EXPECT_EQ(limiter.Take("b", t0), absl::ZeroDuration());
}

TEST(RateLimiterTest, NeverSavesMoreThanTheBurst) {
  RateLimiter limiter(60, 2);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limiter.Take("a", t0), absl::ZeroDuration());
  const absl::Time later = t0 + absl::Hours(1);
  EXPECT_EQ(limiter.Take("a", later), absl::ZeroDuration());
  EXPECT_EQ(limiter.Take("a", later), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("a", later), absl::ZeroDuration());
}

TEST(RateLimiterTest, ZeroRateDisablesLimiting) {
  RateLimiter limiter(0, 1);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(limiter.Take("a", absl::UnixEpoch()), absl::ZeroDuration());
}

}  // namespace
}  // namespace gyre::gateway
