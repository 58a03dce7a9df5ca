// Restarts: what a client saw is what a restart recovers, event for event, and dispatch goes on
// after it.
#include <google/protobuf/util/message_differencer.h>

#include <set>

#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// Whether `a` and `b` are the same event, field for field (sequence, type,
// time, task state, reason, attempts, the execution's snapshot).
::testing::AssertionResult SameEvent(const v1::Event& a, const v1::Event& b) {
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "event " << a.sequence() << " differs:\n"
                                       << diff << "live:\n"
                                       << a.DebugString() << "replayed:\n"
                                       << b.DebugString();
}

void ExpectSameHistory(const std::vector<v1::Event>& live, const std::vector<v1::Event>& replayed) {
  EXPECT_EQ(live.size(), replayed.size()) << "live and replayed histories differ in length";
  for (size_t i = 0; i < std::min(live.size(), replayed.size()); ++i) {
    EXPECT_EQ(live[i].sequence(), static_cast<int64_t>(i) + 1);
    EXPECT_TRUE(SameEvent(live[i], replayed[i]));
  }
}

// Every task READY in a queue that a connected agent with a free slot
// serves, as the API shows it ("" when none): dispatch never leaves one
// there for longer than a pass.
std::string StalledTasks(v1::OrchestratorService::Stub& stub) {
  grpc::ClientContext queues_call;
  v1::ListQueuesResponse queues;
  if (!stub.ListQueues(&queues_call, v1::ListQueuesRequest(), &queues).ok()) return "";
  std::set<std::string> served;
  for (const v1::QueueInfo& queue : queues.queues()) {
    if (queue.agents() > 0 && queue.free_slots() > 0) served.insert(queue.name());
  }
  grpc::ClientContext list_call;
  v1::ListExecutionsRequest request;
  request.set_page_size(1000);
  v1::ListExecutionsResponse executions;
  if (!stub.ListExecutions(&list_call, request, &executions).ok()) return "";
  std::string stalled;
  for (const v1::Execution& execution : executions.executions()) {
    if (execution.state() != v1::EXECUTION_RUNNING && execution.state() != v1::EXECUTION_PENDING) {
      continue;
    }
    if (execution.task_counts().ready() == 0) continue;
    grpc::ClientContext runs_call;
    v1::ListTaskRunsRequest runs_request;
    runs_request.set_parent(execution.name());
    v1::ListTaskRunsResponse runs;
    if (!stub.ListTaskRuns(&runs_call, runs_request, &runs).ok()) continue;
    for (const v1::TaskRun& run : runs.task_runs()) {
      if (run.state() == v1::TASK_READY && served.contains("queues/" + run.queue())) {
        absl::StrAppend(&stalled, run.name(), " ");
      }
    }
  }
  return stalled;
}

// Fails when some task stays READY, with a connected agent free to take it,
// through every look over `window` (a dispatch pass takes milliseconds).
void ExpectNoStall(v1::OrchestratorService::Stub& stub, absl::Duration window) {
  const absl::Time end = absl::Now() + window;
  std::string stalled = StalledTasks(stub);
  while (!stalled.empty() && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(200));
    stalled = StalledTasks(stub);
  }
  EXPECT_EQ(stalled, "") << "READY with a free connected agent for " << window;
}

// After a restart the client's channel reconnects on its next call, which
// may fail first: waits until the orchestrator answers.
void AwaitServing(v1::OrchestratorService::Stub& stub) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    grpc::ClientContext call;
    call.set_wait_for_ready(true);
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::ListQueuesResponse queues;
    if (stub.ListQueues(&call, v1::ListQueuesRequest(), &queues).ok()) return;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ADD_FAILURE() << "the orchestrator is not serving after its restart";
}

// Agent flags for a stable id (the id is a config key, not a flag).
std::vector<std::string> StableId(const std::string& root, const std::string& id) {
  const std::string path = absl::StrCat(root, "/", id, ".yaml");
  std::ofstream(path) << "id: " << id << "\n";
  return {"--config=" + path};
}

