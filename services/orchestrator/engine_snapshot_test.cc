// Snapshots of the engine's state and recovery from snapshot + log tail.
#include <cstring>

#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/testing/fake_state_stores.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::DropChildStarts;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ResultMessage;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

// Every task run of an execution (one page holds them all here).
std::vector<v1::TaskRun> TaskRuns(WorkflowEngine& engine, const std::string& execution) {
  v1::ListTaskRunsRequest request;
  request.set_parent(execution);
  absl::StatusOr<v1::ListTaskRunsResponse> page = engine.ListTaskRuns(request);
  EXPECT_TRUE(page.ok()) << page.status();
  if (!page.ok()) return {};
  EXPECT_EQ(page->next_page_token(), "");
  return {page->task_runs().begin(), page->task_runs().end()};
}

// One orchestrator "process" over shared memory-store data: the test
// restarts it by destroying it and making another.
class Orchestrator {
 public:
  // `clock` (not owned) is where the engine reads the time.
  explicit Orchestrator(std::shared_ptr<MemoryStateStoreData> data,
                        uint64_t snapshot_every_records = 0, bool drop_child_starts = false,
                        Clock* clock = Clock::Real())
      : store_(NewMemoryStateStore(std::move(data))) {
    if (drop_child_starts) dropping_ = std::make_unique<DropChildStarts>(store_.get());
    WorkflowEngine::Options options;
    options.store = dropping_ != nullptr ? dropping_.get() : store_.get();
    options.snapshot_every_records = snapshot_every_records;
    options.clock = clock;
    engine_ = std::make_unique<WorkflowEngine>(options);
    const absl::Status recovered = engine_->Recover();
    EXPECT_TRUE(recovered.ok()) << recovered;
  }

  WorkflowEngine& engine() { return *engine_; }

  std::shared_ptr<RecordingChannel> Connect(const std::string& id, int slots = 8) {
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine_->RegisterAgent(Registration(id, slots), channel).ok());
    return channel;
  }

  std::string Start(v1::WorkflowDefinition def) {
    absl::StatusOr<v1::Execution> execution = engine_->StartExecution(StartRequest(std::move(def)));
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

  void Report(const std::string& agent, const v1::TaskAssignment& task,
              v1::AttemptOutcome outcome = v1::ATTEMPT_SUCCEEDED, std::string output = "") {
    ASSERT_TRUE(engine_
                    ->HandleAgentMessage(agent, ResultMessage(task.ref(), ++next_sequence_, outcome,
                                                              std::move(output)))
                    .ok());
  }

  v1::TaskState StateOf(const std::string& execution, const std::string& task) {
    return engine_->GetTaskRun(execution + "/tasks/" + task)->state();
  }

  // Every stored event of `execution`, as Watch replays them.
  std::vector<v1::Event> Events(const std::string& execution) {
    auto subscription = engine_->Watch(execution, 1);
    EXPECT_TRUE(subscription.ok()) << subscription.status();
    std::vector<v1::Event> events;
    if (!subscription.ok()) return events;
    for (EventChunk chunk;
         !(chunk = (*subscription)->Next(absl::Milliseconds(50))).events.empty();) {
      for (const v1::Event* event : chunk.events) events.push_back(*event);
    }
    engine_->Unwatch(*subscription);
    return events;
  }

 private:
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<DropChildStarts> dropping_;
  std::unique_ptr<WorkflowEngine> engine_;
  uint64_t next_sequence_ = 0;  // results are numbered, as an agent does
};

// What a fresh Load of the store hands over: whether a snapshot, and how
// many records after it.
struct LoadShape {
  bool snapshot = false;
  int records = 0;
};

LoadShape ShapeOf(const std::shared_ptr<MemoryStateStoreData>& data) {
  LoadShape shape;
  auto store = NewMemoryStateStore(data);
  EXPECT_TRUE(store
                  ->Load(
                      [&](v1::EngineSnapshot) {
                        shape.snapshot = true;
                        return absl::OkStatus();
                      },
                      [&](const v1::StateRecord&) {
                        shape.records++;
                        return absl::OkStatus();
                      })
                  .ok());
  return shape;
}

