// Sizes through the engine: limits checked before anything is applied (libs/common/limits.h).

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

using ::gyre::orchestrator::testing::MessageSizeChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;

// --- Sizes: limits checked before anything is applied (libs/common/limits.h) ---

// `n` context entries of `bytes` each, named PREFIX0, PREFIX1...
std::map<std::string, std::string> BigContext(const std::string& prefix, int n, size_t bytes) {
  std::map<std::string, std::string> context;
  for (int i = 0; i < n; ++i) context[prefix + std::to_string(i)] = std::string(bytes, 'v');
  return context;
}

// Sizes tests pass context and outputs they do not declare: they are about
// sizes, so their workflows take the open context rule.
v1::WorkflowDefinition OpenContext(std::vector<v1::TaskSpec> tasks) {
  v1::WorkflowDefinition def = Workflow(std::move(tasks));
  def.set_context_passthrough(true);
  return def;
}

TEST_F(WorkflowEngineTest, SizesAContextOverItsTotalIsRefusedAndNothingStarts) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = OpenContext({Task("a")});
  // 70 values of 64 KiB: each within its limit, 4.4 MiB together.
  for (const auto& [key, value] : BigContext("V", 70, limits::kMaxContextValueBytes)) {
    (*request.mutable_context())[key] = value;
  }
  const absl::StatusOr<v1::Execution> started = engine_.StartExecution(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "at most 1048576")) << started.status();
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
}

TEST_F(WorkflowEngineTest, SizesTheMergedContextIsCheckedBeforeTheExecutionExists) {
  // Default context and request each under 1 MiB; together over it.
  v1::WorkflowDefinition def = OpenContext({Task("a")});
  for (const auto& [key, value] : BigContext("D", 10, limits::kMaxContextValueBytes)) {
    (*def.mutable_default_context())[key] = value;
  }
  v1::StartExecutionRequest request;
  *request.mutable_definition() = def;
  for (const auto& [key, value] : BigContext("R", 10, limits::kMaxContextValueBytes)) {
    (*request.mutable_context())[key] = value;
  }
  auto channel = Connect("a1");
  const absl::StatusOr<v1::Execution> started = engine_.StartExecution(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "together")) << started.status();
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
  EXPECT_EQ(channel->pending(), 0u) << "nothing was dispatched";
}

TEST_F(WorkflowEngineTest, SizesATaskFieldOverItsLimitIsRefused) {
  v1::TaskSpec task = Task("a");
  task.set_description(std::string(limits::kMaxTaskFieldBytes + 1, 'd'));
  v1::StartExecutionRequest request;
  *request.mutable_definition() = OpenContext({task});
  const absl::StatusOr<v1::Execution> started = engine_.StartExecution(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "task \"a\"")) << started.status();
  EXPECT_TRUE(absl::StrContains(started.status().message(), "description")) << started.status();
  v1::WorkflowDefinition stored = OpenContext({task});
  EXPECT_EQ(engine_.CreateWorkflow(stored).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
  EXPECT_EQ(engine_.ListWorkflows({})->workflows_size(), 0);
}

TEST_F(WorkflowEngineTest, SizesACancelReasonIsBounded) {
  const std::string execution = Start(OpenContext({Task("a")}));
  EXPECT_EQ(engine_.CancelExecution(execution, std::string(limits::kMaxMessageTextBytes + 1, 'r'))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine_.GetExecution(execution)->state(), v1::EXECUTION_CANCELLED);
}

