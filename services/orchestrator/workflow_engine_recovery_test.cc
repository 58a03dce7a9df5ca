// Recovery through the engine: a restart replays the store into the same state, and a failed append
// stops the engine.

#include "services/orchestrator/workflow_engine.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <sstream>
#include <thread>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
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

using ::gyre::orchestrator::testing::FailingStore;
using ::gyre::orchestrator::testing::OutageStore;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ResultMessage;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::Writes;

// An engine over one in-memory store that can be "killed" and started
// again: an orchestrator restart with agent "a1" (4 slots) connected at
// first.
class WorkflowEngineRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override { Restart(); }

  // Drops the engine (a crash: nothing is flushed that was not already)
  // and recovers a new one from the store.
  void Restart() {
    engine_.reset();
    store_ = NewMemoryStateStore(data_);
    WorkflowEngine::Options options;
    options.store = store_.get();
    options.lease_timeout = absl::Seconds(30);
    engine_ = std::make_unique<WorkflowEngine>(options);
    ASSERT_TRUE(engine_->Recover().ok());
  }

  std::shared_ptr<RecordingChannel> Register(const std::string& id,
                                             const std::vector<v1::AttemptRef>& running = {}) {
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine_->RegisterAgent(Registration(id, 4, running), channel).ok());
    return channel;
  }

  void Report(const std::string& agent, const v1::AttemptRef& ref, uint64_t sequence,
              const std::string& output = "") {
    ASSERT_TRUE(
        engine_
            ->HandleAgentMessage(agent, ResultMessage(ref, sequence, v1::ATTEMPT_SUCCEEDED, output))
            .ok());
  }

  // a -> b -> c; a succeeds (output K=v) and b is leased to a1 when the
  // orchestrator dies. Returns b's assignment.
  v1::TaskAssignment RunUntilBIsInFlight() {
    auto channel = Register("a1");
    v1::StartExecutionRequest request;
    *request.mutable_definition() =
        Workflow({Writes(Task("a"), {"K"}), Task("b", {"a"}), Task("c", {"b"})});
    exec_ = engine_->StartExecution(request)->name();
    auto a = channel->Take(1);
    EXPECT_EQ(a.size(), 1u);
    if (a.empty()) return {};
    Report("a1", a[0].ref(), 1, R"({"K": "v"})");
    auto b = channel->Take(1);
    EXPECT_EQ(b.size(), 1u);
    return b.empty() ? v1::TaskAssignment() : b[0];
  }

  v1::TaskRun Run(const std::string& task) {
    return *engine_->GetTaskRun(exec_ + "/tasks/" + task);
  }

  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<WorkflowEngine> engine_;
  std::string exec_;
};

// Every event of `exec` from the start, as a watcher reads them (the
// execution must be final).
std::vector<v1::Event> History(WorkflowEngine& engine, const std::string& exec) {
  std::vector<v1::Event> events;
  auto watch = engine.Watch(exec, 0);
  EXPECT_TRUE(watch.ok()) << watch.status();
  if (!watch.ok()) return events;
  bool last = false;
  while (!last) {
    EventChunk chunk = (*watch)->Next(absl::Seconds(5), &last);
    if (chunk.events.empty() && !last) break;
    for (const v1::Event* event : chunk.events) events.push_back(*event);
  }
  return events;
}

void ExpectSameHistory(const std::vector<v1::Event>& live, const std::vector<v1::Event>& replayed) {
  ASSERT_EQ(live.size(), replayed.size());
  for (size_t i = 0; i < live.size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(live[i], replayed[i]))
        << "event " << i + 1 << ":\n"
        << diff << live[i].DebugString() << "replayed:\n"
        << replayed[i].DebugString();
  }
}

