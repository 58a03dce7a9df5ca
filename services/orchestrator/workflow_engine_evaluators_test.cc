// Evaluator decisions through the engine: branches skipped, children started and bounded, malformed
// decisions.

#include "services/orchestrator/workflow_engine.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/common/limits.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_fixture.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/testing/fake_state_stores.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Declaring;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;
using ::gyre::orchestrator::testing::Writes;

TEST_F(WorkflowEngineTest, EvaluatorDecisionSkipsABranch) {
  auto agent = Connect("a1");
  v1::TaskSpec judge = Writes(Task("judge"), {"VERDICT"});
  judge.set_evaluator(true);
  const std::string exec =
      Start(Workflow({judge, Task("deploy", {"judge"}), Task("rollback", {"judge"}),
                      Task("notify", {"rollback"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED,
         R"({"run": ["deploy"], "skip": ["rollback"], "context": {"VERDICT": "good"}})");
  auto next = agent->Take(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].ref().task_id(), "deploy");
  EXPECT_EQ(next[0].env().at("VERDICT"), "good");
  Report("a1", next[0]);
  EXPECT_EQ(StateOf(exec, "rollback"), v1::TASK_SKIPPED);
  EXPECT_EQ(StateOf(exec, "notify"), v1::TASK_SKIPPED);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, MalformedEvaluatorDecisionFailsWithClearMessage) {
  auto agent = Connect("a1");
  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string exec = Start(Workflow({judge, Task("deploy", {"judge"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED, R"({"run": ["deplyo"]})");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/judge");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_EQ(run.attempts(0).error(),
            "evaluator output: task \"deplyo\" is not downstream of evaluator \"judge\" (did you "
            "mean \"deploy\"?)");
}

TEST_F(WorkflowEngineTest, EvaluatorStartsAChildThatInheritsTheContext) {
  auto agent = Connect("a1");
  // The child declares what its task reads; the parent what it is given.
  v1::WorkflowDefinition child = Declaring(Workflow({Task("child-task")}), {"REGION", "OWNER"});
  child.set_name("report");
  ASSERT_TRUE(engine_.CreateWorkflow(child).ok());
  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string parent = Start(Declaring(Workflow({judge}), {"REGION", "OWNER"}),
                                   {{"REGION", "eu"}, {"OWNER", "ops"}});
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED,
         R"({"start": [{"workflow": "report", "context": {"OWNER": "data"}}]})");
  auto child_task = agent->Take(1);
  ASSERT_EQ(child_task.size(), 1u);
  EXPECT_EQ(child_task[0].ref().task_id(), "child-task");
  EXPECT_EQ(child_task[0].env().at("REGION"), "eu") << "inherited from the parent";
  EXPECT_EQ(child_task[0].env().at("OWNER"), "data") << "the decision's context wins";
  const v1::Execution started = *engine_.GetExecution(child_task[0].ref().execution());
  EXPECT_EQ(started.parent(), parent);
  EXPECT_EQ(started.workflow(), "workflows/report");
}

TEST_F(WorkflowEngineTest, ChildStartsAreLimitedPerExecutionAndMustNameAStoredWorkflow) {
  auto agent = Connect("a1", 256);
  v1::WorkflowDefinition leaf = Workflow({Task("leaf-task")});
  leaf.set_name("leaf");
  ASSERT_TRUE(engine_.CreateWorkflow(leaf).ok());
  v1::TaskSpec first = Task("first");
  first.set_evaluator(true);
  v1::TaskSpec second = Task("second", {"first"});
  second.set_evaluator(true);
  const std::string exec = Start(Workflow({first, second}));
  std::string sixty = R"({"start": [)";
  for (int i = 0; i < 60; ++i) absl::StrAppend(&sixty, i > 0 ? "," : "", R"({"workflow": "leaf"})");
  sixty += "]}";
  auto judge = agent->Take(1);
  ASSERT_EQ(judge.size(), 1u);
  Report("a1", judge[0], v1::ATTEMPT_SUCCEEDED, sixty);
  EXPECT_EQ(StateOf(exec, "first"), v1::TASK_SUCCEEDED);
  // 60 children and the second evaluator.
  auto next = agent->Take(61);
  ASSERT_EQ(next.size(), 61u);
  auto second_judge = std::find_if(next.begin(), next.end(), [](const v1::TaskAssignment& t) {
    return t.ref().task_id() == "second";
  });
  ASSERT_NE(second_judge, next.end());
  Report("a1", *second_judge, v1::ATTEMPT_SUCCEEDED, sixty);
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/second");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_EQ(run.attempts(0).error(),
            absl::StrCat("evaluator output: starting 60 more child workflows from ", exec,
                         " would make 120; one execution starts at most 100"));

  const std::string unknown = Start(Workflow({first}));
  auto unknown_judge = agent->Take(1);
  ASSERT_EQ(unknown_judge.size(), 1u);
  Report("a1", unknown_judge[0], v1::ATTEMPT_SUCCEEDED, R"({"start": [{"workflow": "lef"}]})");
  EXPECT_EQ(engine_.GetTaskRun(unknown + "/tasks/first")->attempts(0).error(),
            "evaluator output: start[0]: \"workflows/lef\" not found (did you mean "
            "\"workflows/leaf\"?)");
}

TEST_F(WorkflowEngineTest, ADecisionOfAnotherShapeFailsTheEvaluator) {
  auto agent = Connect("a1");
  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string exec = Start(Workflow({judge, Task("deploy", {"judge"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED, R"({"run": [["deploy"]]})");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/judge");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_TRUE(absl::StartsWith(run.attempts(0).error(),
                               "evaluator output: \"run\" entry 0 is a list, not a task id string"))
      << run.attempts(0).error();
}

}  // namespace
}  // namespace gyre::orchestrator
