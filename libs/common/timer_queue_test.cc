#include "libs/common/timer_queue.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace gyre {
namespace {

TEST(TimerQueueTest, RunsCallbacksInDueOrder) {
  TimerQueue timers;
  absl::Mutex mutex;
  std::vector<int> order;
  absl::Notification done;
  const absl::Time now = absl::Now();
  timers.Schedule(now + absl::Milliseconds(60), [&] {
    absl::MutexLock lock(&mutex);
    order.push_back(3);
    done.Notify();
  });
  timers.Schedule(now + absl::Milliseconds(20), [&] {
    absl::MutexLock lock(&mutex);
    order.push_back(1);
  });
  timers.Schedule(now + absl::Milliseconds(40), [&] {
    absl::MutexLock lock(&mutex);
    order.push_back(2);
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mutex);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueueTest, CancelledTimerDoesNotRun) {
  TimerQueue timers;
  std::atomic<bool> ran{false};
  absl::Notification later;
  const TimerQueue::TimerId id = timers.ScheduleAfter(absl::Milliseconds(10), [&] { ran = true; });
  EXPECT_TRUE(timers.Cancel(id));
  timers.ScheduleAfter(absl::Milliseconds(50), [&] { later.Notify(); });
  ASSERT_TRUE(later.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(ran);
}

TEST(TimerQueueTest, PastDeadlineRunsImmediately) {
  TimerQueue timers;
  absl::Notification done;
  timers.Schedule(absl::Now() - absl::Seconds(5), [&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace gyre