TEST_F(WorkflowEngineRecoveryTest, ReplayRebuildsTheHistoryWatchersSaw) {
  // a fails once (retried after a backoff), runs again on a1, which is
  // then declared dead (attempt lost, re-queued), and succeeds on a2; b
  // follows. Every kind of change, each with its RUNNING event.
  auto a1 = Register("a1");
  v1::TaskSpec a = Task("a");
  a.mutable_retry()->set_max_retries(1);
  *a.mutable_retry()->mutable_initial_backoff() = ToProto(absl::Milliseconds(1));
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({a, Task("b", {"a"})});
  exec_ = engine_->StartExecution(request)->name();
  auto started = [&](const std::string& agent, const v1::TaskAssignment& task) {
    v1::AgentMessage message;
    *message.mutable_task_started()->mutable_ref() = task.ref();
    ASSERT_TRUE(engine_->HandleAgentMessage(agent, message).ok());
  };
  auto first = a1->Take(1);
  ASSERT_EQ(first.size(), 1u);
  started("a1", first[0]);
  v1::AgentMessage failed;
  *failed.mutable_task_result()->mutable_ref() = first[0].ref();
  failed.mutable_task_result()->set_outcome(v1::ATTEMPT_FAILED);
  failed.mutable_task_result()->set_error("exit code 3");
  failed.mutable_task_result()->set_sequence(1);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", failed).ok());
  auto second = a1->Take(1);  // after the backoff
  ASSERT_EQ(second.size(), 1u);
  started("a1", second[0]);
  engine_->ExpireLeases(absl::Now() + absl::Minutes(1));  // a1 falls silent
  auto a2 = Register("a2");
  auto third = a2->Take(1);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].ref().attempt(), 3);
  started("a2", third[0]);
  Report("a2", third[0].ref(), 1);
  auto b = a2->Take(1);
  ASSERT_EQ(b.size(), 1u);
  started("a2", b[0]);
  Report("a2", b[0].ref(), 2);
  ASSERT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_SUCCEEDED);
  const std::vector<v1::Event> live = History(*engine_, exec_);
  const v1::TaskRun live_a = Run("a");
  ASSERT_EQ(live_a.attempts_size(), 3);
  EXPECT_EQ(live_a.attempts(1).outcome(), v1::ATTEMPT_LOST);

  Restart();  // from the log
  ExpectSameHistory(live, History(*engine_, exec_));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(live_a, Run("a")))
      << live_a.DebugString() << "after the restart:\n"
      << Run("a").DebugString();
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot
  ExpectSameHistory(live, History(*engine_, exec_));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(live_a, Run("a")));
}

