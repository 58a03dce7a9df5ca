#include "services/agent/supervisor_threads.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gyre::agent {
namespace {

TEST(SupervisorThreadsTest, AThreadIsReusedForJobsOneAfterAnother) {
  SupervisorThreads pool;
  for (int i = 0; i < 20; ++i) {
    absl::Notification done;
    pool.Run([&done] { done.Notify(); });
    done.WaitForNotification();
    // Once its thread waits again, the next job goes to it.
    for (int wait = 0; wait < 5000 && pool.idle() < pool.threads(); ++wait) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  EXPECT_EQ(pool.threads(), 1u) << "not a thread per job";
}

TEST(SupervisorThreadsTest, JobsRunningAtOnceEachGetAThread) {
  SupervisorThreads pool;
  constexpr int kJobs = 8;
  absl::Notification release;
  std::atomic<int> started{0};
  for (int i = 0; i < kJobs; ++i) {
    pool.Run([&] {
      started++;
      release.WaitForNotification();
    });
  }
  // All of them run together (none waits for another to finish).
  for (int wait = 0; wait < 5000 && started < kJobs; ++wait) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(started, kJobs);
  EXPECT_EQ(pool.threads(), size_t{kJobs});
  release.Notify();
}

TEST(SupervisorThreadsTest, AThreadIdleTooLongEnds) {
  FakeClock clock;
  const absl::Duration idle_timeout = absl::Minutes(1);
  SupervisorThreads pool(&clock, idle_timeout);
  for (int round = 0; round < 2; ++round) {
    absl::Notification done;
    pool.Run([&done] { done.Notify(); });
    done.WaitForNotification();
    const absl::Time idle_since = clock.Now();
    EXPECT_TRUE(clock.AdvanceUntil([&] { return pool.threads() == 0; }, absl::Seconds(5)))
        << "round " << round;  // and a new one serves the next job
    EXPECT_GE(clock.Now() - idle_since, idle_timeout) << "not before the idle timeout";
  }
}

TEST(SupervisorThreadsTest, DestructionWaitsForEveryJob) {
  std::atomic<int> finished{0};
  {
    SupervisorThreads pool;
    for (int i = 0; i < 4; ++i) {
      pool.Run([&finished, &pool] {
        absl::SleepFor(absl::Milliseconds(20));
        // A job may queue another while the pool is being destroyed.
        if (finished.fetch_add(1) == 0) pool.Run([&finished] { finished++; });
      });
    }
  }
  EXPECT_EQ(finished, 5);
}

}  // namespace
}  // namespace gyre::agent
