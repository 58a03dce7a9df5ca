// Executions through the engine: DAG order, failures and retries, context and outputs,
// pause/resume/cancel, global tasks, watching and listing.

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
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;
using ::gyre::orchestrator::testing::Writes;

TEST_F(WorkflowEngineTest, DiamondRunsInDependencyOrder) {
  auto agent = Connect("a1");
  const std::string exec =
      Start(Workflow({Task("a"), Task("b", {"a"}), Task("c", {"a"}), Task("d", {"b", "c"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "a");
  EXPECT_EQ(agent->pending(), 0u) << "b and c must wait for a";
  Report("a1", first[0]);
  auto middle = agent->Take(2);
  ASSERT_EQ(middle.size(), 2u);
  EXPECT_EQ(agent->pending(), 0u) << "d must wait for b and c";
  Report("a1", middle[0]);
  EXPECT_EQ(agent->pending(), 0u);
  Report("a1", middle[1]);
  auto last = agent->Take(1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].ref().task_id(), "d");
  Report("a1", last[0]);
  const v1::Execution done = *engine_.GetExecution(exec);
  EXPECT_EQ(done.state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(done.task_counts().succeeded(), 4);
}

TEST_F(WorkflowEngineTest, FailedTaskSkipsDependantsAndFailsExecution) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"}), Task("c")}));
  auto tasks = agent->Take(2);
  ASSERT_EQ(tasks.size(), 2u);
  for (const auto& task : tasks) {
    Report("a1", task, task.ref().task_id() == "a" ? v1::ATTEMPT_FAILED : v1::ATTEMPT_SUCCEEDED);
  }
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_FAILED);
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_SKIPPED);
  EXPECT_EQ(StateOf(exec, "c"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_FAILED);
}

TEST_F(WorkflowEngineTest, RetryRunsANewAttemptAfterBackoff) {
  auto agent = Connect("a1");
  v1::TaskSpec flaky = Task("flaky");
  flaky.mutable_retry()->set_max_retries(2);
  flaky.mutable_retry()->mutable_initial_backoff()->set_nanos(20'000'000);
  const std::string exec = Start(Workflow({flaky}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().attempt(), 1);
  Report("a1", first[0], v1::ATTEMPT_FAILED, "", "exit code 7");
  const v1::TaskRun waiting = *engine_.GetTaskRun(exec + "/tasks/flaky");
  EXPECT_EQ(waiting.state(), v1::TASK_PENDING) << "waiting out the backoff";
  EXPECT_TRUE(absl::StartsWith(waiting.reason(), "exit code 7; retry 1 of 2 in "))
      << waiting.reason();
  auto second = agent->Take(1);
  ASSERT_EQ(second.size(), 1u) << "the retry was never dispatched";
  EXPECT_EQ(second[0].ref().attempt(), 2);
  EXPECT_EQ(second[0].env().at("GYRE_ATTEMPT"), "2");
  Report("a1", second[0]);
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/flaky");
  EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_FAILED);
  EXPECT_EQ(run.attempts(1).outcome(), v1::ATTEMPT_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, OutputsReachDownstreamTasksAsEnvironment) {
  auto agent = Connect("a1");
  const std::string exec = Start(
      Declaring(Workflow({Writes(Task("extract"), {"ROWS", "STATS"}), Task("load", {"extract"})}),
                {"REGION"}),
      {{"REGION", "eu"}});
  auto extract = agent->Take(1);
  ASSERT_EQ(extract.size(), 1u);
  EXPECT_EQ(extract[0].env().at("REGION"), "eu");
  Report("a1", extract[0], v1::ATTEMPT_SUCCEEDED, R"({"ROWS": "42", "STATS": {"n": 1}})");
  auto load = agent->Take(1);
  ASSERT_EQ(load.size(), 1u);
  EXPECT_EQ(load[0].env().at("ROWS"), "42");
  EXPECT_EQ(load[0].env().at("STATS"), "{\"n\":1}");
  EXPECT_EQ(load[0].env().at("REGION"), "eu");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/extract");
  EXPECT_EQ(run.outputs().fields().at("ROWS").string_value(), "42");
}

TEST_F(WorkflowEngineTest, ABuiltinTaskGetsNeitherCommandNorEnvironment) {
  auto agent = Connect("a1");
  v1::TaskSpec noop = Task("noop");
  noop.clear_command();
  noop.mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  (*noop.mutable_env())["LEVEL"] = "${REGION}";
  Start(Declaring(Workflow({noop, Task("process")}), {"REGION"}), {{"REGION", "eu"}});
  auto tasks = agent->Take(2);
  ASSERT_EQ(tasks.size(), 2u);
  for (const v1::TaskAssignment& task : tasks) {
    if (task.ref().task_id() == "noop") {
      // It runs no process: nothing to build, copy or send.
      EXPECT_EQ(task.builtin().kind(), v1::BuiltinExecutor::NOOP);
      EXPECT_TRUE(task.env().empty());
      EXPECT_TRUE(task.command().empty());
    } else {
      EXPECT_FALSE(task.has_builtin());
      EXPECT_EQ(task.env().at("REGION"), "eu");
      EXPECT_EQ(task.env().at("GYRE_TASK_ID"), "process");
      EXPECT_EQ(task.command(0), "true");
    }
  }
}

// Outputs and decisions become the environment of the tasks downstream:
// they cannot set what makes those tasks run other code.
TEST_F(WorkflowEngineTest, ContextThatWouldChangeWhatTasksRunIsRefusedFromEverySource) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  (*request.mutable_context())["LD_PRELOAD"] = "/tmp/evil.so";
  EXPECT_EQ(engine_.StartExecution(request).status().message(),
            "context key \"LD_PRELOAD\" is refused: it changes what code programs load or run; "
            "set it in a task's env if the workflow needs it");

  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0], v1::ATTEMPT_SUCCEEDED, R"({"ROWS": "7", "PATH": "/tmp/evil"})");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_EQ(run.attempts(0).error(),
            "$GYRE_OUTPUT: context key \"PATH\" is refused: it changes what code programs load "
            "or run; set it in a task's env if the workflow needs it");
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_SKIPPED);

  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string judged = Start(Workflow({judge, Task("deploy", {"judge"})}));
  auto decision = agent->Take(1);
  ASSERT_EQ(decision.size(), 1u);
  Report("a1", decision[0], v1::ATTEMPT_SUCCEEDED,
         R"({"run": ["deploy"], "start": [{"workflow": "x", "context": {"GYRE_TASK_ID": "y"}}]})");
  const v1::TaskRun judge_run = *engine_.GetTaskRun(judged + "/tasks/judge");
  EXPECT_EQ(judge_run.state(), v1::TASK_FAILED);
  EXPECT_EQ(judge_run.attempts(0).error(),
            "evaluator output: context key \"GYRE_TASK_ID\" is reserved: Gyre sets GYRE_* "
            "variables itself");
}

