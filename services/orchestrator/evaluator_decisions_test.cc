#include "services/orchestrator/evaluator_decisions.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/orchestrator/task_output.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_components.h"
#include "services/orchestrator/testing/fake_agent_channel.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::EngineComponents;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::Writes;

class EvaluatorDecisionsTest : public ::testing::Test {
 protected:
  EvaluatorDecisionsTest() {
    channel_ = std::make_shared<RecordingChannel>();
    agent_ = c_.Connect(Registration("a1", 64), channel_);
    v1::WorkflowDefinition leaf = Workflow("leaf", {Task("leaf-task")});
    EXPECT_TRUE(WorkflowRegistry::Prepare(nullptr, leaf).ok());
    EXPECT_TRUE(c_.workflows.AddVersion(leaf, /*create=*/true, c_.clock.Now()).ok());
  }

  // The evaluator `task` of `exec` is leased and succeeds with `json`: its
  // lease released and its decision applied, as the result recorder does.
  // Returns why the decision failed it ("" when applied).
  std::string Decide(ExecutionEntry& exec, const std::string& task, const std::string& json) {
    c_.Dispatch(*agent_, *channel_, 64);
    const uint32_t index = EngineComponents::TaskIndex(exec, task);
    EXPECT_EQ(exec.tasks[index].state, v1::TASK_LEASED);
    c_.machine.ReleaseLease(exec, index);
    ParsedOutput parsed = ParseTaskOutput(json);
    return c_.evaluators.Apply(exec, index, json.empty(), parsed, c_.out);
  }

  static v1::TaskSpec Judge(const std::string& id = "judge",
                            const std::vector<std::string>& deps = {}) {
    v1::TaskSpec judge = Writes(Task(id, deps), {"VERDICT"});
    judge.set_evaluator(true);
    return judge;
  }

  EngineComponents c_;
  std::shared_ptr<RecordingChannel> channel_;
  AgentEntry* agent_ = nullptr;
};

TEST_F(EvaluatorDecisionsTest, ADecisionRunsAndSkipsTasksDownstreamAndPassesContextOn) {
  ExecutionEntry& exec =
      c_.Start(Workflow({Judge(), Task("deploy", {"judge"}), Task("rollback", {"judge"}),
                         Task("notify", {"rollback"})}));
  EXPECT_EQ(Decide(exec, "judge",
                   R"({"run": ["deploy"], "skip": ["rollback"], "context": {"VERDICT": "ok"}})"),
            "");
  EXPECT_EQ(EngineComponents::StateOf(exec, "judge"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(EngineComponents::StateOf(exec, "deploy"), v1::TASK_READY);
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "deploy")].details_or_empty().inherited.at(
                "VERDICT"),
            "ok");
  EXPECT_EQ(EngineComponents::StateOf(exec, "rollback"), v1::TASK_SKIPPED);
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "rollback")].reason,
            "skipped by evaluator \"judge\"");
  EXPECT_EQ(EngineComponents::StateOf(exec, "notify"), v1::TASK_SKIPPED);
}

TEST_F(EvaluatorDecisionsTest, OnlyTasksDownstreamMayBeNamedAndNeverBothRunAndSkipped) {
  ExecutionEntry& upstream = c_.Start(Workflow(
      {Task("before"), Judge("judge", {"before"}), Task("after", {"judge"}), Task("beside")}));
  c_.Dispatch(*agent_, *channel_, 64);  // "before" and "beside" leased
  const uint32_t before = EngineComponents::TaskIndex(upstream, "before");
  c_.machine.ReleaseLease(upstream, before);
  c_.machine.CompleteTask(upstream, before, c_.out);
  std::string refused = Decide(upstream, "judge", R"({"skip": ["beside"]})");
  EXPECT_TRUE(
      absl::StrContains(refused, "task \"beside\" is not downstream of evaluator \"judge\""))
      << refused;
  // The evaluator failed for good (a bad decision is not transient); what
  // it would have decided about is skipped with it.
  EXPECT_EQ(EngineComponents::StateOf(upstream, "judge"), v1::TASK_FAILED);
  EXPECT_EQ(upstream.tasks[EngineComponents::TaskIndex(upstream, "judge")].attempts.back().error,
            refused);
  EXPECT_EQ(EngineComponents::StateOf(upstream, "after"), v1::TASK_SKIPPED);

  ExecutionEntry& both = c_.Start(Workflow({Judge(), Task("x", {"judge"})}));
  refused = Decide(both, "judge", R"({"run": ["x"], "skip": ["x"]})");
  EXPECT_EQ(refused, "evaluator output: task \"x\" is both run and skipped");
  EXPECT_EQ(EngineComponents::StateOf(both, "x"), v1::TASK_SKIPPED);
  EXPECT_TRUE(c_.out.child_starts.empty());
}

