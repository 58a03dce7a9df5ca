#include "services/orchestrator/stream_workers.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

TEST(StreamWorkersTest, OneWorkerRunsTasksInTheOrderPosted) {
  std::vector<int> ran;
  {
    StreamWorkers workers(1);
    for (int i = 0; i < 100; ++i) workers.Post([&ran, i] { ran.push_back(i); });
  }  // the destructor runs what is queued
  ASSERT_EQ(ran.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ran[static_cast<size_t>(i)], i);
}

TEST(StreamWorkersTest, ABlockedTaskDoesNotHoldUpTheOthers) {
  StreamWorkers workers(2);
  absl::Notification release;
  absl::Notification other_ran;
  workers.Post([&release] { release.WaitForNotification(); });  // a long durability wait
  workers.Post([&other_ran] { other_ran.Notify(); });
  other_ran.WaitForNotification();  // hangs (the test times out) if it waited
  release.Notify();
}

}  // namespace
}  // namespace gyre::orchestrator
