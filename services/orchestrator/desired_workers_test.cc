#include "services/orchestrator/desired_workers.h"

#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

TEST(DesiredWorkersTest, IssueExampleEighteenQueuedFactorSixGivesThree) {
  EXPECT_EQ(DesiredWorkers(18, 0, {0, 4, 6}), 3);
}

TEST(DesiredWorkersTest, RoundsUpPartialWorkers) {
  EXPECT_EQ(DesiredWorkers(19, 0, {0, 10, 6}), 4);
  EXPECT_EQ(DesiredWorkers(1, 0, {0, 10, 6}), 1);
}

TEST(DesiredWorkersTest, ClampsToMaximum) { EXPECT_EQ(DesiredWorkers(100, 0, {0, 4, 6}), 4); }

TEST(DesiredWorkersTest, KeepsMinimumWhenIdle) { EXPECT_EQ(DesiredWorkers(0, 0, {2, 4, 6}), 2); }

TEST(DesiredWorkersTest, ZeroWhenIdleAndMinimumZero) {
  EXPECT_EQ(DesiredWorkers(0, 0, {0, 4, 6}), 0);
}

TEST(DesiredWorkersTest, RunningTasksKeepWorkersAlive) {
  EXPECT_EQ(DesiredWorkers(0, 12, {0, 10, 6}), 2);
  EXPECT_EQ(DesiredWorkers(6, 6, {0, 10, 6}), 2);
}

TEST(DesiredWorkersTest, ValidateRejectsInvertedBoundsAndZeroFactor) {
  EXPECT_FALSE((WorkerPoolPolicy{5, 4, 1}.Validate().ok()));
  EXPECT_FALSE((WorkerPoolPolicy{0, 4, 0}.Validate().ok()));
  EXPECT_FALSE((WorkerPoolPolicy{-1, 4, 1}.Validate().ok()));
  EXPECT_TRUE((WorkerPoolPolicy{0, 4, 6}.Validate().ok()));
}

}  // namespace
}  // namespace gyre::orchestrator
