#include "services/orchestrator/engine_recovery.h"

#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "gtest/gtest.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/task_output.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_components.h"
#include "services/orchestrator/testing/fake_agent_channel.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::google::protobuf::util::MessageDifferencer;
using ::gyre::orchestrator::testing::EngineComponents;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::Writes;

// Every execution and task run of `a` and `b`, as clients see them, must be
// the same. `ids_counted`: b was restored from a snapshot, which keeps how
// many execution ids were handed out (a replay does not: the counter
// restarts, and ids taken already are skipped).
void ExpectSameState(EngineComponents& a, EngineComponents& b, bool ids_counted) {
  ASSERT_EQ(a.executions.size(), b.executions.size());
  for (uint32_t i = 0; i < a.executions.size(); ++i) {
    const ExecutionEntry& left = a.executions.at(i);
    const ExecutionEntry& right = b.executions.at(i);
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(ExecutionProto(left), ExecutionProto(right)))
        << left.name() << ": " << diff;
    ASSERT_EQ(left.tasks.size(), right.tasks.size());
    for (uint32_t t = 0; t < left.tasks.size(); ++t) {
      diff.clear();
      EXPECT_TRUE(differencer.Compare(TaskRunProto(left, t, true, a.queues),
                                      TaskRunProto(right, t, true, b.queues)))
          << left.name() << " task " << t << ": " << diff;
      EXPECT_EQ(left.tasks[t].details_or_empty().inherited,
                right.tasks[t].details_or_empty().inherited);
    }
    EXPECT_EQ(left.events.size(), right.events.size());
    EXPECT_EQ(left.ready, right.ready);
    EXPECT_EQ(left.running, right.running);
    EXPECT_EQ(left.pending, right.pending);
  }
  if (ids_counted) {
    EXPECT_EQ(a.executions.started(), b.executions.started());
  }
  ASSERT_EQ(a.workflows.all().size(), b.workflows.all().size());
  for (const auto& [name, versions] : a.workflows.all()) {
    ASSERT_TRUE(b.workflows.all().contains(name)) << name;
    EXPECT_EQ(versions.size(), b.workflows.all().at(name).size()) << name;
  }
}

TEST(EngineRecoveryTest, ASnapshotRestoresTheSameState) {
  EngineComponents live;
  v1::WorkflowDefinition stored = Workflow("stored", {Task("x")});
  ASSERT_TRUE(WorkflowRegistry::Prepare(nullptr, stored).ok());
  ASSERT_TRUE(live.workflows.AddVersion(stored, true, live.clock.Now()).ok());

  auto channel = std::make_shared<RecordingChannel>();
  AgentEntry* agent = live.Connect(Registration("a1", 8), channel);
  ASSERT_NE(agent, nullptr);
  v1::TaskSpec flaky = Task("flaky");
  flaky.mutable_retry()->set_max_retries(3);
  *flaky.mutable_retry()->mutable_initial_backoff() = ToProto(absl::Minutes(1));
  ExecutionEntry& exec = live.Start(Workflow({Writes(Task("a"), {"K"}), Task("b", {"a"}), flaky}));
  ExecutionEntry& cancelled = live.Start(Workflow({Task("a")}));
  live.machine.Cancel(cancelled, "no", live.out);

  // a succeeds (b gets its output and is leased, in flight); flaky fails
  // once and waits for its retry.
  for (const v1::TaskAssignment& task : live.Dispatch(*agent, *channel, 8)) {
    live.Advance(absl::Seconds(1));
    if (task.ref().task_id() == "a") {
      ASSERT_TRUE(live.Report("a1", task.ref(), v1::ATTEMPT_SUCCEEDED, R"({"K": "v"})"));
    } else if (task.ref().task_id() == "flaky") {
      ASSERT_TRUE(live.Report("a1", task.ref(), v1::ATTEMPT_FAILED, "", "boom"));
    }
  }
  ASSERT_EQ(live.Dispatch(*agent, *channel, 8).size(), 1u);  // b
  live.machine.UpdateExecutionState(exec, live.out);
  ASSERT_EQ(EngineComponents::StateOf(exec, "b"), v1::TASK_LEASED);
  ASSERT_EQ(EngineComponents::StateOf(exec, "flaky"), v1::TASK_PENDING);
  ASSERT_EQ(live.out.retries.size(), 1u);
  const absl::Time due = live.out.retries[0].due;

  google::protobuf::Arena arena;
  auto* snapshot = google::protobuf::Arena::CreateMessage<v1::EngineSnapshot>(&arena);
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> lent;
  live.recovery.Snapshot(*snapshot, &lent);

  EngineComponents restored;
  restored.clock.Set(live.clock.Now());
  restored.Tick();
  restored.journal.set_replaying(true);
  absl::Status status = restored.recovery.Restore(*snapshot, restored.out);
  restored.journal.set_replaying(false);
  ASSERT_TRUE(status.ok()) << status;
  ExpectSameState(live, restored, /*ids_counted=*/true);
  // The retry keeps its due time (to the nanosecond a snapshot keeps), and
  // its timer is current for the restored task.
  ASSERT_EQ(restored.out.retries.size(), 1u);
  const Outbox::RetryTimer& timer = restored.out.retries[0];
  EXPECT_LT(absl::AbsDuration(timer.due - due), absl::Nanoseconds(1));
  EXPECT_EQ(timer.execution, exec.index);
  ASSERT_EQ(timer.task, EngineComponents::TaskIndex(exec, "flaky"));
  EXPECT_EQ(timer.generation, restored.executions.at(exec.index).tasks[timer.task].generation);

  // b stays with its agent, which has the lease timeout to come back.
  int64_t kept = 0, requeued = 0;
  restored.recovery.SettleInFlight(restored.clock.Now(), restored.out, &kept, &requeued);
  EXPECT_EQ(kept, 1);
  EXPECT_EQ(requeued, 0);
  ASSERT_NE(restored.agents.Find("a1"), nullptr);
  EXPECT_EQ(restored.agents.Find("a1")->leases.size(), 1u);
  EXPECT_EQ(EngineComponents::StateOf(restored.executions.at(exec.index), "b"), v1::TASK_LEASED);
}