TEST(EngineSnapshotTest, RestartFromSnapshotPlusTailRestoresStateAndHistoryExactly) {
  auto data = NewMemoryStateStoreData();
  FakeClock clock;
  std::string diamond;
  std::string failed;
  std::vector<v1::Event> failed_events;
  std::vector<v1::TaskRun> failed_runs;
  {
    Orchestrator orchestrator(data, 0, false, &clock);
    auto agent = orchestrator.Connect("a1");
    failed = orchestrator.Start(Workflow("fails", {Task("x"), Task("y", {"x"})}));
    orchestrator.Report("a1", agent->Take(1).at(0), v1::ATTEMPT_FAILED);
    diamond = orchestrator.Start(Workflow("diamond", {Task("a", {}, {"K"}), Task("b", {"a"}),
                                                      Task("c", {"a"}), Task("d", {"b", "c"})}));
    orchestrator.Report("a1", agent->Take(1).at(0), v1::ATTEMPT_SUCCEEDED, R"({"K": "v"})");
    ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
    // After the snapshot: replayed from the log tail on restart.
    auto middle = agent->Take(2);
    ASSERT_EQ(middle.size(), 2u);
    orchestrator.Report("a1", middle[0]);
    failed_events = orchestrator.Events(failed);
    failed_runs = TaskRuns(orchestrator.engine(), failed);
  }
  const LoadShape shape = ShapeOf(data);
  EXPECT_TRUE(shape.snapshot);
  EXPECT_EQ(shape.records, 1) << "only b's result follows the snapshot";

  clock.Advance(absl::Minutes(1));  // replayed events would get new times
  Orchestrator orchestrator(data, 0, false, &clock);
  EXPECT_EQ(orchestrator.engine().GetExecution(failed)->state(), v1::EXECUTION_FAILED);
  const std::vector<v1::Event> events = orchestrator.Events(failed);
  ASSERT_EQ(events.size(), failed_events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].SerializeAsString(), failed_events[i].SerializeAsString())
        << "event " << i + 1 << " differs after the restart";
  }
  const std::vector<v1::TaskRun> runs = TaskRuns(orchestrator.engine(), failed);
  ASSERT_EQ(runs.size(), failed_runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].SerializeAsString(), failed_runs[i].SerializeAsString());
  }

  // The diamond goes on: the unfinished middle task, kept for a1 until it
  // comes back, runs again as a1 comes back without it; then d, which
  // still sees a's output.
  const v1::Execution running = *orchestrator.engine().GetExecution(diamond);
  EXPECT_EQ(running.task_counts().succeeded(), 2);
  EXPECT_EQ(running.task_counts().running(), 1);
  EXPECT_EQ(running.task_counts().pending(), 1);
  auto agent = orchestrator.Connect("a1");
  auto rerun = agent->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().attempt(), 2);
  orchestrator.Report("a1", rerun[0]);
  auto last = agent->Take(1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].ref().task_id(), "d");
  EXPECT_EQ(last[0].env().at("K"), "v");
  orchestrator.Report("a1", last[0]);
  EXPECT_EQ(orchestrator.engine().GetExecution(diamond)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST(EngineSnapshotTest, ASnapshotWithNothingNewIsANoOp) {
  auto data = NewMemoryStateStoreData();
  Orchestrator orchestrator(data);
  ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  EXPECT_FALSE(ShapeOf(data).snapshot) << "an empty engine has nothing to snapshot";
  orchestrator.Start(Workflow("one", {Task("a")}));
  ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  EXPECT_TRUE(ShapeOf(data).snapshot);
  EXPECT_EQ(ShapeOf(data).records, 0);
}

TEST(EngineSnapshotTest, ARetryWaitingOutItsBackoffRunsAfterARestart) {
  auto data = NewMemoryStateStoreData();
  std::string exec;
  {
    Orchestrator orchestrator(data);
    auto agent = orchestrator.Connect("a1");
    v1::TaskSpec flaky = Task("flaky");
    flaky.mutable_retry()->set_max_retries(1);
    flaky.mutable_retry()->mutable_initial_backoff()->set_nanos(300'000'000);
    exec = orchestrator.Start(Workflow("retry", {flaky}));
    orchestrator.Report("a1", agent->Take(1).at(0), v1::ATTEMPT_FAILED);
    EXPECT_EQ(orchestrator.StateOf(exec, "flaky"), v1::TASK_PENDING);
    ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  }
  Orchestrator orchestrator(data);
  EXPECT_EQ(orchestrator.StateOf(exec, "flaky"), v1::TASK_PENDING);
  auto agent = orchestrator.Connect("a1");
  auto retry = agent->Take(1);
  ASSERT_EQ(retry.size(), 1u) << "the retry timer was not restored";
  EXPECT_EQ(retry[0].ref().attempt(), 2);
  orchestrator.Report("a1", retry[0]);
  EXPECT_EQ(orchestrator.engine().GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST(EngineSnapshotTest, EveryAttemptKeepsItsLogsAcrossARestart) {
  auto data = NewMemoryStateStoreData();
  std::string exec;
  {
    Orchestrator orchestrator(data);
    auto agent = orchestrator.Connect("a1");
    v1::TaskSpec flaky = Task("flaky");
    flaky.mutable_retry()->set_max_retries(1);
    flaky.mutable_retry()->mutable_initial_backoff()->set_nanos(1'000'000);
    exec = orchestrator.Start(Workflow("logs", {flaky}));
    for (const char* output : {"first try\n", "second try\n"}) {
      auto task = agent->Take(1);
      ASSERT_EQ(task.size(), 1u);
      v1::AgentMessage message;
      v1::TaskResult* result = message.mutable_task_result();
      *result->mutable_ref() = task[0].ref();
      result->set_outcome(task[0].ref().attempt() == 1 ? v1::ATTEMPT_FAILED
                                                       : v1::ATTEMPT_SUCCEEDED);
      result->set_stdout_tail(output);
      result->set_stdout_bytes(static_cast<int64_t>(strlen(output)));
      result->set_stderr_tail("warn\n");
      result->set_stderr_bytes(100);  // more than was kept
      result->set_sequence(task[0].ref().attempt());
      ASSERT_TRUE(orchestrator.engine().HandleAgentMessage("a1", message).ok());
    }
    ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  }
  Orchestrator orchestrator(data);
  const std::string run = exec + "/tasks/flaky";
  absl::StatusOr<v1::GetTaskLogsResponse> first = orchestrator.engine().GetTaskLogs(run, 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->stdout(), "first try\n");
  EXPECT_TRUE(first->truncated());
  absl::StatusOr<v1::GetTaskLogsResponse> latest = orchestrator.engine().GetTaskLogs(run, 0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->attempt(), 2);
  EXPECT_EQ(latest->stdout(), "second try\n");
  EXPECT_EQ(latest->stderr(), "warn\n");
  EXPECT_EQ(orchestrator.engine().GetTaskLogs(run, 3).status().message(),
            "task run \"" + run + "\" has no attempt 3 (attempts: 2)");
}

TEST(EngineSnapshotTest, APausedExecutionStaysPausedUntilResumed) {
  auto data = NewMemoryStateStoreData();
  std::string exec;
  {
    Orchestrator orchestrator(data);
    exec = orchestrator.Start(Workflow("paused", {Task("a"), Task("b")}));
    ASSERT_TRUE(orchestrator.engine().PauseExecution(exec).ok());
    ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  }
  Orchestrator orchestrator(data);
  EXPECT_EQ(orchestrator.engine().GetExecution(exec)->state(), v1::EXECUTION_PAUSED);
  auto agent = orchestrator.Connect("a1");
  EXPECT_TRUE(agent->Take(1, absl::Milliseconds(200)).empty()) << "paused: no new leases";
  ASSERT_TRUE(orchestrator.engine().ResumeExecution(exec).ok());
  auto both = agent->Take(2);
  ASSERT_EQ(both.size(), 2u);
  for (const auto& task : both) orchestrator.Report("a1", task);
  EXPECT_EQ(orchestrator.engine().GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST(EngineSnapshotTest, AGlobalTaskAndItsWaiterSurviveARestart) {
  auto data = NewMemoryStateStoreData();
  std::string first;
  std::string second;
  {
    Orchestrator orchestrator(data);
    auto agent = orchestrator.Connect("a1");
    v1::TaskSpec shared = Task("g", {}, {"TABLE"});
    shared.set_global(true);
    first = orchestrator.Start(Workflow("one", {shared}));
    second = orchestrator.Start(Workflow("two", {shared, Task("after", {"g"})}));
    ASSERT_EQ(agent->Take(1).size(), 1u);  // first's g runs when the orchestrator dies
    ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
  }
  Orchestrator orchestrator(data);
  auto agent = orchestrator.Connect("a1");
  auto rerun = agent->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().execution(), first);
  orchestrator.Report("a1", rerun[0], v1::ATTEMPT_SUCCEEDED, R"({"TABLE": "t1"})");
  auto after = agent->Take(1);
  ASSERT_EQ(after.size(), 1u) << "the waiter was not released by the shared result";
  EXPECT_EQ(after[0].ref().task_id(), "after");
  EXPECT_EQ(after[0].env().at("TABLE"), "t1");
  orchestrator.Report("a1", after[0]);
  EXPECT_EQ(orchestrator.engine().GetExecution(second)->state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(orchestrator.engine().GetTaskRun(second + "/tasks/g")->satisfied_by(),
            first + "/tasks/g");
}

TEST(EngineSnapshotTest, SnapshotsAreWrittenPeriodicallyInTheBackground) {
  auto data = NewMemoryStateStoreData();
  Orchestrator orchestrator(data, /*snapshot_every_records=*/10);
  auto agent = orchestrator.Connect("a1", 4);
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 20; ++i) tasks.push_back(Task("t" + std::to_string(i)));
  const std::string exec = orchestrator.Start(Workflow("many", tasks));
  for (int done = 0; done < 20;) {
    auto batch = agent->Take(1);
    ASSERT_EQ(batch.size(), 1u);
    orchestrator.Report("a1", batch[0]);
    v1::AgentMessage credit;
    credit.mutable_credit()->set_tasks(1);
    ASSERT_TRUE(orchestrator.engine().HandleAgentMessage("a1", credit).ok());
    ++done;
  }
  EXPECT_EQ(orchestrator.engine().GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
  // 41 records (a start, 20 leases, 20 results): expect a snapshot soon,
  // and then fewer than 41 records to replay.
  LoadShape shape;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(10))) {
    shape = ShapeOf(data);
    if (shape.snapshot) break;
  }
  EXPECT_TRUE(shape.snapshot);
  EXPECT_LT(shape.records, 41);
}

TEST(EngineSnapshotTest, AChildStartLostInACrashIsStartedOnRecovery) {
  auto data = NewMemoryStateStoreData();
  std::string parent;
  {
    Orchestrator orchestrator(data, 0, /*drop_child_starts=*/true);
    v1::WorkflowDefinition child = Workflow("child", {Task("child-task")});
    ASSERT_TRUE(orchestrator.engine().CreateWorkflow(child).ok());
    auto agent = orchestrator.Connect("a1");
    v1::TaskSpec judge = Task("judge");
    judge.set_evaluator(true);
    parent = orchestrator.Start(Workflow("parent", {judge}));
    orchestrator.Report("a1", agent->Take(1).at(0), v1::ATTEMPT_SUCCEEDED,
                        R"({"start": [{"workflow": "child"}]})");
    ASSERT_EQ(orchestrator.engine().ListExecutions({})->executions_size(), 2);
  }
  for (int restart = 0; restart < 2; ++restart) {
    Orchestrator orchestrator(data);
    // Exactly one child, however many restarts.
    const v1::ListExecutionsResponse listed = *orchestrator.engine().ListExecutions({});
    const auto& executions = listed.executions();
    ASSERT_EQ(executions.size(), 2) << "restart " << restart;
    const v1::Execution& child = executions[0].name() == parent ? executions[1] : executions[0];
    EXPECT_EQ(child.parent(), parent);
    EXPECT_EQ(child.workflow(), "workflows/child");
    if (restart == 0) {
      ASSERT_TRUE(orchestrator.engine().WriteSnapshot().ok());
    }
  }
}

}  // namespace
}  // namespace gyre::orchestrator
