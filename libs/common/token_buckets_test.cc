#include "libs/common/token_buckets.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gyre {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(KeyedTokenBucketsTest, ABurstThenOneTokenPerPeriodPerKey) {
  KeyedTokenBuckets buckets({.per_second = 1, .burst = 3});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(buckets.Take("a", kT0), absl::ZeroDuration()) << i;
  const absl::Duration wait = buckets.Take("a", kT0);
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LE(wait, absl::Seconds(1));
  EXPECT_EQ(buckets.Take("a", kT0 + absl::Seconds(1)), absl::ZeroDuration());
  EXPECT_EQ(buckets.Take("b", kT0), absl::ZeroDuration());
}

TEST(KeyedTokenBucketsTest, NeverSavesMoreThanTheBurstAndDefaultsToOneSecondsWorth) {
  KeyedTokenBuckets buckets({.per_second = 2});
  EXPECT_EQ(buckets.burst(), 2);
  const absl::Time later = kT0 + absl::Hours(1);
  EXPECT_EQ(buckets.Take("a", later), absl::ZeroDuration());
  EXPECT_EQ(buckets.Take("a", later), absl::ZeroDuration());
  EXPECT_GT(buckets.Take("a", later), absl::ZeroDuration());
}

TEST(KeyedTokenBucketsTest, ZeroRateIsUnlimited) {
  KeyedTokenBuckets buckets({});
  EXPECT_FALSE(buckets.enabled());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(buckets.Take("a", kT0), absl::ZeroDuration());
}

TEST(KeyedTokenBucketsTest, ManyKeysKeepMemoryBounded) {
  KeyedTokenBuckets buckets({.per_second = 1, .burst = 1, .max_keys = 100});
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_EQ(buckets.Take(absl::StrCat("k", i), kT0), absl::ZeroDuration());
    ASSERT_LE(buckets.tracked_keys(), 100u) << i;
  }
}

TEST(KeyedTokenBucketsTest, MakingRoomDropsIdleKeysButABusyKeyStaysLimited) {
  KeyedTokenBuckets buckets({.per_second = 1, .burst = 1, .max_keys = 10});
  // Nine keys that are full again by kT0 + 10 s, and one emptied then.
  for (int i = 0; i < 9; ++i)
    EXPECT_EQ(buckets.Take(absl::StrCat("idle", i), kT0), absl::ZeroDuration());
  const absl::Time now = kT0 + absl::Seconds(10);
  EXPECT_EQ(buckets.Take("busy", now), absl::ZeroDuration());
  EXPECT_EQ(buckets.tracked_keys(), 10u);
  EXPECT_EQ(buckets.Take("new", now), absl::ZeroDuration());  // makes room
  EXPECT_EQ(buckets.tracked_keys(), 2u);                      // busy and new
  EXPECT_GT(buckets.Take("busy", now), absl::ZeroDuration());
}

}  // namespace
}  // namespace gyre