TEST_F(WorkflowEngineTest, PauseHoldsNewLeasesAndResumeReleasesThem) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_TRUE(engine_.PauseExecution(exec).ok());
  Report("a1", a[0]);  // running tasks finish while paused
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(agent->pending(), 0u) << "no lease while paused";
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_PAUSED);
  ASSERT_TRUE(engine_.ResumeExecution(exec).ok());
  auto b = agent->Take(1);
  ASSERT_EQ(b.size(), 1u);
  Report("a1", b[0]);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, CancelStopsRunningTasksAndSkipsTheRest) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  ASSERT_EQ(agent->Take(1).size(), 1u);
  ASSERT_TRUE(engine_.CancelExecution(exec, "operator request").ok());
  ASSERT_EQ(agent->cancels().size(), 1u);
  EXPECT_EQ(agent->cancels()[0].ref().task_id(), "a");
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_CANCELLED);
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_CANCELLED);
  EXPECT_EQ(engine_.CancelExecution(exec, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(WorkflowEngineTest, WatchReplaysFromASequenceNumberAndEndsWhenFinal) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0]);
  auto all = *engine_.Watch(exec, 0);
  const EventChunk events = all->Next(absl::Seconds(1));
  ASSERT_GE(events.events.size(), 4u);
  for (size_t i = 0; i < events.events.size(); ++i) {
    EXPECT_EQ(events.events[i]->sequence(), int64_t(i + 1));
  }
  EXPECT_TRUE(all->closed());
  auto tail = *engine_.Watch(exec, 3);
  const EventChunk from_third = tail->Next(absl::Seconds(1));
  ASSERT_FALSE(from_third.events.empty());
  EXPECT_EQ(from_third.events.front()->sequence(), 3);
}

