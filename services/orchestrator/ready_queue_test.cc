#include "services/orchestrator/ready_queue.h"

#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

ReadyVerdict TakeAll(const ReadyTask&) { return ReadyVerdict::kTake; }

std::vector<uint32_t> TaskIds(const std::vector<ReadyTask>& tasks) {
  std::vector<uint32_t> ids;
  ids.reserve(tasks.size());
  for (const ReadyTask& task : tasks) ids.push_back(task.task);
  return ids;
}

TEST(ReadyQueueTest, HighestPriorityFirstThenFifo) {
  ReadyQueue queue;
  queue.Push({0, 1, 10});
  queue.Push({0, 2, 90});
  queue.Push({0, 3, 10});
  queue.Push({0, 4, 100});
  queue.Push({0, 5, 0});
  std::vector<ReadyTask> out;
  EXPECT_EQ(queue.PopMatching(10, 100, TakeAll, &out), 5u);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{4, 2, 1, 3, 5}));
  EXPECT_TRUE(queue.empty());
}

TEST(ReadyQueueTest, PopsAtMostMax) {
  ReadyQueue queue;
  for (uint32_t i = 0; i < 10; ++i) queue.Push({0, i, 50});
  std::vector<ReadyTask> out;
  EXPECT_EQ(queue.PopMatching(3, 100, TakeAll, &out), 3u);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(queue.size(), 7u);
}

TEST(ReadyQueueTest, SkippedTasksStayQueuedInOrder) {
  ReadyQueue queue;
  for (uint32_t i = 0; i < 6; ++i) queue.Push({0, i, 50});
  std::vector<ReadyTask> out;
  // An agent that only fits even tasks.
  queue.PopMatching(
      10, 100,
      [](const ReadyTask& t) {
        return t.task % 2 == 0 ? ReadyVerdict::kTake : ReadyVerdict::kSkip;
      },
      &out);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{0, 2, 4}));
  out.clear();
  queue.PopMatching(10, 100, TakeAll, &out);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{1, 3, 5}));
}

TEST(ReadyQueueTest, StaleEntriesAreDroppedNotReturned) {
  ReadyQueue queue;
  queue.Push({0, 1, 50, /*generation=*/1});
  queue.Push({0, 2, 50, /*generation=*/0});
  std::vector<ReadyTask> out;
  queue.PopMatching(
      10, 100,
      [](const ReadyTask& t) {
        return t.generation == 1 ? ReadyVerdict::kDrop : ReadyVerdict::kTake;
      },
      &out);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{2}));
  EXPECT_TRUE(queue.empty());
}

TEST(ReadyQueueTest, ScanLimitBoundsWorkForAnAgentThatFitsNothing) {
  ReadyQueue queue;
  for (uint32_t i = 0; i < 1000; ++i) queue.Push({0, i, 50});
  int looked_at = 0;
  std::vector<ReadyTask> out;
  queue.PopMatching(
      10, 64,
      [&](const ReadyTask&) {
        ++looked_at;
        return ReadyVerdict::kSkip;
      },
      &out);
  EXPECT_EQ(looked_at, 64);
  EXPECT_EQ(queue.size(), 1000u);
}

TEST(ReadyQueueTest, StaleEntriesBeyondTheScanLimitNeverHideALiveOne) {
  // What a cancelled execution or a replayed log leaves ahead of live
  // work: every pass must reach the live entry, not only some later pass.
  ReadyQueue queue;
  for (uint32_t i = 0; i < 1000; ++i) queue.Push({0, i, 50, /*generation=*/1});
  queue.Push({0, 5000, 50, /*generation=*/0});
  std::vector<ReadyTask> out;
  queue.PopMatching(
      1, 64,
      [](const ReadyTask& t) {
        return t.generation == 1 ? ReadyVerdict::kDrop : ReadyVerdict::kTake;
      },
      &out);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{5000}));
  EXPECT_TRUE(queue.empty());
}

TEST(ReadyQueueTest, VisitSeesEntriesInPopOrderAndStopsWhenAsked) {
  ReadyQueue queue;
  queue.Push({0, 1, 10});
  queue.Push({0, 2, 90});
  queue.Push({0, 3, 10});
  std::vector<uint32_t> seen;
  queue.Visit(10, [&](const ReadyTask& task) {
    seen.push_back(task.task);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<uint32_t>{2, 1, 3}));
  seen.clear();
  queue.Visit(2, [&](const ReadyTask& task) {
    seen.push_back(task.task);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<uint32_t>{2, 1})) << "at most max_entries";
  EXPECT_EQ(queue.size(), 3u) << "Visit removes nothing";
}

TEST(ReadyQueueTest, PushFrontGoesAheadOfItsLevelOnly) {
  ReadyQueue queue;
  queue.Push({0, 1, 50});
  queue.Push({0, 2, 90});
  queue.PushFront({0, 3, 50});
  std::vector<ReadyTask> out;
  EXPECT_EQ(queue.PopMatching(10, 100, TakeAll, &out), 3u);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{2, 3, 1}));
}

TEST(ReadyQueueTest, DropStaleRemovesOnlyStaleEntriesAndKeepsTheOrder) {
  ReadyQueue queue;
  for (uint32_t i = 0; i < 6; ++i) queue.Push({0, i, static_cast<uint8_t>(i < 3 ? 50 : 60)});
  EXPECT_EQ(queue.DropStale([](const ReadyTask& task) { return task.task % 2 == 0; }), 3u);
  EXPECT_EQ(queue.size(), 3u);
  std::vector<ReadyTask> out;
  EXPECT_EQ(queue.PopMatching(10, 100, TakeAll, &out), 3u);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{3, 5, 1}));
}

TEST(ReadyQueueTest, PriorityAboveRangeIsClampedToHighest) {
  ReadyQueue queue;
  queue.Push({0, 1, 50});
  queue.Push({0, 2, 255});
  std::vector<ReadyTask> out;
  queue.PopMatching(1, 10, TakeAll, &out);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{2}));
}

TEST(ReadyQueueTest, AnEmptyQueueIsSmallAndReleaseFreesWhatWasPushed) {
  // A queue name an agent lists costs a ReadyQueue: it must not hold 101
  // deques (~66 KB) before anything is pushed.
  EXPECT_LT(sizeof(ReadyQueue), 1024u);
  ReadyQueue queue;
  for (uint32_t i = 0; i < 100; ++i) queue.Push({0, i, static_cast<uint8_t>(i)});
  queue.Release();
  EXPECT_TRUE(queue.empty());
  std::vector<ReadyTask> out;
  EXPECT_EQ(queue.PopMatching(10, 100, TakeAll, &out), 0u);
  // Usable again after a release.
  queue.Push({0, 7, 3});
  EXPECT_EQ(queue.PopMatching(10, 100, TakeAll, &out), 1u);
  EXPECT_EQ(TaskIds(out), (std::vector<uint32_t>{7}));
}

}  // namespace
}  // namespace gyre::orchestrator
