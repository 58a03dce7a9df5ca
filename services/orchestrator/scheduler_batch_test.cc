// The engine's side of the scheduler link through the engine: what a batch
// says, when one is not sent again, and how an answer becomes the dispatch
// order (the RPC itself is tested in tests/scheduler_link_test.cc).

#include "services/orchestrator/scheduler_batch.h"

#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_fixture.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;

// "side" first in workflow order; "c1" heads a chain of three.
v1::WorkflowDefinition SideAndChain() {
  return Workflow({Task("side"), Task("c1"), Task("c2", {"c1"}), Task("c3", {"c2"})});
}

using SchedulerBatchTest = WorkflowEngineTest;

TEST_F(SchedulerBatchTest, BatchCarriesTheReadyTasksPathLengthsAndRemainingWork) {
  v1::WorkflowDefinition def = SideAndChain();
  (*def.mutable_tasks(0)->mutable_labels())["team"] = "ml";  // for fair_share_label
  const std::string exec = Start(def);                       // no agent: both roots wait
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  ASSERT_EQ(tasks.size(), 2u);
  ASSERT_EQ(request.tasks_size(), 2);
  EXPECT_EQ(request.tasks(0).task_run(), exec + "/tasks/side") << "in dispatch order";
  EXPECT_EQ(request.tasks(1).task_run(), exec + "/tasks/c1");
  EXPECT_EQ(request.tasks(0).upward_rank_seconds(), SchedulerBatch::kNominalTaskSeconds);
  EXPECT_EQ(request.tasks(1).upward_rank_seconds(), 3 * SchedulerBatch::kNominalTaskSeconds);
  EXPECT_EQ(request.tasks(1).queue(), "default");
  EXPECT_EQ(request.tasks(1).execution(), exec);
  ASSERT_EQ(request.tasks(0).labels().count("team"), 1u);
  EXPECT_EQ(request.tasks(0).labels().at("team"), "ml");
  EXPECT_TRUE(request.tasks(1).labels().empty());
  ASSERT_EQ(request.executions_size(), 1);
  EXPECT_EQ(request.executions(0).remaining_work_seconds(),
            4 * SchedulerBatch::kNominalTaskSeconds);
}

TEST_F(SchedulerBatchTest, PredictedDurationsMakeTheRanksAndTheRemainingWork) {
  const std::string exec = Start(SideAndChain());
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  // Ranked once before the predictor answered: counted in nominal tasks.
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  EXPECT_EQ(request.tasks(1).upward_rank_seconds(), 3 * SchedulerBatch::kNominalTaskSeconds);
  EXPECT_EQ(request.tasks(1).predicted_seconds(), 0) << "no prediction: the scheduler's own";
  engine_.ApplySchedulerOrder(tasks, std::vector<uint32_t>{0, 1});

  std::vector<std::pair<std::string, TaskPrediction>> predictions;
  for (auto [id, seconds] : {std::pair{"side", 5.0}, {"c1", 10.0}, {"c2", 100.0}, {"c3", 1000.0}}) {
    TaskPrediction p;
    p.duration_seconds = seconds;
    predictions.emplace_back(id, p);
  }
  engine_.ApplyPredictions(exec, std::move(predictions));
  Start(Workflow("other", {Task("new")}));  // the ready set changes: a new batch
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  bool saw_c1 = false;
  for (const v1::ReadyTaskInfo& t : request.tasks()) {
    if (t.task_run() == exec + "/tasks/c1") {
      saw_c1 = true;
      EXPECT_EQ(t.predicted_seconds(), 10);
      EXPECT_EQ(t.upward_rank_seconds(), 10 + 100 + 1000) << "the chain's predicted seconds";
    } else if (t.task_run() == exec + "/tasks/side") {
      EXPECT_EQ(t.upward_rank_seconds(), 5);
    }
  }
  EXPECT_TRUE(saw_c1);
  for (const v1::ExecutionLoad& load : request.executions()) {
    if (load.execution() == exec) {
      EXPECT_DOUBLE_EQ(load.remaining_work_seconds(), 5 + 10 + 100 + 1000);
    }
  }
}

TEST_F(SchedulerBatchTest, MaxTasksBoundsTheBatch) {
  Start(SideAndChain());
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(1, &request, &tasks));
  EXPECT_EQ(tasks.size(), 1u);
  EXPECT_EQ(request.tasks_size(), 1);
}

