#include "libs/common/clock.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/common/timer_queue.h"

namespace gyre {
namespace {

TEST(FakeClockTest, MovesOnlyWhenTold) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(clock.Now(), start + absl::Hours(1));
  clock.Set(start);
  EXPECT_EQ(clock.Now(), start);
}

TEST(FakeClockTest, SleepEndsWhenTimeIsAdvancedPastIt) {
  FakeClock clock;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    clock.SleepFor(absl::Hours(24));
    woke = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(woke.load()) << "a day of fake time passed in 50 ms of real time";
  clock.Advance(absl::Hours(24));
  sleeper.join();
  EXPECT_TRUE(woke.load());
}

TEST(FakeClockTest, TimerQueueRunsTimersWhenFakeTimeReachesThem) {
  FakeClock clock;
  TimerQueue timers(&clock);
  absl::Notification ran;
  timers.ScheduleAfter(absl::Minutes(10), [&] { ran.Notify(); });
  EXPECT_FALSE(ran.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  clock.Advance(absl::Minutes(10));
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(FakeClockTest, AdvanceUntilStepsUntilTheConditionHolds) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  // The sleeper starts its wait at a moment the test does not know.
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    absl::SleepFor(absl::Milliseconds(20));
    clock.SleepFor(absl::Minutes(5));
    woke = true;
  });
  EXPECT_TRUE(clock.AdvanceUntil([&] { return woke.load(); }, absl::Minutes(1)));
  sleeper.join();
  EXPECT_GE(clock.Now() - start, absl::Minutes(5));
  EXPECT_FALSE(clock.AdvanceUntil([] { return false; }, absl::Minutes(1), absl::Milliseconds(50)))
      << "gives up after the real timeout";
}

TEST(FakeClockTest, ARealTimeWaitOnAFakeClockIsShort) {
  FakeClock clock;
  EXPECT_LE(clock.MaxRealWait(absl::Hours(1)), absl::Milliseconds(10))
      << "a poll() of an hour would not see an Advance";
  EXPECT_EQ(clock.MaxRealWait(absl::Microseconds(1)), absl::Microseconds(1));
  EXPECT_EQ(Clock::Real()->MaxRealWait(absl::Hours(1)), absl::Hours(1));
}

TEST(RealClockTest, FollowsTheSystemClock) {
  const absl::Time before = absl::Now();
  const absl::Time now = Clock::Real()->Now();
  EXPECT_GE(now, before);
  EXPECT_LE(now, absl::Now());
}

}  // namespace
}  // namespace gyre