TEST_F(WorkflowEngineTest, SizesListsLeaveContextsOutUnlessAskedAndBoundAFullPage) {
  for (int i = 0; i < 4; ++i) {
    Start(OpenContext({Task("a")}), BigContext("V", 15, limits::kMaxContextValueBytes));
  }
  const absl::StatusOr<v1::ListExecutionsResponse> basic = engine_.ListExecutions({});
  ASSERT_TRUE(basic.ok()) << basic.status();
  ASSERT_EQ(basic->executions_size(), 4);
  for (const v1::Execution& execution : basic->executions()) {
    EXPECT_TRUE(execution.context().empty());
    // GetExecution keeps the whole execution.
    EXPECT_EQ(engine_.GetExecution(execution.name())->context_size(), 15);
  }
  v1::ListExecutionsRequest full;
  full.set_view(v1::EXECUTION_VIEW_FULL);
  const absl::StatusOr<v1::ListExecutionsResponse> page = engine_.ListExecutions(full);
  ASSERT_TRUE(page.ok()) << page.status();
  // 960 KiB of context each: two fit in 2 MiB, the rest follow.
  EXPECT_EQ(page->executions_size(), 2);
  EXPECT_EQ(page->executions(0).context_size(), 15);
  EXPECT_FALSE(page->next_page_token().empty());
  full.set_page_token(page->next_page_token());
  EXPECT_EQ(engine_.ListExecutions(full)->executions_size(), 2);
  v1::ListExecutionsRequest bad;
  bad.set_view(static_cast<v1::ExecutionView>(7));
  EXPECT_EQ(engine_.ListExecutions(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// 15 outputs of ~64 KiB (~960 KiB), as a task writes them to $GYRE_OUTPUT.
std::string BigOutputs(const std::string& prefix) {
  std::string json = "{";
  for (const auto& [key, value] : BigContext(prefix, 15, limits::kMaxContextValueBytes - 16)) {
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"", key, "\":\"", value, "\"");
  }
  return json + "}";
}

TEST_F(WorkflowEngineTest, SizesATaskRunsPageIsBoundedByItsOutputs) {
  auto channel = Connect("a1");
  const std::string execution =
      Start(OpenContext({Task("a"), Task("b"), Task("c"), Task("d"), Task("e")}));
  for (const v1::TaskAssignment& task : channel->Take(5)) {
    Report("a1", task, v1::ATTEMPT_SUCCEEDED, BigOutputs("O"));
  }
  v1::ListTaskRunsRequest request;
  request.set_parent(execution);
  std::vector<int> pages;
  do {
    const absl::StatusOr<v1::ListTaskRunsResponse> page = engine_.ListTaskRuns(request);
    ASSERT_TRUE(page.ok()) << page.status();
    pages.push_back(page->task_runs_size());
    EXPECT_LE(page->ByteSizeLong(), 4u << 20);
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, (std::vector<int>{2, 2, 1}));
}

TEST_F(WorkflowEngineTest, SizesResultTailsAreCutOnArrivalAndTheResultIsKept) {
  auto channel = Connect("a1");
  const std::string execution = Start(OpenContext({Task("a"), Task("b", {"a"})}));
  const v1::TaskAssignment a = channel->Take(1).at(0);
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = a.ref();
  result->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result->set_stdout_tail(std::string(3 * limits::kMaxResultTailBytes, 'o'));
  result->set_stdout_bytes(3 * limits::kMaxResultTailBytes);
  // A rogue agent's error: long, and cut in the middle of a 2-byte character.
  result->set_error(std::string(limits::kMaxMessageTextBytes - 1, 'e') + "\xc3\xa9" + "tail");
  result->set_sequence(1);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", message).ok());
  EXPECT_EQ(StateOf(execution, "a"), v1::TASK_SUCCEEDED);
  const absl::StatusOr<v1::GetTaskLogsResponse> logs =
      engine_.GetTaskLogs(execution + "/tasks/a", 0);
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(logs->stdout().size(), limits::kMaxResultTailBytes);
  EXPECT_TRUE(logs->truncated());
  const v1::TaskRun run = *engine_.GetTaskRun(execution + "/tasks/a");
  EXPECT_EQ(run.attempts(0).error().size(), limits::kMaxMessageTextBytes - 1);
  EXPECT_EQ(channel->Take(1).at(0).ref().task_id(), "b") << "the execution goes on";
}

TEST_F(WorkflowEngineTest, SizesAnOutputOverItsLimitFailsTheAttemptInsteadOfBeingStored) {
  auto channel = Connect("a1");
  const std::string execution = Start(OpenContext({Task("a")}));
  const v1::TaskAssignment a = channel->Take(1).at(0);
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = a.ref();
  result->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result->set_output_json("{\"K\": \"" + std::string(limits::kMaxOutputJsonBytes, 'x') + "\"}");
  result->set_sequence(1);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", message).ok());
  const v1::TaskRun run = *engine_.GetTaskRun(execution + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_TRUE(absl::StrContains(run.attempts(0).error(), "$GYRE_OUTPUT holds"))
      << run.DebugString();
}

TEST_F(WorkflowEngineTest, SizesATaskWhoseEnvironmentOutgrowsExecFailsWithAReason) {
  auto channel = Connect("a1");
  // 960 KiB of context, and two upstream tasks passing on 960 KiB each:
  // "c" would get 2.8 MiB of environment, more than exec takes.
  const std::string execution =
      Start(OpenContext({Task("a"), Task("b"), Task("c", {"a", "b"}), Task("d", {"c"}), Task("e")}),
            BigContext("V", 15, limits::kMaxContextValueBytes));
  for (const v1::TaskAssignment& task : channel->Take(3)) {
    if (task.ref().task_id() == "e") continue;
    Report("a1", task, v1::ATTEMPT_SUCCEEDED, BigOutputs(task.ref().task_id() == "a" ? "A" : "B"));
  }
  const v1::TaskRun c = *engine_.GetTaskRun(execution + "/tasks/c");
  EXPECT_EQ(c.state(), v1::TASK_FAILED);
  ASSERT_EQ(c.attempts_size(), 1);
  EXPECT_TRUE(absl::StrContains(c.attempts(0).error(), "command line and environment"))
      << c.attempts(0).error();
  EXPECT_EQ(StateOf(execution, "d"), v1::TASK_SKIPPED);
  EXPECT_EQ(channel->pending(), 0u) << "c was never sent to the agent";
}

TEST_F(WorkflowEngineTest, SizesAnAssignmentBatchIsSplitUnderTheAgentsReceiveLimit) {
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 24; ++i) tasks.push_back(Task("t" + std::to_string(i)));
  // 24 tasks with ~1 MiB of environment each: 24 MiB in one batch.
  Start(OpenContext(tasks), BigContext("V", 15, limits::kMaxContextValueBytes));
  auto channel = std::make_shared<MessageSizeChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 32), channel).ok());
  v1::AgentMessage credit;
  credit.mutable_credit()->set_tasks(32);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", credit).ok());
  EXPECT_EQ(channel->tasks(), 24);
  EXPECT_GE(channel->sizes().size(), 3u);
  for (size_t size : channel->sizes()) EXPECT_LE(size, limits::kMaxAssignmentMessageBytes);
}

}  // namespace
}  // namespace gyre::orchestrator