TEST_F(Cluster, HistoryAfterKill9IsTheHistoryClientsSaw) {
  StartAgent("a1", 2, StableId(root_, "history-a1"));
  const std::string marker = root_ + "/failed-once";
  // RUNNING events, a failure, a retry with its backoff and a dependant:
  // every kind of change a task goes through.
  const std::string exec = Start(R"(
name: history
context: {MARKER: ""}
tasks:
  - id: first
    shell: true
    outputs: [V]
    command: 'sleep 0.2; if mkdir "$MARKER" 2>/dev/null; then exit 3; fi; echo "{\"V\": \"v\"}" > "$GYRE_OUTPUT"'
    retries: {count: 2, initial_backoff: 100ms}
  - {id: second, shell: true, depends_on: [first], command: 'sleep 0.2; echo "$V"'}
)",
                                 {{"MARKER", marker}});
  // Followed live, to its end.
  const std::vector<v1::Event> live = WatchAll(exec);
  ASSERT_FALSE(live.empty());
  ASSERT_TRUE(live.back().has_execution_snapshot());
  EXPECT_EQ(live.back().execution_snapshot().state(), v1::EXECUTION_SUCCEEDED);
  int running = 0;
  for (const v1::Event& event : live) {
    running += event.task_run().state() == v1::TASK_RUNNING ? 1 : 0;
  }
  EXPECT_EQ(running, 3) << "three attempts ran";
  const v1::TaskRun first = Task(exec, "first");

  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  ExpectSameHistory(live, WatchAll(exec));
  // Watching from the middle names the same events.
  const std::vector<v1::Event> tail = WatchAll(exec, 4);
  ASSERT_EQ(tail.size() + 3, live.size());
  for (size_t i = 0; i < tail.size(); ++i) EXPECT_TRUE(SameEvent(live[i + 3], tail[i]));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(first, Task(exec, "first")))
      << "before:\n"
      << first.DebugString() << "after:\n"
      << Task(exec, "first").DebugString();

  // Again, from the snapshot written at the stop or from the log alone.
  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  ExpectSameHistory(live, WatchAll(exec));
}

