#include "services/orchestrator/execution_table.h"

#include <algorithm>
#include <functional>
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

// Many executions of three workflows, two tenants and four states: every
// filtered list, paged, is exactly what a scan of all of them finds, newest
// first, and paging stays right while executions are forgotten mid-way.
TEST_F(ExecutionTableTest, FilteredListsFromTheIndexesMatchAScanAndPageStably) {
  constexpr int kExecutions = 20000;
  const v1::ExecutionState kStates[] = {v1::EXECUTION_RUNNING, v1::EXECUTION_SUCCEEDED,
                                        v1::EXECUTION_FAILED, v1::EXECUTION_PENDING};
  std::vector<v1::WorkflowDefinition> defs;
  for (const char* name : {"etl", "train", "report"}) {
    defs.push_back(Workflow(name, {Task("a")}));
    EXPECT_TRUE(WorkflowRegistry::Prepare(nullptr, defs.back()).ok());
  }
  defs[2].set_tenant("acme");
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> shared;
  for (const auto& def : defs)
    shared.push_back(std::make_shared<const v1::WorkflowDefinition>(def));
  // Shared: the test reads forgotten ones too.
  std::vector<std::shared_ptr<const ExecutionEntry>> all;
  for (int i = 0; i < kExecutions; ++i) {
    v1::ExecutionStarted record;
    record.set_execution_id(table_.NewId(now_));
    *record.mutable_create_time() = ToProto(now_);
    ExecutionEntry& exec = table_.Build(record, shared[(i * 7) % 3], nullptr, queues_);
    const v1::ExecutionState state = kStates[(i * 13) % 4];
    table_.CountState(exec, exec.state, state);
    exec.state = state;
    if (exec.final()) {
      exec.end_time = now_ + absl::Seconds(i);
      table_.Ended(exec);
    }
    all.push_back(table_.Share(exec.index));
  }

  // What a scan finds for `req`, newest first.
  auto scan = [&](const v1::ListExecutionsRequest& req) {
    std::vector<std::string> names;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      const ExecutionEntry& exec = **it;
      if (table_.Find(exec.id) == nullptr) continue;  // forgotten
      if (!req.workflow().empty() && exec.definition->name() != req.workflow()) continue;
      if (!req.tenant().empty() &&
          (exec.definition->tenant().empty() ? "default" : exec.definition->tenant()) !=
              req.tenant()) {
        continue;
      }
      if (!req.states().empty() &&
          std::find(req.states().begin(), req.states().end(), exec.state) == req.states().end()) {
        continue;
      }
      names.push_back(exec.full_name);
    }
    return names;
  };
  // Every page of `req` (page size 97) in order; `between` runs after the
  // first page.
  auto page_all = [&](v1::ListExecutionsRequest req, const std::function<void()>& between) {
    std::vector<std::string> names;
    int pages = 0;
    do {
      absl::StatusOr<v1::ListExecutionsResponse> page = table_.List(req, 97);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      EXPECT_LE(page->executions_size(), 97);
      for (const v1::Execution& exec : page->executions()) names.push_back(exec.name());
      req.set_page_token(page->next_page_token());
      if (++pages == 1 && between) between();
    } while (!req.page_token().empty() && pages < 10000);
    return names;
  };

  std::vector<v1::ListExecutionsRequest> requests(6);
  requests[1].set_workflow("workflows/train");
  requests[2].add_states(v1::EXECUTION_SUCCEEDED);
  requests[2].add_states(v1::EXECUTION_FAILED);
  requests[3].set_tenant("acme");
  requests[4].set_workflow("workflows/etl");
  requests[4].add_states(v1::EXECUTION_RUNNING);
  requests[5].set_tenant("default");
  requests[5].add_states(v1::EXECUTION_PENDING);
  for (const v1::ListExecutionsRequest& req : requests) {
    const std::vector<std::string> expected = scan(req);
    EXPECT_FALSE(expected.empty()) << req.ShortDebugString();
    EXPECT_EQ(page_all(req, nullptr), expected) << req.ShortDebugString();
  }

  // Forgetting finished executions while a client pages: what it has not
  // reached yet and was not forgotten still comes, once, in order.
  v1::ListExecutionsRequest req;
  req.set_workflow("workflows/train");
  const std::vector<std::string> before = scan(req);
  std::vector<std::string> forgotten;
  const std::vector<std::string> paged = page_all(req, [&] {
    for (int i = kExecutions / 2; i < kExecutions / 2 + 2000; ++i) {
      if (all[i]->final()) {
        forgotten.push_back(all[i]->full_name);
        EXPECT_TRUE(table_.Forget(all[i]->id));
      }
    }
  });
  ASSERT_FALSE(forgotten.empty());
  std::vector<std::string> expected;
  for (const std::string& name : before) {
    if (std::find(forgotten.begin(), forgotten.end(), name) == forgotten.end()) {
      expected.push_back(name);
    }
  }
  // The first page was taken before the forgetting: it may hold some.
  std::vector<std::string> paged_live;
  for (const std::string& name : paged) {
    if (std::find(forgotten.begin(), forgotten.end(), name) == forgotten.end()) {
      paged_live.push_back(name);
    }
  }
  EXPECT_EQ(paged_live, expected);
  EXPECT_EQ(paged.size() - paged_live.size(), 0u) << "the forgotten were past the first page";
  EXPECT_EQ(table_.live(), static_cast<size_t>(kExecutions) - forgotten.size());
  // A running execution is never forgotten.
  for (const auto& exec : all) {
    if (table_.Find(exec->id) != nullptr && exec->state == v1::EXECUTION_RUNNING) {
      EXPECT_FALSE(table_.Forget(exec->id));
      break;
    }
  }
}

}  // namespace
}  // namespace gyre::orchestrator
