#include "services/scheduler/task_ranker.h"

#include "gtest/gtest.h"

namespace gyre::scheduler {
namespace {

RankingConfig NoAging() {
  RankingConfig config;
  config.aging_grace_seconds = 1e9;
  config.critical_path_fraction = 0.7;  // the horizons below are worked out for 0.7
  return config;
}

TEST(TaskRankerTest, UserPriorityComesBeforeUpwardRank) {
  const TaskRanker ranker(NoAging());
  std::vector<RankTask> tasks = {{.priority = 0, .upward_rank_seconds = 100, .ready_sequence = 0},
                                 {.priority = 10, .upward_rank_seconds = 1, .ready_sequence = 1}};
  EXPECT_EQ(ranker.Rank(tasks, {{.remaining_work_seconds = 101}}, 100), (std::vector<int>{1, 0}));
}

TEST(TaskRankerTest, LongerUpwardRankThenReadyOrderBreakTies) {
  const TaskRanker ranker(NoAging());
  std::vector<RankTask> tasks = {{.upward_rank_seconds = 5, .ready_sequence = 0},
                                 {.upward_rank_seconds = 9, .ready_sequence = 1},
                                 {.upward_rank_seconds = 5, .ready_sequence = 2}};
  // By rank, then ready order (all three are critical here: the horizon is
  // 0.7 x 19 / 1000 s).
  EXPECT_EQ(ranker.Rank(tasks, {{.remaining_work_seconds = 19}}, 1000),
            (std::vector<int>{1, 0, 2}));
}

TEST(TaskRankerTest, AgingRaisesPriorityOnePointPerIntervalAfterTheGrace) {
  RankingConfig config;
  config.aging_grace_seconds = 100;
  config.aging_seconds_per_point = 10;
  const TaskRanker ranker(config);
  // By hand: waited 150 s = 50 s past the grace = 5 points: 0 + 5 beats 4.
  EXPECT_EQ(ranker.EffectivePriority({.priority = 0, .waiting_seconds = 150}), 5);
  EXPECT_EQ(ranker.EffectivePriority({.priority = 0, .waiting_seconds = 99}), 0);
  std::vector<RankTask> tasks = {{.priority = 4, .waiting_seconds = 0, .ready_sequence = 0},
                                 {.priority = 0, .waiting_seconds = 150, .ready_sequence = 1}};
  EXPECT_EQ(ranker.Rank(tasks, {{.remaining_work_seconds = 1}}, 10), (std::vector<int>{1, 0}));
  // 130 s: 3 points, still below 4.
  tasks[1].waiting_seconds = 130;
  EXPECT_EQ(ranker.Rank(tasks, {{.remaining_work_seconds = 1}}, 10), (std::vector<int>{0, 1}));
}

TEST(TaskRankerTest, TheExecutionWithLessRemainingWorkPerWeightGoesFirst) {
  RankingConfig config = NoAging();
  config.tenant_weights["big-customer"] = 20;
  const TaskRanker ranker(config);
  std::vector<RankTask> tasks = {{.upward_rank_seconds = 10, .execution = 0, .ready_sequence = 0},
                                 {.upward_rank_seconds = 10, .execution = 1, .ready_sequence = 1}};
  // One slot; a third execution with 5,000 s left and no ready task makes
  // the drain horizon 0.7 x 6,100 = 4,270 s: rank 10 is not critical, and
  // the small execution (100 s left) goes before the larger one (1,000 s).
  std::vector<ExecutionShare> equal = {{1000, 1}, {100, 1}, {5000, 1}};
  EXPECT_EQ(ranker.Rank(tasks, equal, 1), (std::vector<int>{1, 0}));
  // With weight 20 the larger one competes as 1000 / 20 = 50 < 100.
  std::vector<ExecutionShare> weighted = {
      {1000, config.WeightOf("big-customer")}, {100, config.WeightOf("someone")}, {5000, 1}};
  EXPECT_EQ(ranker.Rank(tasks, weighted, 1), (std::vector<int>{0, 1}));
}

TEST(TaskRankerTest, AHeavyLabelValueDoesNotStarveALightOne) {
  // fair_share_label: team. Team "ml" has a huge execution (20,000 s left,
  // 40 ready tasks) and weight 10; team "etl" one small execution (500 s
  // left, 1 ready task, the last to become ready) and the default weight.
  RankingConfig config = NoAging();
  config.fair_share_label = "team";
  config.label_weights["ml"] = 10;
  const TaskRanker ranker(config);
  std::vector<RankTask> tasks;
  for (int i = 0; i < 40; ++i) {
    tasks.push_back({.upward_rank_seconds = 10,
                     .execution = 0,
                     .ready_sequence = uint64_t(i),
                     .weight = config.LabelWeightOf("ml")});
  }
  tasks.push_back({.upward_rank_seconds = 10,
                   .execution = 1,
                   .ready_sequence = 40,
                   .weight = config.LabelWeightOf("etl")});
  // Both executions have the same tenant weight: only the labels differ.
  const std::vector<ExecutionShare> shares = {{20000, 1}, {500, 1}};
  // 4 slots: horizon 0.7 x 20,500 / 4 = 3,587.5 s, so no task is critical.
  // ml competes as 20,000 / 10 = 2,000 s, etl as 500 / 1: etl's one task
  // goes first, ahead of all 40 of ml's, although it became ready last.
  std::vector<int> order = ranker.Rank(tasks, shares, 4);
  ASSERT_EQ(order.size(), 41u);
  EXPECT_EQ(order.front(), 40);
  // The weight still counts: at 100, ml competes as 200 s < 500 s and goes
  // first; etl's task is then behind them, until aging lifts it (below).
  config.label_weights["ml"] = 100;
  for (int i = 0; i < 40; ++i) tasks[i].weight = config.LabelWeightOf("ml");
  order = TaskRanker(config).Rank(tasks, shares, 4);
  EXPECT_EQ(order.back(), 40);
  // Nothing starves: once etl's task has waited past the grace, aging
  // raises its priority above every newer ml task.
  config.aging_grace_seconds = 3600;
  config.aging_seconds_per_point = 60;
  tasks[40].waiting_seconds = 3600 + 60;
  order = TaskRanker(config).Rank(tasks, shares, 4);
  EXPECT_EQ(order.front(), 40);
}

TEST(TaskRankerTest, ACriticalTaskOvertakesTheFairShareOrder) {
  const TaskRanker ranker(NoAging());
  std::vector<RankTask> tasks = {{.upward_rank_seconds = 950, .execution = 0, .ready_sequence = 0},
                                 {.upward_rank_seconds = 10, .execution = 1, .ready_sequence = 1}};
  // One slot: horizon 0.7 x 1,100 = 770 s; rank 950 >= 770, so the task is
  // critical and goes first although its execution is the larger one.
  EXPECT_EQ(ranker.Rank(tasks, {{1000, 1}, {100, 1}}, 1), (std::vector<int>{0, 1}));
  // With 4 slots and a short path: horizon 0.7 x 1,100 / 4 = 192.5 s and
  // rank 100 < 192.5: not critical, the fair-share order stands.
  tasks[0].upward_rank_seconds = 100;
  EXPECT_EQ(ranker.Rank(tasks, {{1000, 1}, {100, 1}}, 4), (std::vector<int>{1, 0}));
}

TEST(TaskRankerTest, TopReturnsTheBestKInOrder) {
  const TaskRanker ranker(NoAging());
  std::vector<RankTask> tasks(10);
  for (int i = 0; i < 10; ++i) {
    tasks[i] = {.upward_rank_seconds = static_cast<double>(i), .ready_sequence = uint64_t(i)};
  }
  EXPECT_EQ(ranker.Top(tasks, {{45, 1}}, 1000, 3), (std::vector<int>{9, 8, 7}));
}

TEST(RankingConfigTest, ValidateNamesTheBadField) {
  RankingConfig config;
  config.tenant_weights["t"] = 0;
  absl::Status status = config.Validate();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("tenant_weights[\"t\"]"), std::string::npos) << status;

  RankingConfig labels;
  labels.label_weights["ml"] = 2;
  status = labels.Validate();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("fair_share_label is empty"), std::string::npos) << status;
  labels.fair_share_label = "team";
  EXPECT_TRUE(labels.Validate().ok());
  labels.label_weights["etl"] = -1;
  status = labels.Validate();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("label_weights[\"etl\"] is -1"), std::string::npos) << status;
}

}  // namespace
}  // namespace gyre::scheduler