TEST_F(SchedulerBatchTest, TheAppliedOrderIsTheDispatchOrder) {
  const std::string exec = Start(SideAndChain());
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  const std::vector<uint32_t> c1_first = {1, 0};
  EXPECT_EQ(engine_.ApplySchedulerOrder(tasks, c1_first), 2u);
  auto agent = Connect("a1", 1);
  auto taken = agent->Take(1);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].ref().task_id(), "c1");
  EXPECT_EQ(engine_.DispatchStallForTest(), "");
}

// Aging reaches the dispatch order: the scheduler's effective priority
// above the task's own queues it at that level, ahead of a higher user
// priority; the task's own priority is left as the user set it.
TEST_F(SchedulerBatchTest, AnAgedTaskIsQueuedAtItsEffectiveLevel) {
  const std::string old = Start(Workflow("old", {Task("waited")}));
  v1::TaskSpec urgent = Task("urgent");
  urgent.set_priority(60);
  const std::string fresh = Start(Workflow("fresh", {urgent}));
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  ASSERT_EQ(tasks.size(), 2u);
  ASSERT_EQ(request.tasks(0).task_run(), fresh + "/tasks/urgent") << "priority 60 first";
  std::vector<TaskAnswer> answers(2);
  answers[1].effective_priority = 61;  // "waited" aged past 60
  EXPECT_EQ(engine_.ApplySchedulerOrder(tasks, std::vector<uint32_t>{1, 0}, answers), 2u);
  auto agent = Connect("a1", 1);
  auto taken = agent->Take(1);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].ref().execution(), old) << "the aged task overtakes priority 60";
  EXPECT_EQ(engine_.GetTaskRun(old + "/tasks/waited")->priority(), 50);
}

// Without aging the order only applies within a level: the same answer
// with no effective priority leaves priority 60 first.
TEST_F(SchedulerBatchTest, WithoutAgingTheOrderStaysWithinItsLevel) {
  Start(Workflow("old", {Task("waited")}));
  v1::TaskSpec urgent = Task("urgent");
  urgent.set_priority(60);
  const std::string fresh = Start(Workflow("fresh", {urgent}));
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  engine_.ApplySchedulerOrder(tasks, std::vector<uint32_t>{1, 0});
  auto agent = Connect("a1", 1);
  auto taken = agent->Take(1);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].ref().execution(), fresh);
}

TEST_F(SchedulerBatchTest, AnUnchangedReadySetIsNotSentAgain) {
  Start(SideAndChain());
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  engine_.ApplySchedulerOrder(tasks, std::vector<uint32_t>{1, 0});
  EXPECT_FALSE(engine_.TakeSchedulerBatch(100, &request, &tasks)) << "nothing changed";
  Start(Workflow("other", {Task("new")}));
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks)) << "a task became ready";
  EXPECT_EQ(tasks.size(), 3u);
}

TEST_F(SchedulerBatchTest, AnAnswerForATaskThatChangedSinceIsIgnored) {
  const std::string exec = Start(SideAndChain());
  v1::RankAndPlaceRequest request;
  std::vector<BatchedTask> tasks;
  ASSERT_TRUE(engine_.TakeSchedulerBatch(100, &request, &tasks));
  v1::UpdatePriorityRequest raise;
  raise.set_name(exec + "/tasks/side");
  raise.set_priority(90);
  ASSERT_TRUE(engine_.UpdatePriority(raise).ok());
  // The scheduler's answer predates the new priority: "side" keeps it.
  EXPECT_EQ(engine_.ApplySchedulerOrder(tasks, std::vector<uint32_t>{1, 0}), 1u);
  auto agent = Connect("a1", 1);
  auto taken = agent->Take(1);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].ref().task_id(), "side") << "priority 90 still goes first";
}

TEST_F(SchedulerBatchTest, TheBacklogListenerHearsOfTasksLeftWaiting) {
  int heard = 0;
  engine_.SetBacklogListener([&heard] { ++heard; });
  auto agent = Connect("a1", 1);
  Start(Workflow({Task("a")}));
  EXPECT_EQ(heard, 0) << "the agent took the only task: nothing waits";
  Start(Workflow("two", {Task("x"), Task("y")}));
  EXPECT_GE(heard, 1) << "x and y wait for the busy slot";
  engine_.SetBacklogListener(nullptr);
}

}  // namespace
}  // namespace gyre::orchestrator