TEST_F(WorkflowEngineTest, ALongHistoryIsReplayedABatchAtATime) {
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 5000; ++i) tasks.push_back(Task(absl::StrCat("t", i)));
  const std::string exec = Start(Workflow(std::move(tasks)));  // one READY event each
  auto watch = *engine_.Watch(exec, 2);
  // Built as they are asked for, never the whole history at once.
  const EventChunk first = watch->Next(absl::Seconds(1));
  ASSERT_EQ(first.events.size(), 4096u);
  const EventChunk second = watch->Next(absl::Seconds(1));
  ASSERT_FALSE(second.events.empty());
  int64_t expected = 2;
  for (const EventChunk* chunk : {&first, &second}) {
    for (const v1::Event* event : chunk->events) ASSERT_EQ(event->sequence(), expected++);
  }
  EXPECT_GE(expected, 5001);
  // Live events follow the backlog, in order.
  auto agent = Connect("a1", 1);
  auto leased = agent->Take(1);
  ASSERT_EQ(leased.size(), 1u);
  bool found_lease = false;
  for (EventChunk live; !(live = watch->Next(absl::Seconds(1))).events.empty();) {
    for (const v1::Event* event : live.events) {
      ASSERT_EQ(event->sequence(), expected++);
      found_lease |= event->task_run().state() == v1::TASK_LEASED;
    }
    if (found_lease) break;
  }
  EXPECT_TRUE(found_lease);
  engine_.Unwatch(watch);
}

TEST_F(WorkflowEngineTest, LiveEventsBuiltLaterShowEachChangeAsItWas) {
  auto agent = Connect("a1");
  v1::TaskSpec flaky = Task("a");
  flaky.mutable_retry()->set_max_retries(1);
  flaky.mutable_retry()->mutable_initial_backoff()->set_nanos(1'000'000);
  const std::string exec = Start(Workflow({flaky}));
  auto watch = *engine_.Watch(exec, 0);
  // The whole run happens before the watcher reads anything: its events are
  // built from the history afterwards, on the watcher's thread.
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_FAILED);
  auto second = agent->Take(1);
  ASSERT_EQ(second.size(), 1u);
  Report("a1", second[0], v1::ATTEMPT_SUCCEEDED);

  std::vector<std::pair<v1::TaskState, int>> changes;  // state, attempts shown
  int64_t expected = 1;
  bool last = false;
  while (!last) {
    const EventChunk chunk = watch->Next(absl::Seconds(5), &last);
    ASSERT_TRUE(last || !chunk.events.empty()) << "timed out";
    for (const v1::Event* event : chunk.events) {
      EXPECT_EQ(event->sequence(), expected++);
      EXPECT_EQ(event->execution(), exec);
      if (!event->has_task_run()) continue;
      EXPECT_EQ(event->task_run().name(), exec + "/tasks/a");
      changes.emplace_back(event->task_run().state(), event->task_run().attempts_size());
      if (event->task_run().attempts_size() > 0) {
        EXPECT_EQ(event->task_run().attempts(0).outcome(), v1::ATTEMPT_SUCCEEDED);
        EXPECT_EQ(event->task_run().attempts(0).attempt(), 2);
      }
    }
  }
  // Not the task's final state six times over: each change as it happened.
  EXPECT_EQ(changes, (std::vector<std::pair<v1::TaskState, int>>{{v1::TASK_READY, 0},
                                                                 {v1::TASK_LEASED, 0},
                                                                 {v1::TASK_PENDING, 0},  // backoff
                                                                 {v1::TASK_READY, 0},
                                                                 {v1::TASK_LEASED, 0},
                                                                 {v1::TASK_SUCCEEDED, 1}}));
}

