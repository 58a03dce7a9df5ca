#include "services/orchestrator/task_state_machine.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/orchestrator/proto_time.h"
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

class TaskStateMachineTest : public ::testing::Test {
 protected:
  TaskStateMachineTest() {
    channel_ = std::make_shared<RecordingChannel>();
    agent_ = c_.Connect(Registration("a1", 8), channel_);
  }

  // The tasks leased to a1 now, by task id.
  std::map<std::string, v1::TaskAssignment> Lease() {
    std::map<std::string, v1::TaskAssignment> leased;
    for (v1::TaskAssignment& task : c_.Dispatch(*agent_, *channel_, 8)) {
      leased[task.ref().task_id()] = task;
    }
    return leased;
  }
  void Succeed(ExecutionEntry& exec, const v1::TaskAssignment& task, const std::string& json = "") {
    ASSERT_TRUE(c_.Report("a1", task.ref(), v1::ATTEMPT_SUCCEEDED, json));
    c_.machine.UpdateExecutionState(exec, c_.out);
  }
  void Fail(ExecutionEntry& exec, const v1::TaskAssignment& task, const std::string& error) {
    ASSERT_TRUE(c_.Report("a1", task.ref(), v1::ATTEMPT_FAILED, "", error));
    c_.machine.UpdateExecutionState(exec, c_.out);
  }

  EngineComponents c_;
  std::shared_ptr<RecordingChannel> channel_;
  AgentEntry* agent_ = nullptr;
};

TEST_F(TaskStateMachineTest, TasksBecomeReadyAlongEdgesInheritingOutputs) {
  ASSERT_NE(agent_, nullptr);
  //   a -> b -> d, c -> d
  ExecutionEntry& exec =
      c_.Start(Workflow({Writes(Task("a"), {"K"}), Writes(Task("b", {"a"}), {"L"}), Task("c"),
                         Task("d", {"b", "c"})}));
  EXPECT_EQ(EngineComponents::StateOf(exec, "a"), v1::TASK_READY);
  EXPECT_EQ(EngineComponents::StateOf(exec, "c"), v1::TASK_READY);
  EXPECT_EQ(EngineComponents::StateOf(exec, "b"), v1::TASK_PENDING);
  EXPECT_EQ(exec.ready, 2);
  EXPECT_EQ(exec.pending, 2);
  EXPECT_EQ(exec.events.front().task, StoredEvent::kExecutionLevel);  // EXECUTION_CREATED

  auto first = Lease();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(EngineComponents::StateOf(exec, "a"), v1::TASK_LEASED);
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "a")].agent, "a1");
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "a")].attempt, 1);
  Succeed(exec, first["a"], R"({"K": "from-a"})");
  EXPECT_EQ(EngineComponents::StateOf(exec, "a"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(EngineComponents::StateOf(exec, "b"), v1::TASK_READY);
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "b")].details_or_empty().inherited,
            (std::map<std::string, std::string>{{"K", "from-a"}}));
  EXPECT_EQ(EngineComponents::StateOf(exec, "d"), v1::TASK_PENDING);  // c still runs

  auto leased = Lease();
  ASSERT_EQ(leased.count("b"), 1u);
  Succeed(exec, leased["b"], R"({"L": "from-b"})");
  EXPECT_EQ(EngineComponents::StateOf(exec, "d"), v1::TASK_PENDING);
  Succeed(exec, first["c"]);
  EXPECT_EQ(EngineComponents::StateOf(exec, "d"), v1::TASK_READY);
  // What every ancestor passed on, along both paths.
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "d")].details_or_empty().inherited,
            (std::map<std::string, std::string>{{"K", "from-a"}, {"L", "from-b"}}));
}

TEST_F(TaskStateMachineTest, AFailureSkipsEveryDependantAndTheExecutionRollsUpToFailed) {
  ExecutionEntry& exec =
      c_.Start(Workflow({Task("a"), Task("b", {"a"}), Task("c", {"b"}), Task("other")}));
  auto leased = Lease();
  Fail(exec, leased["a"], "exit 3");
  EXPECT_EQ(EngineComponents::StateOf(exec, "a"), v1::TASK_FAILED);
  EXPECT_EQ(exec.tasks[EngineComponents::TaskIndex(exec, "a")].reason, "exit 3");
  EXPECT_EQ(EngineComponents::StateOf(exec, "b"), v1::TASK_SKIPPED);
  EXPECT_EQ(EngineComponents::StateOf(exec, "c"), v1::TASK_SKIPPED);
  EXPECT_TRUE(absl::StrContains(exec.tasks[EngineComponents::TaskIndex(exec, "c")].reason,
                                "dependency \"a\" failed"));
  EXPECT_EQ(exec.state, v1::EXECUTION_RUNNING);  // "other" still runs

  Succeed(exec, leased["other"]);
  EXPECT_EQ(exec.state, v1::EXECUTION_FAILED);
  EXPECT_EQ(exec.failed, 1);
  EXPECT_EQ(exec.skipped, 2);
  EXPECT_EQ(exec.succeeded, 1);
  EXPECT_EQ(exec.reason, "1 task(s) failed");
  ASSERT_EQ(c_.out.ended.size(), 1u);
  EXPECT_EQ(c_.out.ended[0].state, v1::EXECUTION_FAILED);
}

