// Workflow definitions, versions, targets, the task library and outcome scheduling, through the
// engine.

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
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;

TEST_F(WorkflowEngineTest, TargetsPullInOnlyTheirDependencies) {
  auto agent = Connect("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() =
      Workflow({Task("a"), Task("b", {"a"}), Task("unrelated"), Task("c", {"b"})});
  request.add_targets("b");
  const v1::Execution exec = *engine_.StartExecution(request);
  EXPECT_EQ(exec.task_counts().total(), 2);
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].ref().task_id(), "a");
}

TEST_F(WorkflowEngineTest, BadRequestsAreRejectedWithNothingStored) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a", {"ghost"})});
  EXPECT_EQ(engine_.StartExecution(request).status().message(),
            "task \"a\": unknown dependency \"ghost\"");
  *request.mutable_definition() = Workflow({Task("a")});
  (*request.mutable_context())["BAD KEY"] = "x";
  EXPECT_EQ(engine_.StartExecution(request).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
}

TEST_F(WorkflowEngineTest, UnknownNamesAreQuotedCutAndSuggestedCheaply) {
  v1::WorkflowDefinition report = Workflow({Task("t")});
  report.set_name("report");
  ASSERT_TRUE(engine_.CreateWorkflow(report).ok());
  EXPECT_EQ(engine_.GetWorkflow("workflows/reprot").status().message(),
            "\"workflows/reprot\" not found (did you mean \"workflows/report\"?)");
  // A huge name: cut in the message, and no suggestion work.
  const absl::Status huge = engine_.GetWorkflow("workflows/" + std::string(1 << 20, 'z')).status();
  EXPECT_EQ(huge.code(), absl::StatusCode::kNotFound);
  EXPECT_LT(huge.message().size(), 200u) << huge.message();
  EXPECT_TRUE(absl::StrContains(huge.message(), "(1048586 bytes)")) << huge.message();
  const absl::Status execution =
      engine_.GetExecution("executions/\x1b]0;owned\x07" + std::string(500, 'x')).status();
  EXPECT_TRUE(absl::StartsWith(execution.message(), "execution \"executions/\\x1b]0;owned\\x07xx"))
      << execution.message();
}

// Options of an engine whose task library holds `tasks`.
WorkflowEngine::Options WithLibrary(std::vector<v1::TaskSpec> tasks) {
  WorkflowEngine::Options options;
  v1::WorkflowDefinition library = Declaring(Workflow(std::move(tasks)), {"DAY"});
  library.set_name("workflows/task-library");
  options.task_library = std::make_shared<const v1::WorkflowDefinition>(std::move(library));
  return options;
}

TEST(WorkflowEngineOutcomeTest, ScheduleOutcomePullsInDependenciesFromTheLibrary) {
  WorkflowEngine engine(
      WithLibrary({Task("raw"), Task("clean", {"raw"}), Task("report", {"clean"}), Task("other")}));
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 4), channel).ok());
  v1::ScheduleOutcomeRequest request;
  request.add_targets("report");
  (*request.mutable_context())["DAY"] = "monday";
  absl::StatusOr<v1::Execution> execution = engine.ScheduleOutcome(request);
  ASSERT_TRUE(execution.ok()) << execution.status();
  EXPECT_EQ(execution->task_counts().total(), 3);
  auto first = channel->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "raw");
  EXPECT_EQ(first[0].env().at("DAY"), "monday");
  request.set_targets(0, "reprot");
  EXPECT_EQ(engine.ScheduleOutcome(request).status().message(),
            "unknown target task \"reprot\" (did you mean \"report\"?)");
}