TEST_F(WorkflowEngineTest, ListsArePagedWithTokens) {
  std::vector<std::string> started;
  for (int i = 0; i < 5; ++i) started.push_back(Start(Workflow({Task("a"), Task("b"), Task("c")})));
  // Executions, newest first, two at a time.
  v1::ListExecutionsRequest list;
  list.set_page_size(2);
  std::vector<std::string> seen;
  do {
    absl::StatusOr<v1::ListExecutionsResponse> page = engine_.ListExecutions(list);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->executions_size(), 2);
    for (const v1::Execution& execution : page->executions()) seen.push_back(execution.name());
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty() && seen.size() < 10);
  EXPECT_EQ(seen,
            (std::vector<std::string>{started[4], started[3], started[2], started[1], started[0]}));
  // Task runs, in workflow order.
  v1::ListTaskRunsRequest runs;
  runs.set_parent(started[0]);
  runs.set_page_size(2);
  absl::StatusOr<v1::ListTaskRunsResponse> first = engine_.ListTaskRuns(runs);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->task_runs_size(), 2);
  EXPECT_EQ(first->task_runs(1).task_id(), "b");
  runs.set_page_token(first->next_page_token());
  absl::StatusOr<v1::ListTaskRunsResponse> second = engine_.ListTaskRuns(runs);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->task_runs_size(), 1);
  EXPECT_EQ(second->task_runs(0).task_id(), "c");
  EXPECT_EQ(second->next_page_token(), "");
  // What the engine never handed out is refused, as is a size out of range.
  runs.set_page_token("p99");
  EXPECT_EQ(engine_.ListTaskRuns(runs).status().message(),
            "invalid page_token (pass the next_page_token of a page)");
  list.set_page_token("");
  list.set_page_size(1001);
  EXPECT_EQ(engine_.ListExecutions(list).status().message(),
            "page_size 1001 is out of range [1, 1000] (0: 100)");
}

TEST_F(WorkflowEngineTest, AFilteredListLooksAtABoundedNumberOfExecutionsPerPage) {
  v1::WorkflowDefinition rare = Workflow({Task("a")});
  rare.set_name("workflows/rare");
  const std::string oldest = Start(rare);
  const std::string cancelled = Start(Workflow({Task("a")}));
  ASSERT_TRUE(engine_.CancelExecution(cancelled, "").ok());
  logging::SetLevel(logging::Level::kWarn);  // not 10,050 "execution started" lines
  for (int i = 0; i < 10'050; ++i) Start(Workflow({Task("a")}));
  logging::SetLevel(logging::Level::kInfo);
  // The workflow's index yields the rare one at once, however old.
  v1::ListExecutionsRequest list;
  list.set_workflow("workflows/rare");
  absl::StatusOr<v1::ListExecutionsResponse> rare_page = engine_.ListExecutions(list);
  ASSERT_TRUE(rare_page.ok()) << rare_page.status();
  ASSERT_EQ(rare_page->executions_size(), 1);
  EXPECT_EQ(rare_page->executions(0).name(), oldest);
  EXPECT_EQ(rare_page->next_page_token(), "");
  // A second filter is checked on what the first one's index yields: at
  // most 10,000 per call, then a short page with a token.
  list.set_workflow("workflows/test");
  list.add_states(v1::EXECUTION_CANCELLED);
  absl::StatusOr<v1::ListExecutionsResponse> first = engine_.ListExecutions(list);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->executions_size(), 0) << "10,000 looked at, none of them cancelled";
  ASSERT_NE(first->next_page_token(), "");
  list.set_page_token(first->next_page_token());
  absl::StatusOr<v1::ListExecutionsResponse> second = engine_.ListExecutions(list);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->executions_size(), 1);
  EXPECT_EQ(second->executions(0).name(), cancelled);
  EXPECT_EQ(second->next_page_token(), "");
}

