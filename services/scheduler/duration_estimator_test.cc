#include "services/scheduler/duration_estimator.h"

#include "gtest/gtest.h"

namespace gyre::scheduler {

TEST(OnlineDurationEstimatorTest, DeclaredWinsThenTypeMedianThenAllThenPrior) {
  OnlineDurationEstimator estimator(/*prior_seconds=*/60, /*window=*/3);
  EXPECT_EQ(estimator.EstimateSeconds("mProject", 0), 60);
  EXPECT_EQ(estimator.EstimateSeconds("mProject", 7), 7);
  estimator.Observe("mProject", 10);
  estimator.Observe("mProject", 1000);  // an outlier moves a median little
  estimator.Observe("mProject", 20);
  EXPECT_EQ(estimator.EstimateSeconds("mProject", 0), 20);
  EXPECT_EQ(estimator.EstimateSeconds("never-seen", 0), 20);  // median of recent runs
  estimator.Observe("mProject", 30);                          // the window keeps 1000, 20, 30
  EXPECT_EQ(estimator.EstimateSeconds("mProject", 0), 30);
}

TEST(OnlineDurationEstimatorTest, ARunningTaskLongerThanItsEstimateRaisesIt) {
  OnlineDurationEstimator estimator(60, 5);
  estimator.Observe("merge", 10);
  const uint64_t before = estimator.generation();
  estimator.ObserveRunning("merge", 5);  // shorter than the estimate: no news
  EXPECT_EQ(estimator.generation(), before);
  estimator.ObserveRunning("merge", 500);
  EXPECT_EQ(estimator.EstimateSeconds("merge", 0), 500);
  EXPECT_EQ(estimator.EstimateSeconds("merge", 200), 500) << "a prediction is raised too";
  EXPECT_EQ(estimator.EstimateSeconds("merge", 900), 900);
  EXPECT_GT(estimator.generation(), before);
  estimator.ClearRunning();
  EXPECT_EQ(estimator.EstimateSeconds("merge", 0), 10);
}

}  // namespace gyre::scheduler