TEST(WorkflowEngineOutcomeTest, AWorkflowDependingOnLibraryTasksRunsThemFirst) {
  WorkflowEngine engine(WithLibrary({Task("raw"), Task("clean", {"raw"}), Task("other")}));
  absl::StatusOr<v1::WorkflowDefinition> served = engine.GetTaskLibrary();
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->tasks_size(), 3);
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 4), channel).ok());

  // Inline: the execution holds the workflow's task and the two it needs.
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("summary", {"clean"})});
  absl::StatusOr<v1::Execution> execution = engine.StartExecution(request);
  ASSERT_TRUE(execution.ok()) << execution.status();
  EXPECT_EQ(execution->task_counts().total(), 3);
  auto first = channel->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "raw");

  // Stored: the version holds them too, so every execution of it does.
  v1::WorkflowDefinition stored = Workflow({Task("summary", {"clean"})});
  stored.set_name("workflows/stored");
  absl::StatusOr<v1::WorkflowDefinition> created = engine.CreateWorkflow(stored);
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<v1::WorkflowDefinition> fetched = engine.GetWorkflow("workflows/stored");
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  std::vector<std::string> ids;
  for (const v1::TaskSpec& task : fetched->tasks()) ids.push_back(task.id());
  EXPECT_EQ(ids, (std::vector<std::string>{"summary", "raw", "clean"}));

  // A dependency in neither is refused whole, naming both places.
  *request.mutable_definition() = Workflow({Task("summary", {"claen"})});
  EXPECT_EQ(engine.StartExecution(request).status().message(),
            "task \"summary\": unknown dependency \"claen\": no task of this workflow or of "
            "the task library has that id (did you mean \"clean\"?)");
  EXPECT_EQ(engine.ListExecutions(v1::ListExecutionsRequest())->executions_size(), 1);
}

TEST(WorkflowEngineOutcomeTest, WithoutALibraryScheduleOutcomeSaysSo) {
  WorkflowEngine engine(WorkflowEngine::Options{});
  v1::ScheduleOutcomeRequest request;
  request.add_targets("report");
  EXPECT_EQ(engine.ScheduleOutcome(request).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine.GetTaskLibrary().status().code(), absl::StatusCode::kNotFound);
}

TEST(WorkflowEngineDefinitionsTest, VersionsAreAssignedAndRetrievable) {
  WorkflowEngine engine(WorkflowEngine::Options{});
  v1::WorkflowDefinition def = Workflow({Task("a")});
  def.set_name("etl");
  auto first = engine.CreateWorkflow(def);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->name(), "workflows/etl");
  EXPECT_EQ(first->version(), 1);
  EXPECT_EQ(engine.CreateWorkflow(def).status().code(), absl::StatusCode::kAlreadyExists);
  *def.add_tasks() = Task("b", {"a"});
  auto second = engine.UpdateWorkflow(def);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->version(), 2);
  EXPECT_EQ(engine.GetWorkflow("workflows/etl")->tasks_size(), 2);
  EXPECT_EQ(engine.GetWorkflow("workflows/etl/versions/1")->tasks_size(), 1);
  EXPECT_EQ(engine.GetWorkflow("workflows/etl/versions/3").status().code(),
            absl::StatusCode::kNotFound);
  v1::WorkflowDefinition unknown = def;
  unknown.set_name("nope");
  EXPECT_EQ(engine.UpdateWorkflow(unknown).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine.ListWorkflows({})->workflows_size(), 1);
  // A bad definition stores nothing.
  v1::WorkflowDefinition bad = Workflow({Task("x", {"ghost"})});
  bad.set_name("bad");
  EXPECT_EQ(engine.CreateWorkflow(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.ListWorkflows({})->workflows_size(), 1);
}

TEST(WorkflowEngineListTest, ListWorkflowsPagesByNameAndRefusesBadPages) {
  WorkflowEngine engine(WorkflowEngine::Options{});
  for (const char* name : {"c", "a", "e", "b", "d"}) {
    v1::WorkflowDefinition def = Workflow({Task("t")});
    def.set_name(name);
    ASSERT_TRUE(engine.CreateWorkflow(def).ok());
  }
  std::vector<std::string> seen;
  v1::ListWorkflowsRequest request;
  request.set_page_size(2);
  int pages = 0;
  do {
    absl::StatusOr<v1::ListWorkflowsResponse> page = engine.ListWorkflows(request);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->workflows_size(), 2);
    for (const auto& def : page->workflows()) seen.push_back(def.name());
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"workflows/a", "workflows/b", "workflows/c",
                                            "workflows/d", "workflows/e"}));
  request.set_page_token("");
  for (int bad : {-5, 1001}) {
    request.set_page_size(bad);
    EXPECT_EQ(engine.ListWorkflows(request).status().code(), absl::StatusCode::kInvalidArgument);
  }
  request.set_page_size(0);
  request.set_page_token("not-a-token");
  EXPECT_EQ(engine.ListWorkflows(request).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gyre::orchestrator