// Issue 22: a process that ended within the agent's start_report_delay
// sends its result only. Watchers still see it RUNNING before its outcome
// (an event made from the result, with no record of its own), and a
// replay makes the same event, so the sequences survive a restart.
TEST_F(WorkflowEngineRecoveryTest, AResultWithoutAStartShowsTheTaskRunningFirstAcrossRestarts) {
  auto a1 = Register("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("quick")});
  exec_ = engine_->StartExecution(request)->name();
  auto quick = a1->Take(1);
  ASSERT_EQ(quick.size(), 1u);
  v1::AgentMessage result = ResultMessage(quick[0].ref(), 1, v1::ATTEMPT_SUCCEEDED);
  result.mutable_task_result()->mutable_wall_time()->set_nanos(3'000'000);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", result).ok());
  ASSERT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_SUCCEEDED);
  const std::vector<v1::Event> live = History(*engine_, exec_);
  std::vector<v1::TaskState> states;
  for (const v1::Event& event : live) {
    if (event.type() == v1::Event::TASK_STATE_CHANGED) states.push_back(event.task_run().state());
  }
  const auto running = std::find(states.begin(), states.end(), v1::TASK_RUNNING);
  ASSERT_NE(running, states.end()) << "no RUNNING event";
  EXPECT_EQ(std::next(running), std::find(states.begin(), states.end(), v1::TASK_SUCCEEDED))
      << "RUNNING right before its outcome";

  Restart();  // from the log
  ExpectSameHistory(live, History(*engine_, exec_));
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot
  ExpectSameHistory(live, History(*engine_, exec_));
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptLostBeforeARestartStaysLostAndIsNotLeasedAgain) {
  RunUntilBIsInFlight();
  engine_->ExpireLeases(absl::Now() + absl::Minutes(1));  // a1 is declared dead
  ASSERT_EQ(Run("b").state(), v1::TASK_READY);
  const v1::TaskRun before = Run("b");
  Restart();
  const v1::TaskRun after = Run("b");
  EXPECT_EQ(after.state(), v1::TASK_READY) << "not leased to the dead a1 again";
  ASSERT_EQ(after.attempts_size(), 1);
  EXPECT_EQ(after.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(after.attempts(0).error(), "agent a1 missed heartbeats");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
      << before.DebugString() << "after the restart:\n"
      << after.DebugString();
}

TEST_F(WorkflowEngineRecoveryTest, DispatchGoesOnAfterReplayingALongLog) {
  // Replay queues every task it makes ready and leases most of them again:
  // the queue holds far more stale entries than one pass looks at.
  auto agent = Register("a1");
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 1500; ++i) tasks.push_back(Task(absl::StrCat("t", i)));
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow(std::move(tasks));
  exec_ = engine_->StartExecution(request)->name();
  uint64_t sequence = 0;
  for (int i = 0; i < 1500; ++i) {
    auto lease = agent->Take(1);
    ASSERT_EQ(lease.size(), 1u);
    Report("a1", lease[0].ref(), ++sequence);
    v1::AgentMessage credit;
    credit.mutable_credit()->set_tasks(1);
    ASSERT_TRUE(engine_->HandleAgentMessage("a1", credit).ok());
  }
  ASSERT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_SUCCEEDED);
  Restart();
  agent = Register("a2");
  v1::StartExecutionRequest next;
  *next.mutable_definition() = Workflow({Task("only")});
  const std::string small = engine_->StartExecution(next)->name();
  auto only = agent->Take(1, absl::Seconds(2));
  ASSERT_EQ(only.size(), 1u) << "dispatch stalled after the restart";
  EXPECT_EQ(only[0].ref().execution(), small);
  EXPECT_EQ(engine_->DispatchStallForTest(), "");
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptThatRanOnThroughARestartIsRecordedOnce) {
  const v1::TaskAssignment b = RunUntilBIsInFlight();
  Restart();
  EXPECT_EQ(Run("a").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Run("a").outputs().fields().at("K").string_value(), "v");
  EXPECT_EQ(Run("b").state(), v1::TASK_LEASED) << "kept for its agent, not run again at once";

  // a1 comes back still holding b (running, or finished with the result
  // unacknowledged) and reports it: its result counts, no second attempt.
  auto channel = Register("a1", {b.ref()});
  EXPECT_EQ(channel->pending(), 0u) << "b is not handed out again";
  EXPECT_TRUE(channel->cancels().empty());
  Report("a1", b.ref(), 1);
  EXPECT_EQ(Run("b").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Run("b").attempts_size(), 1);
  auto c = channel->Take(1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].ref().task_id(), "c");
  EXPECT_EQ(c[0].env().at("K"), "v") << "outputs survive the restart";
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptItsAgentNoLongerHasRunsAgain) {
  const v1::TaskAssignment b = RunUntilBIsInFlight();
  Restart();
  // a1 comes back without b (it was restarted too, say).
  auto channel = Register("a1");
  auto rerun = channel->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().task_id(), "b");
  EXPECT_EQ(rerun[0].ref().attempt(), 2);
  EXPECT_EQ(rerun[0].env().at("K"), "v") << "outputs survive the restart";
  EXPECT_EQ(Run("b").attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(Run("b").attempts(0).error(), "agent a1 came back without it");
  EXPECT_EQ(Run("b").reason(), "") << "re-queued, then leased: the reason went with the wait";
  // The old attempt's late result is fenced off.
  Report("a1", b.ref(), 1);
  EXPECT_EQ(Run("b").state(), v1::TASK_LEASED);
  EXPECT_EQ(Run("b").attempts_size(), 2);
}

