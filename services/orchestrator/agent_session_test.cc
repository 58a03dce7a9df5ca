// AgentSession over a real engine (in memory), driven as the asynchronous
// gRPC transport drives it: TakeOutgoing and the wake hook. The blocking
// side (WaitOutgoing) is covered by cmd/gyre/in_process_agent_link_test.
#include "services/orchestrator/agent_session.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/shard_ownership.h"
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

// Issue 22: the slots a batch of results frees travel in the batch
// (TaskResults.credit), one message instead of two, and the orchestrator
// says it takes them so.
TEST_F(AgentSessionTest, CreditInAResultsBatchIsGrantedWithTheResults) {
  AgentSession session(&engine_, [] {});
  v1::AgentMessage hello = Registration("a1", /*slots=*/2);
  hello.mutable_register_()->set_initial_credit(1);  // its other slot is another's
  ASSERT_TRUE(session.Receive(hello).ok());
  v1::OrchestratorMessage message;
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  EXPECT_TRUE(message.registered().credit_in_results());
  const std::string first = StartNoop();
  const std::string second = StartNoop();
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  ASSERT_EQ(message.assignment().tasks_size(), 1) << "one slot";
  const v1::AttemptRef ref = message.assignment().tasks(0).ref();
  EXPECT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kIdle);

  v1::AgentMessage batch;
  v1::TaskResult* result = batch.mutable_task_results()->add_results();
  *result->mutable_ref() = ref;
  result->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result->set_sequence(1);
  batch.mutable_task_results()->set_credit(1);
  ASSERT_TRUE(session.Receive(batch).ok());
  bool assigned = false;
  while (session.TakeOutgoing(&message) == AgentSession::Outgoing::kMessage) {
    if (message.has_assignment()) {
      assigned = true;
      EXPECT_EQ(message.assignment().tasks(0).ref().execution(), second);
    }
  }
  EXPECT_TRUE(assigned) << "the freed slot took the next task with no Credit message";
  EXPECT_NE(ref.execution(), second);
  EXPECT_EQ(ref.execution(), first);
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

// An execution name whose shard is below (or not below) `half`.
std::string NameInShards(bool low) {
  for (int i = 0;; ++i) {
    std::string id = absl::StrCat("e-session-", i);
    if ((ShardOfExecution(id, kDefaultShardCount) < kDefaultShardCount / 2) == low) {
      return "executions/" + id;
    }
  }
}

// Issue 21: a result for an execution of a shard another orchestrator owns
// is answered with ResultRefused (the agent sends it on), not with the end
// of the stream; in a batch, the results of owned shards are still handled.
TEST(AgentSessionShardsTest, AResultOfAShardNotOwnedIsRefusedTypedAndTheSessionGoesOn) {
  WorkflowEngine::Options options;
  std::vector<uint32_t> low;
  for (uint32_t s = 0; s < kDefaultShardCount / 2; ++s) low.push_back(s);
  options.owned_shards = low;
  WorkflowEngine engine(options);
  AgentSession session(&engine);
  v1::AgentMessage hello = Registration("a1", /*slots=*/2);
  hello.mutable_register_()->set_initial_credit(1);  // its other slot is another's
  ASSERT_TRUE(session.Receive(hello).ok());
  v1::OrchestratorMessage message;
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  ASSERT_TRUE(message.has_registered());

  v1::AgentMessage batch;
  v1::TaskResult* owned = batch.mutable_task_results()->add_results();
  owned->mutable_ref()->set_execution(NameInShards(/*low=*/true));
  owned->mutable_ref()->set_task_id("t");
  owned->mutable_ref()->set_attempt(1);
  owned->set_outcome(v1::ATTEMPT_SUCCEEDED);
  owned->set_sequence(1);
  v1::TaskResult* foreign = batch.mutable_task_results()->add_results();
  *foreign = *owned;
  foreign->mutable_ref()->set_execution(NameInShards(/*low=*/false));
  foreign->set_sequence(2);
  ASSERT_TRUE(session.Receive(batch).ok()) << "the session goes on";

  bool refused = false;
  uint64_t acked = 0;
  while (session.TakeOutgoing(&message) == AgentSession::Outgoing::kMessage) {
    if (message.has_result_refused()) {
      refused = true;
      EXPECT_EQ(message.result_refused().sequence(), 2u);
      EXPECT_EQ(message.result_refused().ref().execution(), foreign->ref().execution());
      EXPECT_EQ(message.result_refused().shard(),
                ShardOfExecution(foreign->ref().execution(), kDefaultShardCount));
      EXPECT_NE(message.result_refused().reason().find("shard"), std::string::npos);
    }
    if (message.has_result_ack()) acked = message.result_ack().through_sequence();
  }
  EXPECT_TRUE(refused);
  // The owned (stale: never leased) result is acknowledged; the refused one
  // never is, nor passed over before the refusal went out.
  EXPECT_EQ(acked, 1u);
  EXPECT_TRUE(session.status().ok()) << session.status();

  // The credit a refused batch carries is granted all the same (lost, the
  // agent's slot would idle). The agent's one credit runs an execution of
  // this orchestrator's; a second waits for the other slot's credit.
  v1::StartExecutionRequest start;
  start.mutable_definition()->set_name("workflows/waits");
  v1::TaskSpec* task = start.mutable_definition()->add_tasks();
  task->set_id("only");
  task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  ASSERT_TRUE(engine.StartExecution(start).ok());
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  ASSERT_TRUE(message.has_assignment());
  absl::StatusOr<v1::Execution> waiting = engine.StartExecution(start);
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kIdle) << "no credit yet";
  v1::AgentMessage refused_batch;
  *refused_batch.mutable_task_results()->add_results() = *foreign;
  refused_batch.mutable_task_results()->mutable_results(0)->set_sequence(3);
  refused_batch.mutable_task_results()->set_credit(1);
  ASSERT_TRUE(session.Receive(refused_batch).ok());
  bool assigned = false;
  refused = false;
  while (session.TakeOutgoing(&message) == AgentSession::Outgoing::kMessage) {
    refused = refused || message.has_result_refused();
    if (message.has_assignment()) {
      assigned = true;
      EXPECT_EQ(message.assignment().tasks(0).ref().execution(), waiting->name());
    }
  }
  EXPECT_TRUE(refused);
  EXPECT_TRUE(assigned) << "the refused batch's credit was granted";

  // A lone result too.
  v1::AgentMessage single;
  *single.mutable_task_result() = *foreign;
  single.mutable_task_result()->set_sequence(4);
  ASSERT_TRUE(session.Receive(single).ok());
  ASSERT_EQ(session.TakeOutgoing(&message), AgentSession::Outgoing::kMessage);
  EXPECT_EQ(message.result_refused().sequence(), 4u);
}

}  // namespace
}  // namespace gyre::orchestrator
