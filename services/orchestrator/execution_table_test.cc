#include "services/orchestrator/execution_table.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/workflow/context_keys.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/workflow_registry.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

class ExecutionTableTest : public ::testing::Test {
 protected:
  // Builds an execution of `def` (prepared here) named by a new id.
  ExecutionEntry& Build(v1::WorkflowDefinition def, const std::string& request_id = "") {
    EXPECT_TRUE(WorkflowRegistry::Prepare(nullptr, def).ok());
    auto definition = std::make_shared<const v1::WorkflowDefinition>(std::move(def));
    v1::ExecutionStarted record;
    record.set_execution_id(table_.NewId(now_));
    record.set_priority(50);
    record.set_request_id(request_id);
    record.set_context_rules(kDeclaredContextRules);
    *record.mutable_create_time() = ToProto(now_);
    return table_.Build(record, definition, nullptr, queues_);
  }

  EngineMetrics metrics_{nullptr};
  QueueTable queues_{metrics_};
  ExecutionTable table_{metrics_};
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
};

TEST_F(ExecutionTableTest, BuildWiresEdgesCountsAndQueues) {
  v1::TaskSpec gpu = Task("gpu", {"a"});
  gpu.set_queue("gpu");
  gpu.set_priority(90);
  //   a -> b -> d, a -> c -> d, a -> gpu
  ExecutionEntry& exec =
      Build(Workflow({Task("a"), Task("b", {"a"}), Task("c", {"a"}), Task("d", {"b", "c"}), gpu}));
  ASSERT_EQ(exec.tasks.size(), 5u);
  EXPECT_EQ(exec.index, 0u);
  EXPECT_EQ(exec.full_name, "executions/" + exec.id);
  EXPECT_EQ(exec.total, 5);
  EXPECT_EQ(exec.pending, 5);
  EXPECT_EQ(exec.state, v1::EXECUTION_PENDING);
  const uint32_t a = exec.task_index.at("a"), b = exec.task_index.at("b"),
                 c = exec.task_index.at("c"), d = exec.task_index.at("d"),
                 g = exec.task_index.at("gpu");
  EXPECT_EQ(exec.tasks[a].dependants, (std::vector<uint32_t>{b, c, g}));
  EXPECT_EQ(exec.tasks[d].parents, (std::vector<uint32_t>{b, c}));
  EXPECT_EQ(exec.tasks[a].unmet_dependencies, 0u);
  EXPECT_EQ(exec.tasks[d].unmet_dependencies, 2u);
  for (const TaskEntry& task : exec.tasks) EXPECT_EQ(task.state, v1::TASK_PENDING);
  // Queues are named by the tasks (and kept while they are); priorities
  // come from the task, else the execution.
  EXPECT_EQ(queues_.at(exec.tasks[a].queue).name, "default");
  EXPECT_EQ(queues_.at(exec.tasks[g].queue).name, "gpu");
  EXPECT_TRUE(queues_.at(exec.tasks[g].queue).named_by_task);
  EXPECT_EQ(exec.tasks[a].priority, 50);
  EXPECT_EQ(exec.tasks[g].priority, 90);
  EXPECT_EQ(exec.tasks[a].spec->id(), "a");
}

TEST_F(ExecutionTableTest, LookupsByNameRequestAndTask) {
  ExecutionEntry& first = Build(Workflow({Task("a"), Task("b", {"a"})}), "req-1");
  ExecutionEntry& second = Build(Workflow({Task("a")}));
  EXPECT_EQ(table_.Find(first.full_name), &first);
  EXPECT_EQ(table_.Find(first.id), &first);
  EXPECT_EQ(table_.Find(second.full_name + "/tasks/a"), &second);
  EXPECT_EQ(table_.Find("executions/nope"), nullptr);
  EXPECT_EQ(table_.FindByRequest("req-1"), &first);
  EXPECT_EQ(table_.FindByRequest("req-2"), nullptr);

  TaskLocation b = table_.FindTask(first.full_name, "b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b.execution, &first);
  EXPECT_EQ(b.task, first.task_index.at("b"));
  EXPECT_EQ(&b.entry(), &first.tasks[b.task]);
  EXPECT_FALSE(table_.FindTask(first.full_name, "z"));
  EXPECT_FALSE(table_.FindTask("executions/nope", "a"));

  v1::AttemptRef ref;
  ref.set_execution(second.full_name);
  ref.set_task_id("a");
  ref.set_attempt(1);
  TaskLocation by_ref = table_.FindTask(ref);
  ASSERT_TRUE(by_ref);
  EXPECT_EQ(by_ref.execution, &second);

  TaskLocation run = table_.FindTaskRun(first.full_name + "/tasks/b");
  ASSERT_TRUE(run);
  EXPECT_EQ(run.task, b.task);
  EXPECT_FALSE(table_.FindTaskRun(first.full_name));  // no /tasks/
  EXPECT_FALSE(table_.FindTaskRun(first.full_name + "/tasks/z"));
}

TEST_F(ExecutionTableTest, NewIdsAreUniqueAndTimeOrderedEvenWithinAMillisecond) {
  std::set<std::string> ids;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    std::string id = table_.NewId(now_);
    EXPECT_TRUE(ids.insert(id).second) << id;
    EXPECT_LT(previous, id);
    previous = id;
  }
  EXPECT_EQ(table_.started(), 1000u);
  // A later millisecond sorts after.
  EXPECT_LT(previous, table_.NewId(now_ + absl::Milliseconds(1)));

  // After a restart the counter starts again: an id an execution already
  // holds is skipped.
  ExecutionEntry& existing = Build(Workflow({Task("a")}));
  table_.set_started(table_.started() - 1);
  EXPECT_NE(table_.NewId(now_), existing.id);
}

TEST_F(ExecutionTableTest, ListIsNewestFirstFilteredAndPagedWithTokens) {
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) names.push_back(Build(Workflow({Task("a")})).full_name);
  v1::WorkflowDefinition other = Workflow("other", {Task("a")});
  const std::string other_name = Build(other).full_name;

  v1::ListExecutionsRequest req;
  absl::StatusOr<v1::ListExecutionsResponse> page = table_.List(req, 4);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->executions_size(), 4);
  EXPECT_EQ(page->executions(0).name(), other_name);
  EXPECT_EQ(page->executions(1).name(), names[4]);
  EXPECT_EQ(page->executions(3).name(), names[2]);
  ASSERT_FALSE(page->next_page_token().empty());

  req.set_page_token(page->next_page_token());
  page = table_.List(req, 4);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->executions_size(), 2);
  EXPECT_EQ(page->executions(0).name(), names[1]);
  EXPECT_EQ(page->executions(1).name(), names[0]);
  EXPECT_TRUE(page->next_page_token().empty());

  v1::ListExecutionsRequest filtered;
  filtered.set_workflow("workflows/other");
  page = table_.List(filtered, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->executions_size(), 1);
  EXPECT_EQ(page->executions(0).name(), other_name);
  filtered.clear_workflow();
  filtered.add_states(v1::EXECUTION_SUCCEEDED);
  page = table_.List(filtered, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->executions_size(), 0);

  v1::ListExecutionsRequest bad;
  bad.set_page_token("not-a-token");
  EXPECT_EQ(table_.List(bad, 4).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gyre::orchestrator