TEST_F(WorkflowEngineRecoveryTest, AnAgentThatNeverComesBackLosesItsLeasesAfterTheTimeout) {
  RunUntilBIsInFlight();
  Restart();
  engine_->ExpireLeases(absl::Now() + absl::Seconds(10));
  EXPECT_EQ(Run("b").state(), v1::TASK_LEASED) << "b waits for a1 within the lease timeout";
  engine_->ExpireLeases(absl::Now() + absl::Minutes(1));
  EXPECT_EQ(Run("b").state(), v1::TASK_READY);
  auto other = Register("a2");
  auto rerun = other->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().task_id(), "b");
  EXPECT_EQ(rerun[0].ref().attempt(), 2);
  // a1 turns up after all, still running attempt 1: it is told to stop.
  v1::AttemptRef old_b = rerun[0].ref();
  old_b.set_attempt(1);
  auto late = Register("a1", {old_b});
  ASSERT_EQ(late->cancels().size(), 1u);
  EXPECT_EQ(late->cancels()[0].ref().task_id(), "b");
  EXPECT_EQ(late->cancels()[0].ref().attempt(), 1);
  EXPECT_EQ(late->pending(), 0u);
}

TEST_F(WorkflowEngineRecoveryTest, AResultRefusedForAnUndeclaredOutputIsRefusedAgainOnReplay) {
  auto channel = Register("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Writes(Task("a"), {"ROWS"}), Task("b", {"a"})});
  exec_ = engine_->StartExecution(request)->name();
  auto a = channel->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0].ref(), 1, R"({"ROWS": "1", "HOME": "/tmp/evil"})");
  ASSERT_EQ(Run("a").state(), v1::TASK_FAILED);
  const std::string error = Run("a").attempts(0).error();
  Restart();
  EXPECT_EQ(Run("a").state(), v1::TASK_FAILED) << "the recorded result is judged as it was live";
  EXPECT_EQ(Run("a").attempts(0).error(), error);
  EXPECT_EQ(Run("a").outputs().fields_size(), 0);
  EXPECT_EQ(Run("b").state(), v1::TASK_SKIPPED);
  EXPECT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_FAILED);
}

TEST_F(WorkflowEngineRecoveryTest, AnExecutionPausedBeforeItStartedResumesPendingAfterARestart) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  exec_ = engine_->StartExecution(request)->name();
  ASSERT_EQ(engine_->PauseExecution(exec_)->state(), v1::EXECUTION_PAUSED);
  Restart();
  EXPECT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_PAUSED);
  EXPECT_FALSE(engine_->GetExecution(exec_)->has_start_time());
  EXPECT_EQ(engine_->ResumeExecution(exec_)->state(), v1::EXECUTION_PENDING);
  ASSERT_TRUE(engine_->PauseExecution(exec_).ok());
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();
  EXPECT_EQ(engine_->ResumeExecution(exec_)->state(), v1::EXECUTION_PENDING);
}

TEST_F(WorkflowEngineRecoveryTest, AReusedRequestIdIsToldApartFromARetryAcrossARestart) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  request.set_request_id("r1");
  const std::string first = engine_->StartExecution(request)->name();
  v1::StartExecutionRequest other = request;
  (*other.mutable_definition()->mutable_default_context())["X"] = "1";
  for (int restart = 0; restart < 2; ++restart) {
    EXPECT_EQ(engine_->StartExecution(request)->name(), first) << "a retry, restart " << restart;
    const absl::Status refused = engine_->StartExecution(other).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(refused.message(), absl::StrCat("request_id r1 was used for a different request (",
                                              first, "); use a new request_id for a new request"));
    Restart();
  }
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot too
  EXPECT_EQ(engine_->StartExecution(other).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(engine_->StartExecution(request)->name(), first);
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptLeasedJustBeforeACrashIsNeverLeasedTwice) {
  // No agent yet: "a" is ready, no attempt recorded.
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  exec_ = engine_->StartExecution(request)->name();
  Restart();
  // a1 reports attempt 1 of "a": leased to it just before the crash, the
  // lease record lost with it.
  v1::AttemptRef unrecorded;
  unrecorded.set_execution(exec_);
  unrecorded.set_task_id("a");
  unrecorded.set_attempt(1);
  auto channel = Register("a1", {unrecorded});
  ASSERT_EQ(channel->cancels().size(), 1u) << "the unrecorded attempt is stopped";
  EXPECT_EQ(channel->cancels()[0].ref().attempt(), 1);
  auto lease = channel->Take(1);
  ASSERT_EQ(lease.size(), 1u);
  EXPECT_EQ(lease[0].ref().attempt(), 2) << "attempt 1 exists on the agent: never again";
  // The stopped attempt's result, when it comes, is fenced off.
  Report("a1", unrecorded, 1);
  EXPECT_EQ(Run("a").state(), v1::TASK_LEASED);
  ASSERT_EQ(Run("a").attempts_size(), 2);
  EXPECT_EQ(Run("a").attempts(0).outcome(), v1::ATTEMPT_LOST);
  Report("a1", lease[0].ref(), 2);
  EXPECT_EQ(Run("a").state(), v1::TASK_SUCCEEDED);
}

