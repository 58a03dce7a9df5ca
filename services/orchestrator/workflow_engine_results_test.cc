// Results through the engine: fencing, numbering, batches and outputs.

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

using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;

TEST_F(WorkflowEngineTest, ResultsInOneMessageAreAppliedInOrderAndAcknowledgedTogether) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b"), Task("c", {"a"})}));
  auto first = agent->Take(2);
  ASSERT_EQ(first.size(), 2u);
  v1::AgentMessage message;
  uint64_t sequence = 0;
  for (const v1::TaskAssignment& task : first) {
    v1::TaskResult* result = message.mutable_task_results()->add_results();
    *result->mutable_ref() = task.ref();
    result->set_outcome(v1::ATTEMPT_SUCCEEDED);
    result->set_sequence(++sequence);
  }
  // A stale attempt in the same batch is acknowledged (to be forgotten), not applied.
  v1::TaskResult* stale = message.mutable_task_results()->add_results();
  *stale->mutable_ref() = first[0].ref();
  stale->mutable_ref()->set_attempt(first[0].ref().attempt() + 7);
  stale->set_outcome(v1::ATTEMPT_FAILED);
  stale->set_sequence(++sequence);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", message).ok());

  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(agent->acks(), (std::vector<uint64_t>{3})) << "one acknowledgement through the last";
  ASSERT_EQ(agent->Take(1).size(), 1u) << "c became ready once a succeeded";

  // Alone, a stale result is acknowledged at once (nothing is pending).
  v1::AgentMessage late;
  *late.mutable_task_result() = *stale;
  late.mutable_task_result()->set_sequence(++sequence);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", late).ok());
  EXPECT_EQ(agent->acks(), (std::vector<uint64_t>{3, 4}));
}

TEST_F(WorkflowEngineTest, AnUnnumberedResultIsAProtocolError) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto task = agent->Take(1);
  ASSERT_EQ(task.size(), 1u);
  v1::AgentMessage message;
  *message.mutable_task_result()->mutable_ref() = task[0].ref();
  message.mutable_task_result()->set_outcome(v1::ATTEMPT_SUCCEEDED);
  absl::Status status = engine_.HandleAgentMessage("a1", message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "task_result: sequence must be set (the agent numbers its results 1, 2, 3...)");

  v1::AgentMessage batch;
  *batch.mutable_task_results()->add_results() = message.task_result();
  batch.mutable_task_results()->mutable_results(0)->set_sequence(1);
  *batch.mutable_task_results()->add_results() = message.task_result();  // unnumbered
  status = engine_.HandleAgentMessage("a1", batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_LEASED) << "nothing of the message was applied";
  EXPECT_TRUE(agent->acks().empty());
}

TEST_F(WorkflowEngineTest, TooManyResultsInOneMessageAreAProtocolError) {
  Connect("a1");
  v1::AgentMessage message;
  for (int i = 0; i <= WorkflowEngine::kMaxResultsPerMessage; ++i) {
    message.mutable_task_results()->add_results();
  }
  const absl::Status status = engine_.HandleAgentMessage("a1", message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "task_results: 4097 results in one message; at most 4096");
}

TEST_F(WorkflowEngineTest, OutputThatIsNotAJsonObjectFailsTheTask) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto task = agent->Take(1);
  ASSERT_EQ(task.size(), 1u);
  Report("a1", task[0], v1::ATTEMPT_SUCCEEDED, "[1, 2]");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_NE(run.attempts(0).error().find("$GYRE_OUTPUT is not a JSON object"), std::string::npos)
      << run.attempts(0).error();
}

TEST_F(WorkflowEngineTest, StaleAttemptResultIsRejectedAfterRelease) {
  auto dead = Connect("dead", 1);
  const std::string exec = Start(Workflow({Task("a")}));
  auto lost = dead->Take(1);
  ASSERT_EQ(lost.size(), 1u);
  engine_.ExpireLeases(absl::Now() + absl::Minutes(1));  // "dead" missed every heartbeat
  auto alive = Connect("alive", 1);
  auto retry = alive->Take(1);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].ref().attempt(), 2);
  // The old attempt's result arrives late from a reconnected "dead": rejected.
  Connect("dead", 1);
  Report("dead", lost[0], v1::ATTEMPT_FAILED);
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_LEASED);
  Report("alive", retry[0]);
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_LOST);
}

TEST_F(WorkflowEngineTest, AResultSentAgainIsIgnoredQuietlyAndAStaleOneIsWarnedAbout) {
  char path[] = "/tmp/gyre_engine_log_XXXXXX";
  const int log_fd = mkstemp(path);
  ASSERT_GE(log_fd, 0);
  logging::SetOutputFd(log_fd);
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0]);
  // Its acknowledgement lost, a1 sends the same result again (a new
  // session, a new number): recorded once, and not called stale.
  Report("a1", a[0]);
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/a")->attempts_size(), 1);
  // A result for an attempt a1 never held is stale.
  v1::TaskAssignment other = a[0];
  other.mutable_ref()->set_attempt(7);
  Report("a1", other);
  logging::SetOutputFd(STDERR_FILENO);
  close(log_fd);
  std::stringstream log;
  log << std::ifstream(path).rdbuf();
  std::remove(path);
  EXPECT_EQ(log.str().find("\"attempt\":1,"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("stale result rejected"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("\"attempt\":7,"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace gyre::orchestrator
