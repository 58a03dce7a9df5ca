// AgentSession over a real engine (in memory), driven as the asynchronous
// gRPC transport drives it: TakeOutgoing and the wake hook. The blocking
// side (WaitOutgoing) is covered by cmd/gyre/in_process_agent_link_test.
#include "services/orchestrator/agent_session.h"

#include "gtest/gtest.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

v1::AgentMessage Registration(const std::string& agent_id, int slots = 4) {
  v1::AgentMessage message;
  message.mutable_register_()->set_agent_id(agent_id);
  message.mutable_register_()->set_slots(slots);
  message.mutable_register_()->set_initial_credit(slots);
  message.mutable_register_()->add_queues("default");
  return message;
}

class AgentSessionTest : public ::testing::Test {
 protected:
  std::string StartNoop() {
    v1::StartExecutionRequest request;
    request.mutable_definition()->set_name("workflows/session");
    v1::TaskSpec* task = request.mutable_definition()->add_tasks();
    task->set_id("only");
    task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    absl::StatusOr<v1::Execution> execution = engine_.StartExecution(request);
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

  v1::AgentInfo::State AgentState(const std::string& id) {
    for (const v1::AgentInfo& agent : engine_.ListAgents()) {
      if (agent.name() == "agents/" + id) return agent.state();
    }
    return v1::AgentInfo::STATE_UNSPECIFIED;
  }

  WorkflowEngine engine_{WorkflowEngine::Options()};
};

TEST_F(AgentSessionTest, WakesAnIdleTransportOnceAndKeepsTheOrder) {
  int wakes = 0;
  AgentSession session(&engine_, [&wakes] { ++wakes; });
  ASSERT_TRUE(session.Receive(Registration("a1")).ok());
  EXPECT_EQ(wakes, 1) << "the Registered reply wakes the idle transport";
  v1::OrchestratorMessage message;
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  EXPECT_EQ(message.registered().agent(), "agents/a1");
  EXPECT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kIdle);

  // Two assignments while the transport writes the first: one wake only.
  const std::string first = StartNoop();
  const std::string second = StartNoop();
  EXPECT_EQ(wakes, 2) << "a transport that is writing is not woken again";
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  EXPECT_EQ(message.assignment().tasks(0).ref().execution(), first);
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  EXPECT_EQ(message.assignment().tasks(0).ref().execution(), second);
  EXPECT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kIdle);
}

TEST_F(AgentSessionTest, EndDisconnectsOnceAndNothingGoesOutAfter) {
  int wakes = 0;
  AgentSession session(&engine_, [&wakes] { ++wakes; });
  ASSERT_TRUE(session.Receive(Registration("a1")).ok());
  EXPECT_EQ(AgentState("a1"), v1::AgentInfo::CONNECTED);
  session.End(absl::CancelledError("the transport closed"));
  session.End();  // a second end changes nothing
  EXPECT_EQ(AgentState("a1"), v1::AgentInfo::DISCONNECTED);
  EXPECT_TRUE(absl::IsCancelled(session.status())) << "the first reason to end is kept";

  StartNoop();  // nobody to run it: the session is over
  EXPECT_EQ(wakes, 1) << "an ended session wakes nobody";
  v1::OrchestratorMessage message;
  EXPECT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kEnd);
  v1::AgentMessage credit;
  credit.mutable_credit()->set_tasks(1);
  EXPECT_FALSE(session.Receive(credit).ok()) << "an ended session takes no more messages";

  // The id registers again on a new session and gets the task.
  AgentSession again(&engine_);
  ASSERT_TRUE(again.Receive(Registration("a1")).ok());
  EXPECT_EQ(AgentState("a1"), v1::AgentInfo::CONNECTED);
  bool assigned = false;
  while (again.TakeOutgoing(&message) == AgentSession::Outgoing::kMessage) {
    assigned = assigned || message.has_assignment();
  }
  EXPECT_TRUE(assigned);
}

TEST_F(AgentSessionTest, AProtocolErrorEndsTheSessionAndDisconnects) {
  AgentSession session(&engine_, [] {});
  ASSERT_TRUE(session.Receive(Registration("a1")).ok());
  const absl::Status status = session.Receive(Registration("a1"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(session.status(), status);
  EXPECT_EQ(AgentState("a1"), v1::AgentInfo::DISCONNECTED);
  v1::OrchestratorMessage message;
  EXPECT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kEnd);
}

TEST_F(AgentSessionTest, TheFirstMessageMustRegisterAndARefusedOneLeavesNoAgent) {
  AgentSession unregistered(&engine_);
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  EXPECT_EQ(unregistered.Receive(heartbeat).code(), absl::StatusCode::kFailedPrecondition);

  AgentSession refused(&engine_);
  EXPECT_EQ(refused.Receive(Registration("Not A Valid Id!")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(engine_.ListAgents().empty());
}

}  // namespace
}  // namespace gyre::orchestrator