TEST(WorkflowEngineFailStopTest, AFailedAppendStopsTheEngineAndARestartHasOnlyWhatIsDurable) {
  auto data = NewMemoryStateStoreData();
  std::string durable_execution;
  {
    FailingStore store(data);
    absl::Mutex mutex;
    std::vector<std::string> reported;
    WorkflowEngine::Options options;
    options.store = &store;
    options.snapshot_every_records = 0;
    options.on_store_failure = [&](const absl::Status& status) {
      absl::MutexLock lock(&mutex);
      reported.push_back(std::string(status.message()));
    };
    WorkflowEngine engine(options);
    ASSERT_TRUE(engine.Recover().ok());
    v1::StartExecutionRequest request;
    *request.mutable_definition() = Workflow({Task("a")});
    durable_execution = engine.StartExecution(request)->name();

    store.Fail();
    const absl::StatusOr<v1::Execution> lost = engine.StartExecution(request);
    EXPECT_FALSE(lost.ok());
    EXPECT_TRUE(absl::StrContains(lost.status().message(), "disk full")) << lost.status();
    // Stopped: nothing more is served from memory that is not on disk.
    for (const absl::Status& status :
         {engine.GetExecution(durable_execution).status(), engine.ListExecutions({}).status(),
          engine.StartExecution(request).status(),
          engine.CreateWorkflow(Workflow({Task("x")})).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
      EXPECT_TRUE(absl::StrContains(status.message(), "disk full")) << status;
    }
    EXPECT_EQ(engine.RegisterAgent(Registration("a1", 1), std::make_shared<RecordingChannel>())
                  .status()
                  .code(),
              absl::StatusCode::kUnavailable);
    // Told once, off the engine lock (on the timer thread).
    absl::MutexLock lock(&mutex);
    mutex.AwaitWithTimeout(absl::Condition(
                               +[](std::vector<std::string>* r) { return !r->empty(); }, &reported),
                           absl::Seconds(10));
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_EQ(reported.size(), 1u);
  }
  // The restart: what was durable, and nothing else.
  auto store = NewMemoryStateStore(data);
  WorkflowEngine::Options options;
  options.store = store.get();
  options.snapshot_every_records = 0;
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  const absl::StatusOr<v1::ListExecutionsResponse> listed = engine.ListExecutions({});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->executions_size(), 1);
  EXPECT_EQ(listed->executions(0).name(), durable_execution);
}