TEST_F(WorkflowEngineTest, RequestIdMakesStartIdempotent) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  request.set_request_id("once");
  const std::string first = engine_.StartExecution(request)->name();
  EXPECT_EQ(engine_.StartExecution(request)->name(), first);
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 1);
}

TEST_F(WorkflowEngineTest, GlobalTaskRunsOnceForTwoGraphs) {
  auto agent = Connect("a1");
  v1::TaskSpec shared = Writes(Task("load-reference-data"), {"TABLE"});
  shared.set_global(true);
  const std::string first =
      Start(Declaring(Workflow({shared, Task("report-a", {"load-reference-data"})}), {"DAY"}),
            {{"DAY", "monday"}});
  const std::string second =
      Start(Declaring(Workflow({shared, Task("report-b", {"load-reference-data"})}), {"DAY"}),
            {{"DAY", "monday"}});
  auto runs = agent->Take(1);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].ref().execution(), first);
  EXPECT_EQ(agent->pending(), 0u) << "the second graph must wait, not run it again";
  EXPECT_EQ(StateOf(second, "load-reference-data"), v1::TASK_PENDING);
  Report("a1", runs[0], v1::ATTEMPT_SUCCEEDED, R"({"TABLE": "ref_v7"})");
  auto reports = agent->Take(2);
  ASSERT_EQ(reports.size(), 2u);
  for (const auto& report : reports) {
    EXPECT_EQ(report.env().at("TABLE"), "ref_v7");
    Report("a1", report);
  }
  const v1::TaskRun reused = *engine_.GetTaskRun(second + "/tasks/load-reference-data");
  EXPECT_EQ(reused.state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(reused.satisfied_by(), first + "/tasks/load-reference-data");
  EXPECT_EQ(reused.attempts_size(), 0);
  EXPECT_EQ(engine_.GetExecution(first)->state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(engine_.GetExecution(second)->state(), v1::EXECUTION_SUCCEEDED);

  // A third graph later is satisfied at once; a different context runs anew.
  const std::string third = Start(Declaring(Workflow({shared}), {"DAY"}), {{"DAY", "monday"}});
  EXPECT_EQ(engine_.GetExecution(third)->state(), v1::EXECUTION_SUCCEEDED);
  Start(Declaring(Workflow({shared}), {"DAY"}), {{"DAY", "tuesday"}});
  EXPECT_EQ(agent->Take(1).size(), 1u);
}

TEST_F(WorkflowEngineTest, PauseThenResumeOfAPendingExecutionLeavesItPendingAndItRuns) {
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  ASSERT_EQ(engine_.PauseExecution(exec)->state(), v1::EXECUTION_PAUSED);
  const v1::Execution resumed = *engine_.ResumeExecution(exec);
  EXPECT_EQ(resumed.state(), v1::EXECUTION_PENDING) << "no task ever ran";
  EXPECT_FALSE(resumed.has_start_time());
  auto agent = Connect("a1");
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u) << "the resumed execution's task dispatches";
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_RUNNING);
  Report("a1", a[0]);
  auto b = agent->Take(1);
  ASSERT_EQ(b.size(), 1u);
  // Paused and resumed once running, it is RUNNING again.
  ASSERT_EQ(engine_.PauseExecution(exec)->state(), v1::EXECUTION_PAUSED);
  EXPECT_EQ(engine_.ResumeExecution(exec)->state(), v1::EXECUTION_RUNNING);
  Report("a1", b[0]);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, OnlyDeclaredContextEntersFromStartsOutputsAndDecisions) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Declaring(Workflow({Task("a")}), {"REGION"});
  (*request.mutable_context())["HOME"] = "/tmp/evil";
  EXPECT_EQ(engine_.StartExecution(request).status().message(),
            "context key HOME is not declared by workflow test; declare it under `context:` (or "
            "as a task's `outputs:`)");

  auto agent = Connect("a1");
  v1::TaskSpec judge = Writes(Task("judge"), {"VERDICT"});
  judge.set_evaluator(true);
  const std::string exec = Start(
      Workflow({Writes(Task("a"), {"ROWS"}), Task("b", {"a"}), judge, Task("deploy", {"judge"})}));
  auto first = agent->Take(2);
  ASSERT_EQ(first.size(), 2u);
  for (const auto& task : first) {
    if (task.ref().task_id() == "a") {
      Report("a1", task, v1::ATTEMPT_SUCCEEDED, R"({"ROWS": "1", "PAGER": "sh -c evil"})");
    } else {
      Report("a1", task, v1::ATTEMPT_SUCCEEDED, R"({"context": {"EDITOR": "evil"}})");
    }
  }
  const v1::TaskRun a = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(a.state(), v1::TASK_FAILED);
  EXPECT_EQ(a.attempts(0).error(),
            "$GYRE_OUTPUT: key \"PAGER\" is not among the outputs task \"a\" declares (outputs: "
            "[ROWS]); list it under the task's `outputs:` to pass it on");
  const v1::TaskRun decided = *engine_.GetTaskRun(exec + "/tasks/judge");
  EXPECT_EQ(decided.state(), v1::TASK_FAILED);
  EXPECT_EQ(decided.attempts(0).error(),
            "evaluator output: key \"EDITOR\" is not among the outputs task \"judge\" declares "
            "(outputs: [VERDICT]); list it under the task's `outputs:` to pass it on");
  EXPECT_EQ(agent->pending(), 0u) << "nothing downstream ran";
}