TEST_F(EvaluatorDecisionsTest, ChildrenAreStartedWithinTheLimitsAndKeptUntilStarted) {
  ExecutionEntry& exec = c_.Start(Workflow({Judge()}), {});
  EXPECT_EQ(Decide(exec, "judge",
                   R"({"start": [{"workflow": "leaf"}, {"workflow": "leaf"}],
                       "context": {"VERDICT": "v"}})"),
            "");
  ASSERT_EQ(c_.out.child_starts.size(), 2u);
  const v1::StartExecutionRequest& child = c_.out.child_starts[0];
  EXPECT_EQ(child.workflow(), "leaf");
  EXPECT_EQ(child.parent(), exec.name());
  EXPECT_EQ(child.context().at("VERDICT"), "v");
  EXPECT_NE(child.request_id(), c_.out.child_starts[1].request_id());
  EXPECT_EQ(exec.children_started, 2u);
  EXPECT_EQ(c_.evaluators.pending_children().size(), 2u);
  c_.evaluators.ChildStarted(child.request_id());
  EXPECT_EQ(c_.evaluators.pending_children().size(), 1u);

  // Past kMaxChildrenPerExecution from one execution: refused.
  ExecutionEntry& greedy = c_.Start(Workflow({Judge()}));
  greedy.children_started = EvaluatorDecisions::kMaxChildrenPerExecution;
  EXPECT_EQ(Decide(greedy, "judge", R"({"start": [{"workflow": "leaf"}]})"),
            absl::StrCat("evaluator output: starting 1 more child workflows from ", greedy.name(),
                         " would make 101; one execution starts at most 100"));

  // Only stored workflows.
  ExecutionEntry& typo = c_.Start(Workflow({Judge()}));
  EXPECT_EQ(Decide(typo, "judge", R"({"start": [{"workflow": "lef"}]})"),
            "evaluator output: start[0]: \"workflows/lef\" not found (did you mean "
            "\"workflows/leaf\"?)");
}

TEST_F(EvaluatorDecisionsTest, ChildrenAreNotStartedBeyondTheDepthLimit) {
  // A chain of executions, each the parent of the next.
  std::vector<ExecutionEntry*> chain;
  for (int depth = 0; depth <= EvaluatorDecisions::kMaxChildDepth; ++depth) {
    chain.push_back(&c_.Start(Workflow({Judge()})));
    if (depth > 0) chain[depth]->parent = chain[depth - 1]->name();
  }
  // One level above the limit may still start children...
  ExecutionEntry& allowed = *chain[EvaluatorDecisions::kMaxChildDepth - 1];
  EXPECT_EQ(Decide(allowed, "judge", R"({"start": [{"workflow": "leaf"}]})"), "");
  // ...the deepest may not.
  ExecutionEntry& deepest = *chain[EvaluatorDecisions::kMaxChildDepth];
  std::string refused = Decide(deepest, "judge", R"({"start": [{"workflow": "leaf"}]})");
  EXPECT_TRUE(absl::StrContains(refused, "already 8 levels below a top-level execution"))
      << refused;
}

}  // namespace
}  // namespace gyre::orchestrator