TEST(WorkflowEngineStoreOutageTest, AWriteAnswersUnavailableReadsAnswerAndTheChangeIsKept) {
  OutageStore store;
  WorkflowEngine::Options options;
  options.store = &store;
  options.snapshot_every_records = 0;
  options.store_outage_wait = absl::Milliseconds(300);
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  const absl::StatusOr<v1::Execution> before = engine.StartExecution(request);
  ASSERT_TRUE(before.ok()) << before.status();

  store.GoDown();
  request.set_request_id("during-the-outage");
  const absl::StatusOr<v1::Execution> during = engine.StartExecution(request);
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  EXPECT_TRUE(absl::StrContains(during.status().message(),
                                "state store unavailable: reconnecting to host=test"))
      << during.status();
  EXPECT_TRUE(absl::StrContains(during.status().message(), "not acknowledged")) << during.status();
  // Reads answer from memory meanwhile.
  EXPECT_TRUE(engine.GetExecution(before->name()).ok());
  EXPECT_TRUE(engine.ListExecutions({}).ok());
  engine.ListQueues();
  engine.ListAgents();

  store.ComeBack();
  // The start answered UNAVAILABLE was kept: its retry finds it, not a second one.
  const absl::StatusOr<v1::Execution> retried = engine.StartExecution(request);
  ASSERT_TRUE(retried.ok()) << retried.status();
  const absl::StatusOr<v1::ListExecutionsResponse> all = engine.ListExecutions({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->executions_size(), 2);
}

TEST(WorkflowEngineStoreOutageTest, AStoreThatIsSlowButAvailableIsWaitedFor) {
  OutageStore store;
  WorkflowEngine::Options options;
  options.store = &store;
  options.snapshot_every_records = 0;
  options.store_outage_wait = absl::Milliseconds(100);
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  store.GoDown(/*say_unavailable=*/false);
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  absl::Notification answered;
  absl::Status status;
  std::thread writer([&] {
    status = engine.StartExecution(request).status();
    answered.Notify();
  });
  // Many times store_outage_wait: still waiting, no false UNAVAILABLE.
  EXPECT_FALSE(answered.WaitForNotificationWithTimeout(absl::Seconds(1)));
  store.ComeBack();
  writer.join();
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(WorkflowEngineRecoveryTest, ANewPriorityOrdersDispatchAndSurvivesARestart) {
  // Two waiting tasks and no agent yet; the second is raised above the first.
  exec_ = engine_->StartExecution(StartRequest(Workflow({Task("low"), Task("high")})))->name();
  v1::UpdatePriorityRequest raise;
  raise.set_name(exec_ + "/tasks/high");
  raise.set_priority(90);
  ASSERT_TRUE(engine_->UpdatePriority(raise).ok());
  EXPECT_EQ(Run("high").priority(), 90);

  Restart();  // the change is recorded: replay keeps it
  EXPECT_EQ(Run("high").priority(), 90);
  EXPECT_EQ(Run("low").priority(), 50);
  auto channel = Register("a1");
  // Both go in one assignment, the raised task first.
  auto first = channel->Take(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].ref().task_id(), "high");
  EXPECT_EQ(first[1].ref().task_id(), "low");

  // A leased task keeps its place; an unknown one is not found; the range
  // is checked.
  raise.set_priority(10);
  EXPECT_EQ(engine_->UpdatePriority(raise).status().code(), absl::StatusCode::kFailedPrecondition);
  raise.set_name(exec_ + "/tasks/nope");
  EXPECT_EQ(engine_->UpdatePriority(raise).status().code(), absl::StatusCode::kNotFound);
  raise.set_name(exec_);
  raise.set_priority(101);
  EXPECT_EQ(engine_->UpdatePriority(raise).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkflowEngineRecoveryTest, AnExecutionsPriorityAppliesToItsWaitingTasks) {
  exec_ = engine_->StartExecution(StartRequest(Workflow({Task("a"), Task("b", {"a"})})))->name();
  v1::UpdatePriorityRequest change;
  change.set_name(exec_);
  change.set_priority(7);
  absl::StatusOr<v1::Execution> execution = engine_->UpdatePriority(change);
  ASSERT_TRUE(execution.ok()) << execution.status();
  EXPECT_EQ(execution->priority(), 7);
  EXPECT_EQ(Run("a").priority(), 7);
  EXPECT_EQ(Run("b").priority(), 7);
  Restart();
  EXPECT_EQ(engine_->GetExecution(exec_)->priority(), 7);
  EXPECT_EQ(Run("b").priority(), 7);
}

TEST_F(WorkflowEngineRecoveryTest, ADeletedWorkflowStaysDeletedAndIsRefusedWhileItRuns) {
  ASSERT_TRUE(engine_->CreateWorkflow(Workflow("doomed", {Task("a")})).ok());
  v1::StartExecutionRequest request;
  request.set_workflow("workflows/doomed");
  exec_ = engine_->StartExecution(request)->name();  // no agent: it waits
  const absl::Status running = engine_->DeleteWorkflow("workflows/doomed");
  EXPECT_EQ(running.code(), absl::StatusCode::kFailedPrecondition) << running;
  EXPECT_TRUE(absl::StrContains(running.message(), exec_)) << running;
  ASSERT_TRUE(engine_->CancelExecution(exec_, "test").ok());
  ASSERT_TRUE(engine_->DeleteWorkflow("doomed").ok());
  EXPECT_EQ(engine_->GetWorkflow("workflows/doomed").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->DeleteWorkflow("doomed").code(), absl::StatusCode::kNotFound);

  Restart();  // from the log
  EXPECT_EQ(engine_->GetWorkflow("workflows/doomed").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(engine_->GetExecution(exec_).ok()) << "its executions are kept";
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot
  EXPECT_EQ(engine_->GetWorkflow("workflows/doomed").status().code(), absl::StatusCode::kNotFound);
  // The name is free again.
  EXPECT_EQ(engine_->CreateWorkflow(Workflow("doomed", {Task("a")}))->version(), 1);
}

TEST_F(WorkflowEngineRecoveryTest, TenantsFilterListsAndSurviveARestart) {
  v1::WorkflowDefinition blue = Workflow("blue-wf", {Task("a")});
  blue.set_tenant("blue");
  ASSERT_TRUE(engine_->CreateWorkflow(blue).ok());
  ASSERT_TRUE(engine_->CreateWorkflow(Workflow("shared-wf", {Task("a")})).ok());
  v1::StartExecutionRequest request;
  request.set_workflow("workflows/blue-wf");
  exec_ = engine_->StartExecution(request)->name();
  for (int restart = 0; restart < 2; ++restart) {
    SCOPED_TRACE(restart);
    EXPECT_EQ(engine_->GetExecution(exec_)->tenant(), "blue");
    v1::ListWorkflowsRequest workflows;
    workflows.set_tenant("blue");
    ASSERT_EQ(engine_->ListWorkflows(workflows)->workflows_size(), 1);
    EXPECT_EQ(engine_->ListWorkflows(workflows)->workflows(0).name(), "workflows/blue-wf");
    workflows.set_tenant("default");  // an empty tenant is "default"
    ASSERT_EQ(engine_->ListWorkflows(workflows)->workflows_size(), 1);
    EXPECT_EQ(engine_->ListWorkflows(workflows)->workflows(0).name(), "workflows/shared-wf");
    v1::ListExecutionsRequest executions;
    executions.set_tenant("green");
    EXPECT_EQ(engine_->ListExecutions(executions)->executions_size(), 0);
    executions.set_tenant("blue");
    EXPECT_EQ(engine_->ListExecutions(executions)->executions_size(), 1);
    Restart();
  }
}

// A secret context value (StartExecutionRequest.secret_context) reaches the
// task's environment and nothing the API shows, live, after a replay of the
// log and after a snapshot; a key given both ways is refused.
TEST_F(WorkflowEngineRecoveryTest, ASecretReachesTheTaskOnlyAndStaysMaskedAcrossRestarts) {
  constexpr char kValue[] = "hunter2-engine-test";
  auto a1 = Register("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() =
      ::gyre::orchestrator::testing::Declaring(Workflow({Task("a")}), {"TOKEN", "PLAIN"});
  (*request.mutable_context())["PLAIN"] = "shown";
  (*request.mutable_secret_context())["TOKEN"] = kValue;
  v1::StartExecutionRequest both = request;
  (*both.mutable_context())["TOKEN"] = "x";
  absl::StatusOr<v1::Execution> refused = engine_->StartExecution(both);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "both context and secret_context"));
  EXPECT_FALSE(absl::StrContains(refused.status().message(), kValue));

  absl::StatusOr<v1::Execution> started = engine_->StartExecution(request);
  ASSERT_TRUE(started.ok()) << started.status();
  exec_ = started->name();
  EXPECT_EQ(started->context().at("TOKEN"), "<secret>");
  EXPECT_EQ(started->context().at("PLAIN"), "shown");
  ASSERT_EQ(started->secret_context_keys_size(), 1);
  EXPECT_EQ(started->secret_context_keys(0), "TOKEN");
  auto assigned = a1->Take(1);
  ASSERT_EQ(assigned.size(), 1u);
  EXPECT_EQ(assigned[0].env().at("TOKEN"), kValue);  // the task gets it
  auto expect_masked = [&](const std::string& when) {
    absl::StatusOr<v1::Execution> execution = engine_->GetExecution(exec_);
    ASSERT_TRUE(execution.ok()) << when;
    EXPECT_EQ(execution->context().at("TOKEN"), "<secret>") << when;
    // Every event so far (the execution still runs: no wait for its end).
    auto watch = engine_->Watch(exec_, 0);
    ASSERT_TRUE(watch.ok()) << watch.status();
    int events = 0;
    for (bool last = false; !last;) {
      EventChunk chunk = (*watch)->Next(absl::Milliseconds(50), &last);
      if (chunk.events.empty()) break;
      for (const v1::Event* event : chunk.events) {
        ++events;
        EXPECT_FALSE(absl::StrContains(event->DebugString(), kValue)) << when;
      }
    }
    EXPECT_GT(events, 0) << when;
  };
  expect_masked("live");
  Restart();  // from the log
  expect_masked("after a replay");
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot
  expect_masked("after a snapshot");
  // a1 comes back without the attempt: it runs again, with the value.
  auto again = Register("a1");
  auto rerun = again->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].env().at("TOKEN"), kValue);  // and still after both
}

