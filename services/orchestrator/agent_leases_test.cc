#include "services/orchestrator/agent_leases.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
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

class AgentLeasesTest : public ::testing::Test {
 protected:
  AgentLeasesTest() : c_(Options()) {
    channel_ = std::make_shared<RecordingChannel>();
    v1::Register registration = Registration("a1", 8);
    registration.mutable_resources()->set_cpu(4);
    agent_ = c_.Connect(registration, channel_);
    v1::TaskSpec heavy = Task("t1");
    heavy.mutable_resources()->set_cpu(2);
    exec_ = &c_.Start(Workflow({heavy, Task("t2")}));
    for (v1::TaskAssignment& task : c_.Dispatch(*agent_, *channel_, 8)) {
      leased_[task.ref().task_id()] = task.ref();
    }
  }
  static EngineComponents::Options Options() {
    EngineComponents::Options options;
    options.heartbeat_interval = absl::Seconds(5);
    options.lease_timeout = absl::Seconds(30);
    return options;
  }

  bool Heartbeat(const std::vector<std::string>& running) {
    c_.Tick();
    v1::Heartbeat heartbeat;
    for (const std::string& task : running) *heartbeat.add_running() = leased_[task];
    agent_->last_seen = c_.clock.Now();
    return c_.leases.Reconcile(*agent_, heartbeat, c_.clock.Now(), c_.out);
  }
  const TaskEntry& TaskOf(const std::string& id) {
    return exec_->tasks[EngineComponents::TaskIndex(*exec_, id)];
  }

  EngineComponents c_;
  std::shared_ptr<RecordingChannel> channel_;
  AgentEntry* agent_ = nullptr;
  ExecutionEntry* exec_ = nullptr;
  std::map<std::string, v1::AttemptRef> leased_;
};

TEST_F(AgentLeasesTest, ALeaseTheAgentStopsReportingIsLostOnlyAfterTwoHeartbeatIntervals) {
  ASSERT_EQ(leased_.size(), 2u);
  // Young leases may still be on their way to the agent.
  c_.Advance(absl::Seconds(9));
  EXPECT_FALSE(Heartbeat({"t1"}));
  EXPECT_EQ(TaskOf("t2").state, v1::TASK_LEASED);

  c_.Advance(absl::Seconds(2));  // 11 s: past two intervals
  EXPECT_TRUE(Heartbeat({"t1"}));
  EXPECT_EQ(TaskOf("t1").state, v1::TASK_LEASED);
  EXPECT_EQ(TaskOf("t2").state, v1::TASK_READY);  // re-queued as a new attempt
  EXPECT_EQ(TaskOf("t2").attempts.back().outcome, v1::ATTEMPT_LOST);
  EXPECT_EQ(agent_->leases.size(), 1u);
  EXPECT_FALSE(Heartbeat({"t1"}));  // nothing more to reconcile

  // The next lease of t2 is a new attempt.
  std::vector<v1::TaskAssignment> again = c_.Dispatch(*agent_, *channel_, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].ref().attempt(), leased_["t2"].attempt() + 1);
}

TEST_F(AgentLeasesTest, DeclaringAnAgentDeadRequeuesItsLeasesAndTellsItToGo) {
  const size_t sent = channel_->sent();
  c_.Advance(absl::Seconds(31));
  c_.leases.DeclareDead(*agent_, c_.out);
  EXPECT_EQ(TaskOf("t1").state, v1::TASK_READY);
  EXPECT_EQ(TaskOf("t2").state, v1::TASK_READY);
  EXPECT_EQ(TaskOf("t1").attempts.back().outcome, v1::ATTEMPT_LOST);
  EXPECT_TRUE(agent_->leases.empty());
  EXPECT_DOUBLE_EQ(agent_->free_cpu, 4);  // t1's reservation given back
  EXPECT_EQ(channel_->sent(), sent + 1);  // the Shutdown
  EXPECT_EQ(exec_->ready, 2);
}

TEST_F(AgentLeasesTest, ARegistrationKeepsReportedLeasesLosesTheOthersAndCancelsUnknownOnes) {
  ASSERT_DOUBLE_EQ(agent_->free_cpu, 2);
  c_.agents.Disconnect(*agent_);
  c_.Advance(absl::Seconds(10));

  v1::AttemptRef unknown;
  unknown.set_execution("executions/gone");
  unknown.set_task_id("x");
  unknown.set_attempt(1);
  auto back = std::make_shared<RecordingChannel>();
  v1::Register registration = Registration("a1", 8, {leased_["t1"], unknown});
  registration.mutable_resources()->set_cpu(4);
  AgentEntry* agent = c_.Connect(registration, back);
  ASSERT_EQ(agent, agent_);

  EXPECT_EQ(TaskOf("t1").state, v1::TASK_LEASED);
  EXPECT_EQ(TaskOf("t1").agent, "a1");
  EXPECT_EQ(TaskOf("t2").state, v1::TASK_READY);
  EXPECT_EQ(TaskOf("t2").attempts.back().outcome, v1::ATTEMPT_LOST);
  EXPECT_EQ(agent->leases.size(), 1u);
  // The kept lease's resources stay reserved on the new session.
  EXPECT_DOUBLE_EQ(agent->free_cpu, 2);
  std::vector<v1::Cancel> cancels = back->cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].ref().execution(), "executions/gone");
  EXPECT_TRUE(c_.leases.HoldsLiveLease(*agent, leased_["t1"]));
  EXPECT_FALSE(c_.leases.HoldsLiveLease(*agent, leased_["t2"]));
}

}  // namespace
}  // namespace gyre::orchestrator
