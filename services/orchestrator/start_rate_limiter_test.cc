#include "services/orchestrator/start_rate_limiter.h"

#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

TEST(StartRateLimiterTest, OffByDefault) {
  StartRateLimiter limiter({});
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(limiter.Admit("c", kStart).ok());
}

TEST(StartRateLimiterTest, ABurstThenTheRateAndTheErrorNamesTheLimit) {
  StartRateLimiter limiter({.per_second = 2, .burst = 3});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("c", kStart).ok()) << i;
  const absl::Status refused = limiter.Admit("c", kStart);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(),
            "client \"c\" started executions faster than the orchestrator's "
            "executions_per_second_per_client (2 a second, bursts of 3); retry in 0.500 s");
  // Another client has its own bucket.
  EXPECT_TRUE(limiter.Admit("d", kStart).ok());
  // Half a second later one more start is allowed, not two.
  EXPECT_TRUE(limiter.Admit("c", kStart + absl::Milliseconds(500)).ok());
  EXPECT_FALSE(limiter.Admit("c", kStart + absl::Milliseconds(500)).ok());
  // A long pause refills to the burst, no more.
  const absl::Time later = kStart + absl::Hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("c", later).ok()) << i;
  EXPECT_FALSE(limiter.Admit("c", later).ok());
}

TEST(StartRateLimiterTest, ManyClientsKeepMemoryBounded) {
  StartRateLimiter limiter({.per_second = 1, .burst = 1});
  // Each new address empties its bucket; the map never passes its bound
  // and every first start of a new client is admitted.
  for (size_t i = 0; i < StartRateLimiter::kMaxClients + 1000; ++i) {
    ASSERT_TRUE(limiter.Admit("ipv4:10.0.0." + std::to_string(i), kStart).ok()) << i;
  }
}

TEST(StartRateLimiterTest, ClientKeyIsThePrincipalElseThePeerWithoutItsPort) {
  EXPECT_EQ(StartRateLimiter::ClientKey("alice", "ipv4:10.0.0.7:53412"), "principal:alice");
  EXPECT_EQ(StartRateLimiter::ClientKey("", "ipv4:10.0.0.7:53412"), "ipv4:10.0.0.7");
  EXPECT_EQ(StartRateLimiter::ClientKey("", "ipv6:[::1]:53412"), "ipv6:[::1]");
  EXPECT_EQ(StartRateLimiter::ClientKey("", "unix:/run/gyre.sock"), "unix:/run/gyre.sock");
}

}  // namespace
}  // namespace gyre::orchestrator