// A store whose append completions (what tells the engine a record is
// durable) wait, once Hold() is called, until Release(): a group commit
// that has not reached the disk yet.
class DeferredDurabilityStore : public StateStore {
 public:
  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override {
    return inner_->Load(restore, apply);
  }
  void Append(absl::Span<const v1::StateRecord> records, Completion done) override {
    inner_->Append(records, [this, done = std::move(done)](absl::Status status) {
      {
        absl::MutexLock lock(&mutex_);
        if (holding_) {
          held_.push_back([done, status] { done(status); });
          return;
        }
      }
      done(status);
    });
  }
  uint64_t last_position() override { return inner_->last_position(); }
  absl::Status AwaitDurable(uint64_t position) override { return inner_->AwaitDurable(position); }
  absl::Status WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) override {
    return inner_->WriteSnapshot(position, snapshot);
  }

  void Hold() {
    absl::MutexLock lock(&mutex_);
    holding_ = true;
  }
  void Release() {
    std::vector<std::function<void()>> held;
    {
      absl::MutexLock lock(&mutex_);
      holding_ = false;
      held.swap(held_);
    }
    for (auto& complete : held) complete();
  }

 private:
  std::unique_ptr<StateStore> inner_ = NewMemoryStateStore(NewMemoryStateStoreData());
  absl::Mutex mutex_;
  bool holding_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::function<void()>> held_ ABSL_GUARDED_BY(mutex_);
};

// An attempt number is the fencing token: it reaches an agent only once its
// lease is durable. Sent before, a crash could hand the same number to
// another agent while the first still ran it (scripts/chaos, seed 35: two
// agents ran attempt 1 of one task).
TEST(DispatchDurabilityTest, AnAssignmentWaitsForItsLeaseToBeDurable) {
  DeferredDurabilityStore store;
  WorkflowEngine::Options options;
  options.store = &store;
  options.lease_timeout = absl::Seconds(30);
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  ASSERT_TRUE(engine.StartExecution(request).ok());

  store.Hold();
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 4), channel).ok());
  // Dispatch ran inside RegisterAgent: had it sent, the assignment would
  // be here now.
  EXPECT_EQ(channel->pending(), 0u) << "an assignment went out before its lease was durable";
  store.Release();
  const std::vector<v1::TaskAssignment> assigned = channel->Take(1);
  ASSERT_EQ(assigned.size(), 1u);
  EXPECT_EQ(assigned[0].ref().attempt(), 1);
}

}  // namespace
}  // namespace gyre::orchestrator