TEST(EngineRecoveryTest, ReplayingTheRecordsRebuildsTheSameState) {
  auto data = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store = NewMemoryStateStore(data);
  EngineComponents::Options options;
  options.store = store.get();
  EngineComponents live(options);
  auto channel = std::make_shared<RecordingChannel>();
  AgentEntry* agent = live.Connect(Registration("a1", 8), channel);
  ASSERT_NE(agent, nullptr);
  v1::TaskSpec flaky = Task("flaky");
  flaky.mutable_retry()->set_max_retries(3);
  ExecutionEntry& exec = live.Start(Workflow({Writes(Task("a"), {"K"}), Task("b", {"a"}), flaky}));

  // Results as an agent message brings them: recorded in one append.
  std::vector<v1::TaskResult> results;
  for (const v1::TaskAssignment& task : live.Dispatch(*agent, *channel, 8)) {
    v1::TaskResult& result = results.emplace_back();
    *result.mutable_ref() = task.ref();
    result.set_sequence(results.size());
    if (task.ref().task_id() == "a") {
      result.set_outcome(v1::ATTEMPT_SUCCEEDED);
      result.set_output_json(R"({"K": "v"})");
    } else {
      result.set_outcome(v1::ATTEMPT_FAILED);
      result.set_error("boom");
    }
  }
  ASSERT_EQ(results.size(), 2u);
  live.Advance(absl::Seconds(3));
  std::vector<const v1::TaskResult*> pointers = {&results[0], &results[1]};
  std::vector<ParsedOutput> parsed = {ParseTaskOutput(results[0].output_json()),
                                      ParseTaskOutput(results[1].output_json())};
  live.results.RecordResults(*agent, pointers, absl::MakeSpan(parsed), live.out);
  live.Advance(absl::Seconds(1));
  ASSERT_EQ(live.Dispatch(*agent, *channel, 8).size(), 1u);  // b, in flight
  ASSERT_EQ(EngineComponents::StateOf(exec, "flaky"), v1::TASK_PENDING);
  ASSERT_TRUE(store->AwaitDurable(store->last_position()).ok());

  // A restart: the records applied as the engine's Recover applies them.
  EngineComponents replayed;
  replayed.clock.Set(live.clock.Now());
  replayed.journal.set_replaying(true);
  std::unique_ptr<StateStore> reopened = NewMemoryStateStore(data);
  int records = 0;
  absl::Status loaded = reopened->Load(
      [](v1::EngineSnapshot) { return absl::InternalError("no snapshot was written"); },
      [&](const v1::StateRecord& record) {
        ++records;
        replayed.journal.set_now(absl::FromUnixNanos(record.unix_nanos()));
        return replayed.recovery.ApplyRecord(record, replayed.out);
      });
  replayed.journal.set_replaying(false);
  ASSERT_TRUE(loaded.ok()) << loaded;
  EXPECT_GT(records, 0);
  ExpectSameState(live, replayed, /*ids_counted=*/false);
  // The retry waits again, due when it was.
  ASSERT_EQ(replayed.out.retries.size(), 1u);
  ASSERT_EQ(live.out.retries.size(), 1u);
  EXPECT_EQ(replayed.out.retries[0].due, live.out.retries[0].due);
}

TEST(EngineRecoveryTest, AnEmptySnapshotRestoresNothing) {
  EngineComponents live;
  google::protobuf::Arena arena;
  auto* snapshot = google::protobuf::Arena::CreateMessage<v1::EngineSnapshot>(&arena);
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> lent;
  live.recovery.Snapshot(*snapshot, &lent);
  EngineComponents restored;
  ASSERT_TRUE(restored.recovery.Restore(*snapshot, restored.out).ok());
  EXPECT_EQ(restored.executions.size(), 0u);
  EXPECT_TRUE(restored.workflows.empty());
}

}  // namespace
}  // namespace gyre::orchestrator