TEST_F(TaskStateMachineTest, AllSucceededRollsUpToSucceeded) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("a"), Task("b", {"a"})}));
  EXPECT_EQ(exec.state, v1::EXECUTION_PENDING);
  auto leased = Lease();
  c_.machine.UpdateExecutionState(exec, c_.out);
  EXPECT_EQ(exec.state, v1::EXECUTION_RUNNING);
  Succeed(exec, leased["a"]);
  EXPECT_EQ(exec.state, v1::EXECUTION_RUNNING);
  Succeed(exec, Lease()["b"]);
  EXPECT_EQ(exec.state, v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(exec.succeeded, 2);
  EXPECT_EQ(exec.end_time, c_.clock.Now());
}

TEST_F(TaskStateMachineTest, ARetryIsLeftInTheOutboxWithItsDueTimeAndRunsWhenDue) {
  v1::TaskSpec flaky = Task("flaky");
  flaky.mutable_retry()->set_max_retries(1);
  *flaky.mutable_retry()->mutable_initial_backoff() = ToProto(absl::Seconds(10));
  flaky.mutable_retry()->set_jitter(0.1);  // up to 10% shorter
  ExecutionEntry& exec = c_.Start(Workflow({flaky, Task("after", {"flaky"})}));
  const uint32_t index = EngineComponents::TaskIndex(exec, "flaky");

  Fail(exec, Lease()["flaky"], "boom");
  const TaskEntry& task = exec.tasks[index];
  EXPECT_EQ(task.state, v1::TASK_PENDING);
  EXPECT_TRUE(absl::StartsWith(task.reason, "boom; retry 1 of 1 in ")) << task.reason;
  ASSERT_EQ(c_.out.retries.size(), 1u);
  const Outbox::RetryTimer timer = c_.out.retries[0];
  EXPECT_EQ(timer.execution, exec.index);
  EXPECT_EQ(timer.task, index);
  EXPECT_EQ(timer.generation, task.generation);
  EXPECT_GE(timer.due, c_.clock.Now() + absl::Seconds(9));
  EXPECT_LE(timer.due, c_.clock.Now() + absl::Seconds(10));
  EXPECT_EQ(timer.due, task.ready_time);                                  // kept in snapshots
  EXPECT_EQ(EngineComponents::StateOf(exec, "after"), v1::TASK_PENDING);  // not skipped
  EXPECT_TRUE(Lease().empty());  // nothing runs before it is due

  c_.Advance(absl::Seconds(10));
  c_.machine.RetryDue(exec, index, c_.out);
  EXPECT_EQ(task.state, v1::TASK_READY);
  auto again = Lease();
  ASSERT_EQ(again.count("flaky"), 1u);
  EXPECT_EQ(again["flaky"].ref().attempt(), 2);
  // The last retry fails too: now for good.
  Fail(exec, again["flaky"], "boom again");
  EXPECT_EQ(task.state, v1::TASK_FAILED);
  EXPECT_EQ(c_.out.retries.size(), 1u);
  EXPECT_EQ(EngineComponents::StateOf(exec, "after"), v1::TASK_SKIPPED);
  EXPECT_EQ(exec.state, v1::EXECUTION_FAILED);
}

TEST_F(TaskStateMachineTest, CancelTellsTheAgentRunningATaskAndEndsTheRest) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("a"), Task("b", {"a"})}));
  auto leased = Lease();
  ASSERT_EQ(leased.count("a"), 1u);
  c_.machine.Cancel(exec, "enough", c_.out);
  EXPECT_EQ(exec.state, v1::EXECUTION_CANCELLED);
  EXPECT_EQ(exec.reason, "enough");
  EXPECT_EQ(EngineComponents::StateOf(exec, "a"), v1::TASK_CANCELLED);
  EXPECT_EQ(EngineComponents::StateOf(exec, "b"), v1::TASK_CANCELLED);
  std::vector<v1::Cancel> cancels = channel_->cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].ref().task_id(), "a");
  EXPECT_EQ(cancels[0].ref().attempt(), leased["a"].ref().attempt());
  // Its result still comes (the agent stops it): accepted, nothing changes.
  EXPECT_TRUE(c_.Report("a1", leased["a"].ref(), v1::ATTEMPT_CANCELLED));
  EXPECT_EQ(EngineComponents::StateOf(exec, "a"), v1::TASK_CANCELLED);
  EXPECT_EQ(exec.state, v1::EXECUTION_CANCELLED);
}

}  // namespace
}  // namespace gyre::orchestrator