TEST_F(Cluster, LostAttemptStaysLostAfterKill9AndIsNotLeasedToTheDeadAgent) {
  agent_killed_ = true;  // "ghost" takes the task and vanishes
  std::string exec;
  {
    HandDrivenAgentSession ghost(address_, "ghost");
    std::optional<v1::OrchestratorMessage> message = ghost.Next();
    ASSERT_TRUE(message.has_value() && message->has_registered());
    exec = Start(R"(
name: lost
tasks:
  - {id: work, shell: true, command: 'echo "attempt $GYRE_ATTEMPT"'}
)");
    message = ghost.Next();
    ASSERT_TRUE(message.has_value() && message->has_assignment());
    v1::AgentMessage started;
    *started.mutable_task_started()->mutable_ref() = message->assignment().tasks(0).ref();
    ASSERT_TRUE(ghost.Send(started));
    ASSERT_TRUE(AwaitTaskState(exec, "work", v1::TASK_RUNNING));
  }
  // Declared dead after the lease timeout: its attempt is lost, the task
  // waits for another agent.
  ASSERT_TRUE(AwaitTaskState(exec, "work", v1::TASK_READY));
  const v1::TaskRun before = Task(exec, "work");
  ASSERT_EQ(before.attempts_size(), 1);
  EXPECT_EQ(before.attempts(0).outcome(), v1::ATTEMPT_LOST);
  const std::vector<v1::Event> seen = [&] {
    // What a watcher saw so far (the execution is not over: read what is stored).
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::WatchRequest request;
    request.set_execution(exec);
    auto reader = stub_->Watch(&call, request);
    std::vector<v1::Event> events;
    for (v1::Event event; reader->Read(&event);) events.push_back(event);
    reader->Finish();
    return events;
  }();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().task_run().state(), v1::TASK_READY);

  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  const v1::TaskRun after = Task(exec, "work");
  EXPECT_EQ(after.state(), v1::TASK_READY) << "not leased to the dead agent again";
  ASSERT_EQ(after.attempts_size(), 1);
  EXPECT_EQ(after.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(after.attempts(0).error(), before.attempts(0).error());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
      << "before:\n"
      << before.DebugString() << "after:\n"
      << after.DebugString();

  // A real agent finishes it; the history has the loss, as watchers saw it.
  StartAgent("a1", 1);
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun done = Task(exec, "work");
  ASSERT_EQ(done.attempts_size(), 2);
  EXPECT_EQ(done.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(done.attempts(1).outcome(), v1::ATTEMPT_SUCCEEDED);
  const std::vector<v1::Event> history = WatchAll(exec);
  ASSERT_GE(history.size(), seen.size());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(SameEvent(seen[i], history[i]));

  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  ExpectSameHistory(history, WatchAll(exec));
}

TEST_F(Cluster, StaleQueueEntriesNeverStallDispatch) {
  // A cancelled execution leaves its READY tasks' queue entries stale: far
  // more than one dispatch pass looked at, and with the agent idle no pass
  // came after (the stall seen after restarts, whose replay leaves the same).
  StartAgent("a1", 1);
  std::string yaml = "name: wide\ntasks:\n";
  for (int i = 0; i < 2000; ++i)
    absl::StrAppend(&yaml, "  - {id: t", i, ", command: [sleep, '60']}\n");
  const std::string wide = Start(yaml);
  ASSERT_TRUE(AwaitTaskState(wide, "t0", v1::TASK_RUNNING));
  ASSERT_TRUE(Cancel(wide).ok());
  ASSERT_TRUE(AwaitTaskState(wide, "t0", v1::TASK_CANCELLED));
  const std::string next = Start(R"(
name: next
tasks:
  - {id: only, command: [echo, ok]}
)");
  EXPECT_EQ(Wait(next, absl::Seconds(30)), v1::EXECUTION_SUCCEEDED)
      << "the new task waited behind stale entries";
  ExpectNoStall(*stub_, absl::Seconds(5));
}

TEST_F(Cluster, AgentKilledAroundARestartDispatchGoesOn) {
  agent_killed_ = true;
  ChildProcess* doomed = StartAgent("a1", 2, StableId(root_, "stall-a1"));
  StartAgent("a2", 2, StableId(root_, "stall-a2"));
  std::string yaml = "name: busy\ntasks:\n";
  for (int i = 0; i < 40; ++i) {
    absl::StrAppend(&yaml, "  - {id: t", i, ", shell: true, command: 'sleep 0.3'}\n");
  }
  const std::string busy = Start(yaml);
  ASSERT_TRUE(AwaitTaskState(busy, "t0", v1::TASK_SUCCEEDED));
  // The agent and the orchestrator die together, leases in flight.
  doomed->Signal(SIGKILL);
  ASSERT_TRUE(doomed->WaitForExit(absl::Seconds(10)).has_value());
  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  StartAgent("a1-again", 2, StableId(root_, "stall-a1"));
  StartAgent("a3", 2);  // a new id
  const std::string fresh = Start(R"(
name: fresh
tasks:
  - {id: one, command: [echo, one]}
  - {id: two, command: [echo, two], depends_on: [one]}
)");
  ExpectNoStall(*stub_, absl::Seconds(10));
  EXPECT_EQ(Wait(fresh, absl::Seconds(60)), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(busy, absl::Seconds(60)), v1::EXECUTION_SUCCEEDED);
  ExpectNoStall(*stub_, absl::Seconds(5));
  const std::vector<v1::Event> busy_history = WatchAll(busy);
  const std::vector<v1::Event> fresh_history = WatchAll(fresh);

  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  ExpectSameHistory(busy_history, WatchAll(busy));
  ExpectSameHistory(fresh_history, WatchAll(fresh));
  const std::string after = Start(R"(
name: after
tasks:
  - {id: last, command: [echo, last]}
)");
  EXPECT_EQ(Wait(after, absl::Seconds(60)), v1::EXECUTION_SUCCEEDED);
}

}  // namespace
}  // namespace gyre::e2e