TEST_F(WorkflowEngineTest, GlobalTaskFailureHandsTheWorkToAWaiter) {
  auto agent = Connect("a1");
  v1::TaskSpec shared = Task("g");
  shared.set_global(true);
  const std::string first = Start(Workflow({shared}));
  const std::string second = Start(Workflow({shared}));
  auto run = agent->Take(1);
  ASSERT_EQ(run.size(), 1u);
  Report("a1", run[0], v1::ATTEMPT_FAILED);
  EXPECT_EQ(engine_.GetExecution(first)->state(), v1::EXECUTION_FAILED);
  auto rerun = agent->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().execution(), second);
}

// A builtin task sends no TaskStarted; its attempt still says when it began,
// so `gyre status` shows a start and a duration for it like for a process.
TEST_F(WorkflowEngineTest, ABuiltinAttemptRecordsAStartTimeLikeASubprocessOne) {
  auto agent = Connect("a1");
  v1::TaskSpec noop = Task("noop");
  noop.clear_command();
  noop.mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  const std::string exec = Start(Workflow({noop}));
  auto tasks = agent->Take(1);
  ASSERT_EQ(tasks.size(), 1u);
  Report("a1", tasks[0]);
  const absl::StatusOr<v1::TaskRun> run = engine_.GetTaskRun(exec + "/tasks/noop");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->attempts_size(), 1);
  const v1::TaskAttempt& attempt = run->attempts(0);
  ASSERT_TRUE(attempt.has_start_time());
  EXPECT_LE(FromProto(attempt.lease_time()), FromProto(attempt.start_time()));
  EXPECT_LE(FromProto(attempt.start_time()), FromProto(attempt.end_time()));
}

}  // namespace
}  // namespace gyre::orchestrator
