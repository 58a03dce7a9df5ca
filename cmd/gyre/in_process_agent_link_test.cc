#include "cmd/gyre/in_process_agent_link.h"

#include <thread>

#include "gtest/gtest.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

v1::AgentMessage Registration(const std::string& agent_id) {
  v1::AgentMessage message;
  message.mutable_register_()->set_agent_id(agent_id);
  message.mutable_register_()->set_slots(4);
  message.mutable_register_()->add_queues("default");
  return message;
}

class InProcessAgentLinkTest : public ::testing::Test {
 protected:
  InProcessAgentLinkTest() : engine_(orchestrator::WorkflowEngine::Options()) {}

  std::string StartNoop() {
    v1::StartExecutionRequest request;
    request.mutable_definition()->set_name("workflows/link");
    v1::TaskSpec* task = request.mutable_definition()->add_tasks();
    task->set_id("only");
    task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    absl::StatusOr<v1::Execution> execution = engine_.StartExecution(request);
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

  orchestrator::WorkflowEngine engine_;
  std::unique_ptr<agent::OrchestratorLink> link_ = NewInProcessAgentLink(&engine_);
};

TEST_F(InProcessAgentLinkTest, RunsATaskWithTheAgentProtocol) {
  std::unique_ptr<agent::OrchestratorSession> session = link_->Open();
  ASSERT_TRUE(session->Write(Registration("dev-agent")));
  v1::OrchestratorMessage message;
  ASSERT_TRUE(session->Read(&message));
  EXPECT_EQ(message.registered().agent(), "agents/dev-agent");

  const std::string execution = StartNoop();
  ASSERT_TRUE(session->Read(&message));
  ASSERT_EQ(message.assignment().tasks_size(), 1);
  const v1::AttemptRef ref = message.assignment().tasks(0).ref();
  EXPECT_EQ(ref.execution(), execution);
  EXPECT_EQ(ref.task_id(), "only");

  v1::AgentMessage result;
  *result.mutable_task_result()->mutable_ref() = ref;
  result.mutable_task_result()->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result.mutable_task_result()->set_sequence(1);
  ASSERT_TRUE(session->Write(result));
  ASSERT_TRUE(session->Read(&message));
  EXPECT_EQ(message.result_ack().through_sequence(), 1u);
  EXPECT_EQ(engine_.GetExecution(execution)->state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(engine_.ListAgents().size(), 1u);

  session->Cancel();
  EXPECT_FALSE(session->Read(&message));
  EXPECT_FALSE(session->Write(result)) << "a cancelled session takes no more messages";
  EXPECT_TRUE(absl::IsCancelled(session->Finish()));
}

TEST_F(InProcessAgentLinkTest, TheFirstMessageMustRegister) {
  std::unique_ptr<agent::OrchestratorSession> session = link_->Open();
  v1::AgentMessage credit;
  credit.mutable_credit()->set_tasks(1);
  EXPECT_FALSE(session->Write(credit));
  v1::OrchestratorMessage message;
  EXPECT_FALSE(session->Read(&message));
  const absl::Status status = session->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "the first message on an agent stream must be register");
  EXPECT_TRUE(engine_.ListAgents().empty());
}

TEST_F(InProcessAgentLinkTest, ABadRegistrationEndsTheSessionWithTheEngineError) {
  std::unique_ptr<agent::OrchestratorSession> session = link_->Open();
  v1::AgentMessage registration = Registration("dev-agent");
  registration.mutable_register_()->set_slots(0);
  EXPECT_FALSE(session->Write(registration));
  const absl::Status status = session->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "register: slots 0 is out of range [1, 4096]");
}

TEST_F(InProcessAgentLinkTest, CancelWakesABlockedRead) {
  std::unique_ptr<agent::OrchestratorSession> session = link_->Open();
  ASSERT_TRUE(session->Write(Registration("dev-agent")));
  v1::OrchestratorMessage message;
  ASSERT_TRUE(session->Read(&message));  // registered
  std::thread reader([&] { EXPECT_FALSE(session->Read(&message)); });
  absl::SleepFor(absl::Milliseconds(20));  // let the reader block (not required for correctness)
  session->Cancel();
  reader.join();
  EXPECT_TRUE(absl::IsCancelled(session->Finish()));
}

TEST_F(InProcessAgentLinkTest, AMessageFromAnAgentTheEngineForgotEndsTheSession) {
  std::unique_ptr<agent::OrchestratorSession> session = link_->Open();
  ASSERT_TRUE(session->Write(Registration("dev-agent")));
  // Declared dead: silent past the lease timeout.
  engine_.ExpireLeases(absl::Now() + absl::Hours(1));
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  EXPECT_FALSE(session->Write(heartbeat));
  EXPECT_EQ(session->Finish().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gyre::cli
