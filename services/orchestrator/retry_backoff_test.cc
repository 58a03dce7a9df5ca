#include "services/orchestrator/retry_backoff.h"

#include "absl/random/random.h"
#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

TEST(RetryBackoffTest, GrowsExponentiallyWithoutJitter) {
  absl::BitGen random;
  const RetryBackoffPolicy policy{absl::Seconds(1), absl::Minutes(5), 2.0, 0.0};
  EXPECT_EQ(RetryDelay(policy, 2, random), absl::Seconds(1));
  EXPECT_EQ(RetryDelay(policy, 3, random), absl::Seconds(2));
  EXPECT_EQ(RetryDelay(policy, 5, random), absl::Seconds(8));
}

TEST(RetryBackoffTest, CapsAtMaximumEvenForHugeAttemptNumbers) {
  absl::BitGen random;
  const RetryBackoffPolicy policy{absl::Seconds(1), absl::Seconds(30), 2.0, 0.0};
  EXPECT_EQ(RetryDelay(policy, 20, random), absl::Seconds(30));
  EXPECT_EQ(RetryDelay(policy, 1'000'000, random), absl::Seconds(30));
}

TEST(RetryBackoffTest, JitterStaysWithinItsFraction) {
  absl::BitGen random;
  const RetryBackoffPolicy policy{absl::Seconds(10), absl::Minutes(5), 2.0, 0.5};
  bool varied = false;
  const absl::Duration first = RetryDelay(policy, 2, random);
  for (int i = 0; i < 200; ++i) {
    const absl::Duration delay = RetryDelay(policy, 2, random);
    EXPECT_GT(delay, absl::Seconds(5));
    EXPECT_LE(delay, absl::Seconds(10));
    varied |= delay != first;
  }
  EXPECT_TRUE(varied) << "jitter 0.5 should spread delays";
}

}  // namespace
}  // namespace gyre::orchestrator
