// Several engines sharing the shards (issue 21): new executions land in owned
// shards, calls about another shard's executions get the typed answer, and a
// shard handed from one engine to another while its executions run loses no
// task and records none twice.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/shard_directory.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/shard_ownership.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Credit;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ResultMessage;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

constexpr uint32_t kShards = kDefaultShardCount;

std::vector<uint32_t> ShardRange(uint32_t from, uint32_t to) {
  std::vector<uint32_t> shards;
  for (uint32_t s = from; s < to; ++s) shards.push_back(s);
  return shards;
}

// a -> {b, c} -> d.
v1::WorkflowDefinition Diamond() {
  return Workflow({Task("a"), Task("b", {"a"}), Task("c", {"a"}), Task("d", {"b", "c"})});
}

// An execution id in `shard` (drawn as the engine draws them).
std::string IdInShard(uint32_t shard) {
  for (int i = 0;; ++i) {
    std::string id = absl::StrCat("e-test-", i);
    if (ShardOfExecution(id, kShards) == shard) return id;
  }
}

// One engine over its own in-memory store, owning `owned`.
struct Member {
  explicit Member(std::optional<std::vector<uint32_t>> owned) {
    store = NewMemoryStateStore(data);
    WorkflowEngine::Options options;
    options.store = store.get();
    options.lease_timeout = absl::Seconds(60);
    options.snapshot_every_records = 0;
    options.owned_shards = std::move(owned);
    engine = std::make_unique<WorkflowEngine>(options);
    EXPECT_TRUE(engine->Recover().ok());
  }

  // Every record this engine appended, with its position.
  std::vector<std::pair<uint64_t, v1::StateRecord>> Records() {
    std::vector<std::pair<uint64_t, v1::StateRecord>> records;
    std::unique_ptr<StateStore> view = NewMemoryStateStore(data);
    uint64_t position = 0;
    EXPECT_TRUE(view->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                           [&](const v1::StateRecord& record) {
                             records.emplace_back(++position, record);
                             return absl::OkStatus();
                           })
                    .ok());
    return records;
  }

  std::shared_ptr<MemoryStateStoreData> data = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store;
  std::unique_ptr<WorkflowEngine> engine;
};

TEST(WorkflowEngineShardsTest, StartExecutionLandsOnlyInOwnedShards) {
  Member member(std::vector<uint32_t>{3, 200});
  for (int i = 0; i < 50; ++i) {
    absl::StatusOr<v1::Execution> started = member.engine->StartExecution(StartRequest(Diamond()));
    ASSERT_TRUE(started.ok()) << started.status();
    const uint32_t shard = ShardOfExecution(started->name(), kShards);
    EXPECT_TRUE(shard == 3 || shard == 200) << started->name() << " is in shard " << shard;
  }

  Member none(std::vector<uint32_t>{});
  absl::StatusOr<v1::Execution> refused = none.engine->StartExecution(StartRequest(Diamond()));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("owns none of the 256 shards"), std::string::npos)
      << refused.status();
}

// A directory as ShardCoordinator's is: who owns which shard, as read.
class FixedDirectory : public ShardDirectory {
 public:
  std::optional<OrchestratorMember> OwnerOf(uint32_t shard) const override {
    if (shard < 128) return std::nullopt;
    return OrchestratorMember{"orch-b", "10.0.0.7:7070"};
  }
  std::vector<OrchestratorMember> Members() const override {
    return {{"orch-a", "10.0.0.6:7070"}, {"orch-b", "10.0.0.7:7070"}};
  }
  const std::string& self_id() const override { return self_; }

 private:
  std::string self_ = "orch-a";
};

TEST(WorkflowEngineShardsTest, TheNotOwnedAnswerNamesTheOwnerTheDirectoryKnows) {
  Member member(ShardRange(0, 64));
  const std::string foreign = "executions/" + IdInShard(200);
  const std::string unknown_owner = "executions/" + IdInShard(100);
  absl::Status before = member.engine->GetExecution(foreign).status();
  EXPECT_NE(before.message().find("not known here now"), std::string::npos) << before;
  FixedDirectory directory;
  member.engine->SetShardDirectory(&directory);
  absl::Status named = member.engine->GetExecution(foreign).status();
  EXPECT_EQ(NotOwnedShard(named), 200u) << named;
  EXPECT_NE(named.message().find("orchestrator orch-b at 10.0.0.7:7070"), std::string::npos)
      << named;
  absl::Status unnamed = member.engine->GetExecution(unknown_owner).status();
  EXPECT_EQ(NotOwnedShard(unnamed), 100u) << unnamed;
  EXPECT_NE(unnamed.message().find("not known here now"), std::string::npos) << unnamed;
  member.engine->SetShardDirectory(nullptr);
}

TEST(WorkflowEngineShardsTest, DefinitionsAnotherOrchestratorStoredAreApplied) {
  Member member(ShardRange(0, 128));
  v1::StateRecord stored;
  v1::WorkflowDefinition def = Workflow("elsewhere", {Task("a")});
  def.set_version(1);
  *stored.mutable_workflow_stored()->mutable_definition() = def;
  ASSERT_TRUE(member.engine->ApplyDefinitions({stored}).ok());
  absl::StatusOr<v1::WorkflowDefinition> got = member.engine->GetWorkflow("workflows/elsewhere");
  ASSERT_TRUE(got.ok()) << got.status();
  v1::StateRecord deleted;
  deleted.mutable_workflow_deleted()->set_name("workflows/elsewhere");
  ASSERT_TRUE(member.engine->ApplyDefinitions({deleted}).ok());
  EXPECT_EQ(member.engine->GetWorkflow("workflows/elsewhere").status().code(),
            absl::StatusCode::kNotFound);
  // Only definitions: anything else is refused whole.
  v1::StateRecord leased;
  leased.mutable_task_leased()->set_execution_id(IdInShard(5));
  EXPECT_EQ(member.engine->ApplyDefinitions({stored, leased}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(member.engine->GetWorkflow("workflows/elsewhere").status().code(),
            absl::StatusCode::kNotFound);
}

// A global task's run belongs to one execution; another execution with the
// same identity waits for it. When the owner's shard moves away, the
// waiter that stays is not left waiting for a run this engine will never
// hear of: it runs the task itself.
TEST(WorkflowEngineShardsTest, AWaiterRunsAGlobalTaskWhoseOwnerMovedAway) {
  Member member(std::nullopt);
  v1::TaskSpec shared = Task("a");
  shared.set_global(true);
  std::vector<std::string> names;
  // Two executions in different shards (ids are random: drawn until so).
  while (names.size() < 2) {
    absl::StatusOr<v1::Execution> started =
        member.engine->StartExecution(StartRequest(Workflow({shared})));
    ASSERT_TRUE(started.ok()) << started.status();
    if (names.size() == 1 &&
        ShardOfExecution(started->name(), kShards) == ShardOfExecution(names[0], kShards)) {
      continue;
    }
    names.push_back(started->name());
  }
  absl::StatusOr<v1::TaskRun> owner = member.engine->GetTaskRun(names[0] + "/tasks/a");
  absl::StatusOr<v1::TaskRun> waiter = member.engine->GetTaskRun(names[1] + "/tasks/a");
  ASSERT_TRUE(owner.ok() && waiter.ok());
  ASSERT_EQ(owner->state(), v1::TASK_READY) << owner->DebugString();
  ASSERT_EQ(waiter->state(), v1::TASK_PENDING) << waiter->DebugString();

  ASSERT_TRUE(member.engine->ReleaseShard(ShardOfExecution(names[0], kShards)).ok());
  waiter = member.engine->GetTaskRun(names[1] + "/tasks/a");
  ASSERT_TRUE(waiter.ok()) << waiter.status();
  EXPECT_EQ(waiter->state(), v1::TASK_READY) << waiter->DebugString();
}

TEST(WorkflowEngineShardsTest, CallsAboutAnotherShardGetTheTypedAnswer) {
  Member member(ShardRange(0, 128));
  const std::string foreign = "executions/" + IdInShard(200);
  const std::string local = "executions/" + IdInShard(5);

  auto expect_not_owned = [](const absl::Status& status, const std::string& call) {
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << call << ": " << status;
    EXPECT_EQ(NotOwnedShard(status), 200u) << call << ": " << status;
    EXPECT_NE(status.message().find("shard 200"), std::string::npos) << call << ": " << status;
  };
  expect_not_owned(member.engine->GetExecution(foreign).status(), "get");
  expect_not_owned(member.engine->GetTaskRun(foreign + "/tasks/a").status(), "get task run");
  expect_not_owned(member.engine->GetTaskLogs(foreign + "/tasks/a", 0).status(), "logs");
  expect_not_owned(member.engine->CancelExecution(foreign, "").status(), "cancel");
  expect_not_owned(member.engine->PauseExecution(foreign).status(), "pause");
  expect_not_owned(member.engine->Watch(foreign, 0).status(), "watch");
  v1::ListTaskRunsRequest list;
  list.set_parent(foreign);
  expect_not_owned(member.engine->ListTaskRuns(list).status(), "list task runs");

  // An unknown execution of an owned shard is simply not found.
  absl::Status missing = member.engine->GetExecution(local).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_EQ(NotOwnedShard(missing), std::nullopt);

  // A result for another shard's execution is refused, typed.
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(member.engine->RegisterAgent(Registration("w1", 2), channel).ok());
  v1::AttemptRef ref;
  ref.set_execution(foreign);
  ref.set_task_id("a");
  ref.set_attempt(1);
  expect_not_owned(member.engine->HandleAgentMessage("w1", ResultMessage(ref, 1)), "result");
  EXPECT_TRUE(channel->acks().empty());
}

// What a test agent runs: an assignment and the engine it came from.
struct InFlight {
  int engine;
  v1::TaskAssignment assignment;
};

// Two engines, A owning shards 0..127 and B 128..255, one agent "w1"
// connected to both (one stream each). Executions run across many shards;
// at seeded moments a shard with work in flight is released by its owner
// and adopted by the other (from the releasing engine's records for it, or
// a snapshot of it and the records after). The agent reports each result
// to the engine that assigned it and, told the shard moved, to the other.
class ShardHandoverTest : public ::testing::TestWithParam<int> {
 protected:
  ShardHandoverTest() {
    members_[0] = std::make_unique<Member>(ShardRange(0, kShards / 2));
    members_[1] = std::make_unique<Member>(ShardRange(kShards / 2, kShards));
    for (uint32_t s = 0; s < kShards; ++s) owner_[s] = s < kShards / 2 ? 0 : 1;
    for (int e = 0; e < 2; ++e) {
      channels_[e] = std::make_shared<RecordingChannel>();
      EXPECT_TRUE(engine(e).RegisterAgent(Registration("w1", 6), channels_[e]).ok());
    }
  }

  WorkflowEngine& engine(int e) { return *members_[e]->engine; }

  // Moves `shard` from its owner to the other engine, as the lease manager
  // will: the owner releases it (its records durable), the other adopts its
  // history: what each owner appended for it while it owned it.
  void HandOver(uint32_t shard, bool with_snapshot) {
    const int from = owner_[shard];
    const int to = 1 - from;
    std::optional<v1::EngineSnapshot> snapshot;
    uint64_t after = adopted_at_[shard];
    if (with_snapshot) {
      absl::StatusOr<v1::EngineSnapshot> taken = engine(from).SnapshotShard(shard);
      ASSERT_TRUE(taken.ok()) << taken.status();
      snapshot = *std::move(taken);
      after = snapshot->position();
      history_[shard].clear();  // the snapshot holds it
    }
    ASSERT_TRUE(engine(from).ReleaseShard(shard).ok());
    EXPECT_FALSE(engine(from).OwnsShard(shard));
    for (auto& [position, record] : members_[from]->Records()) {
      if (position > after && ShardOfRecord(record, kShards) == shard) {
        history_[shard].push_back(std::move(record));
      }
    }
    absl::Status adopted = engine(to).AdoptShard(shard, snapshot, history_[shard]);
    ASSERT_TRUE(adopted.ok()) << adopted;
    EXPECT_TRUE(engine(to).OwnsShard(shard));
    adopted_at_[shard] = members_[to]->store->last_position();
    owner_[shard] = to;
    handovers_++;
  }

  // Sends the result of `task` where it was assigned, then (told the shard
  // moved) to the other engine; gives the assigning stream its credit back.
  void Complete(const InFlight& task) {
    const int first = task.engine;
    absl::Status status = engine(first).HandleAgentMessage(
        "w1", ResultMessage(task.assignment.ref(), ++sequence_[first]));
    if (!status.ok()) {
      ASSERT_EQ(NotOwnedShard(status), ShardOfExecution(task.assignment.ref().execution(), kShards))
          << status;
      moved_results_++;
      const int other = 1 - first;
      status = engine(other).HandleAgentMessage(
          "w1", ResultMessage(task.assignment.ref(), ++sequence_[other]));
      ASSERT_TRUE(status.ok()) << status;
    }
    ASSERT_TRUE(engine(first).HandleAgentMessage("w1", Credit(1)).ok());
  }

  std::unique_ptr<Member> members_[2];
  std::shared_ptr<RecordingChannel> channels_[2];
  int owner_[kShards] = {};
  uint64_t adopted_at_[kShards] = {};
  std::map<uint32_t, std::vector<v1::StateRecord>> history_;
  uint64_t sequence_[2] = {0, 0};
  int moved_results_ = 0;
  int handovers_ = 0;
};

TEST_P(ShardHandoverTest, ShardMovedWhileItsExecutionsRunLosesAndDoublesNothing) {
  std::mt19937 rng(static_cast<uint32_t>(GetParam()));
  constexpr int kExecutions = 60;
  std::vector<std::string> executions;
  for (int i = 0; i < kExecutions; ++i) {
    const int e = i % 2;
    absl::StatusOr<v1::Execution> started = engine(e).StartExecution(StartRequest(Diamond()));
    ASSERT_TRUE(started.ok()) << started.status();
    EXPECT_EQ(owner_[ShardOfExecution(started->name(), kShards)], e) << started->name();
    executions.push_back(started->name());
  }
  constexpr int kTasks = kExecutions * 4;
  // Hand-overs after these many results (seeded), each of a shard with an
  // attempt in flight, alternately with and without a snapshot.
  std::set<int> handover_at;
  while (handover_at.size() < 4) handover_at.insert(static_cast<int>(rng() % (kTasks - 20)) + 5);
  std::shared_ptr<EventSubscription> watcher;
  uint32_t watched_shard = 0;

  std::vector<InFlight> running;
  int completed = 0;
  // Assignments are sent within the calls above, so an idle round means
  // a task is lost; a few are allowed, generously bounded.
  int idle = 0;
  for (int step = 0; step < 10 * kTasks && completed < kTasks && idle < 20; ++step) {
    for (int e = 0; e < 2; ++e) {
      const size_t pending = channels_[e]->pending();
      if (pending == 0) continue;
      for (v1::TaskAssignment& a : channels_[e]->Take(pending)) running.push_back({e, a});
    }
    if (running.empty()) {
      // Everything queued is with an engine; wait for its next assignment.
      idle++;
      for (int e = 0; e < 2; ++e) {
        for (v1::TaskAssignment& a : channels_[e]->Take(1, absl::Milliseconds(50))) {
          running.push_back({e, a});
        }
      }
      continue;
    }
    if (handover_at.contains(completed)) {
      handover_at.erase(completed);
      const InFlight& moving = running[rng() % running.size()];
      const uint32_t shard = ShardOfExecution(moving.assignment.ref().execution(), kShards);
      if (watcher == nullptr) {
        // A watcher of an execution of the moving shard ends, told so.
        absl::StatusOr<std::shared_ptr<EventSubscription>> watch =
            engine(owner_[shard]).Watch(moving.assignment.ref().execution(), 0);
        ASSERT_TRUE(watch.ok()) << watch.status();
        watcher = *watch;
        watched_shard = shard;
      }
      HandOver(shard, handovers_ % 2 == 1);
    }
    const size_t pick = rng() % running.size();
    const InFlight task = running[pick];
    running.erase(running.begin() + static_cast<std::ptrdiff_t>(pick));
    Complete(task);
    if (HasFatalFailure()) return;
    completed++;
  }
  EXPECT_EQ(completed, kTasks) << "tasks were lost: " << running.size() << " in flight";
  EXPECT_EQ(handovers_, 4);
  EXPECT_GT(moved_results_, 0) << "no result reached an engine after its shard moved";

  // Each execution succeeded at its shard's owner; the other has none.
  for (const std::string& name : executions) {
    const int owner = owner_[ShardOfExecution(name, kShards)];
    absl::StatusOr<v1::Execution> execution = engine(owner).GetExecution(name);
    ASSERT_TRUE(execution.ok()) << execution.status();
    EXPECT_EQ(execution->state(), v1::EXECUTION_SUCCEEDED) << name;
    EXPECT_EQ(execution->task_counts().succeeded(), 4) << name;
    EXPECT_TRUE(NotOwnedShard(engine(1 - owner).GetExecution(name).status()).has_value()) << name;
  }
  // Each task's success recorded exactly once over both engines' records.
  std::map<std::string, int> successes;
  for (int e = 0; e < 2; ++e) {
    for (const auto& [position, record] : members_[e]->Records()) {
      if (!record.has_task_result()) continue;
      const v1::TaskResult& result = record.task_result().result();
      if (result.outcome() != v1::ATTEMPT_SUCCEEDED) continue;
      successes[absl::StrCat(result.ref().execution(), "/", result.ref().task_id())]++;
    }
  }
  EXPECT_EQ(successes.size(), static_cast<size_t>(kTasks));
  for (const auto& [task, count] : successes) EXPECT_EQ(count, 1) << task;

  // The watcher ended with the typed "moved" answer.
  ASSERT_NE(watcher, nullptr);
  bool last = false;
  for (int i = 0; i < 100 && !last; ++i) watcher->Next(absl::Seconds(1), &last);
  EXPECT_TRUE(last);
  EXPECT_EQ(NotOwnedShard(watcher->error()), watched_shard) << watcher->error();
}

INSTANTIATE_TEST_SUITE_P(Seeds, ShardHandoverTest, ::testing::Values(1, 2, 3, 4, 5, 6));

// A one-task execution started on `a`, its attempt leased to the agent of
// `on_a`, then its shard moved from `a` to `b` (released with its records
// durable, the records adopted): where the tests of adopted attempts start.
struct MovedExecution {
  std::string name;
  uint32_t shard = 0;
  v1::TaskAssignment leased;  // by A
};
void StartOnAMoveToB(Member& a, Member& b, RecordingChannel& on_a, MovedExecution* moved) {
  absl::StatusOr<v1::Execution> started =
      a.engine->StartExecution(StartRequest(Workflow({Task("only")})));
  ASSERT_TRUE(started.ok()) << started.status();
  moved->name = started->name();
  moved->shard = ShardOfExecution(started->name(), kShards);
  std::vector<v1::TaskAssignment> first = on_a.Take(1);
  ASSERT_EQ(first.size(), 1u);
  moved->leased = first[0];
  ASSERT_TRUE(a.engine->ReleaseShard(moved->shard).ok());
  std::vector<v1::StateRecord> records;
  for (auto& [position, record] : a.Records()) {
    if (ShardOfRecord(record, kShards) == moved->shard) records.push_back(record);
  }
  ASSERT_TRUE(b.engine->AdoptShard(moved->shard, std::nullopt, records).ok());
}

// An attempt in flight when its shard moves is treated as after a restart:
// kept for its agent for a lease timeout, then lost and run again by an
// agent of the new owner; the late result of the lost attempt is refused
// by the old owner (typed) and is stale at the new one.
TEST(WorkflowEngineShardsTest, AnAdoptedAttemptWhoseAgentNeverComesIsRetried) {
  Member a(ShardRange(0, 128));
  Member b(ShardRange(128, 256));
  auto on_a = std::make_shared<RecordingChannel>();
  auto on_b = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(a.engine->RegisterAgent(Registration("wa", 1), on_a).ok());
  MovedExecution moved;
  ASSERT_NO_FATAL_FAILURE(StartOnAMoveToB(a, b, *on_a, &moved));
  const uint32_t shard = moved.shard;
  const std::string task = moved.name + "/tasks/only";
  EXPECT_EQ(b.engine->GetTaskRun(task)->state(), v1::TASK_LEASED);
  EXPECT_EQ(b.engine->GetTaskRun(task)->attempts_size(), 1);

  // "wa" never reaches B: its lease there times out and the task goes to
  // B's agent as attempt 2.
  b.engine->ExpireLeases(absl::Now() + absl::Minutes(5));
  EXPECT_EQ(b.engine->GetTaskRun(task)->state(), v1::TASK_READY);
  ASSERT_TRUE(b.engine->RegisterAgent(Registration("wb", 1), on_b).ok());
  std::vector<v1::TaskAssignment> second = on_b->Take(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].ref().attempt(), 2);

  absl::Status late = a.engine->HandleAgentMessage("wa", ResultMessage(moved.leased.ref(), 1));
  EXPECT_EQ(NotOwnedShard(late), shard) << late;
  ASSERT_TRUE(b.engine->HandleAgentMessage("wb", ResultMessage(second[0].ref(), 1)).ok());
  absl::StatusOr<v1::Execution> done = b.engine->GetExecution(moved.name);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::EXECUTION_SUCCEEDED);
  v1::TaskRun run = *b.engine->GetTaskRun(task);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(run.attempts(1).outcome(), v1::ATTEMPT_SUCCEEDED);
}

// An agent connects to every orchestrator. When the shard of an attempt it
// runs for A moves to B and the agent then registers with B again (a new
// stream), it lists that attempt as running for another orchestrator: B
// keeps the adopted lease, so the task is not run a second time. Listed
// nowhere, the lease is lost and the task runs again (attempt 2).
TEST(WorkflowEngineShardsTest, AnAdoptedAttemptTheAgentStillRunsSurvivesItsReRegistration) {
  for (const bool listed_elsewhere : {true, false}) {
    SCOPED_TRACE(listed_elsewhere ? "listed in running_elsewhere" : "not listed");
    Member a(ShardRange(0, 128));
    Member b(ShardRange(128, 256));
    auto on_a = std::make_shared<RecordingChannel>();
    auto on_b = std::make_shared<RecordingChannel>();
    ASSERT_TRUE(a.engine->RegisterAgent(Registration("w", 1), on_a).ok());
    ASSERT_TRUE(b.engine->RegisterAgent(Registration("w", 1), on_b).ok());
    MovedExecution moved;
    ASSERT_NO_FATAL_FAILURE(StartOnAMoveToB(a, b, *on_a, &moved));
    const uint32_t shard = moved.shard;
    const std::string task = moved.name + "/tasks/only";
    ASSERT_EQ(b.engine->GetTaskRun(task)->state(), v1::TASK_LEASED);

    // The agent's stream to B breaks and it registers again, still running
    // the attempt A leased it.
    b.engine->DisconnectAgent("w", on_b.get());
    v1::Register again = Registration("w", 1);
    if (listed_elsewhere) *again.add_running_elsewhere() = moved.leased.ref();
    auto on_b_again = std::make_shared<RecordingChannel>();
    absl::StatusOr<v1::Registered> registered = b.engine->RegisterAgent(again, on_b_again);
    ASSERT_TRUE(registered.ok()) << registered.status();
    v1::TaskRun run = *b.engine->GetTaskRun(task);
    if (!listed_elsewhere) {
      ASSERT_EQ(run.attempts_size(), 2);
      EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_LOST);
      continue;
    }
    EXPECT_EQ(run.state(), v1::TASK_LEASED);
    ASSERT_EQ(run.attempts_size(), 1);
    // Not cancelled either, and not given to the agent a second time.
    EXPECT_TRUE(on_b_again->cancels().empty());
    EXPECT_EQ(on_b_again->pending(), 0u);

    // The result A refuses reaches B, which records the one attempt.
    EXPECT_EQ(
        NotOwnedShard(a.engine->HandleAgentMessage("w", ResultMessage(moved.leased.ref(), 1))),
        shard);
    ASSERT_TRUE(b.engine->HandleAgentMessage("w", ResultMessage(moved.leased.ref(), 1)).ok());
    EXPECT_EQ(b.engine->GetExecution(moved.name)->state(), v1::EXECUTION_SUCCEEDED);
    run = *b.engine->GetTaskRun(task);
    ASSERT_EQ(run.attempts_size(), 1);
    EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_SUCCEEDED);
  }
}

TEST(WorkflowEngineShardsTest, AdoptRefusesAnotherShardsRecordsAndAnOwnedShard) {
  Member a(ShardRange(0, 128));
  Member b(ShardRange(128, 256));
  absl::StatusOr<v1::Execution> started = a.engine->StartExecution(StartRequest(Diamond()));
  ASSERT_TRUE(started.ok());
  const uint32_t shard = ShardOfExecution(started->name(), kShards);
  std::vector<v1::StateRecord> records;
  for (auto& [position, record] : a.Records()) records.push_back(record);
  EXPECT_EQ(
      b.engine->AdoptShard(shard + 1 < 128 ? shard + 1 : shard - 1, std::nullopt, records).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.engine->AdoptShard(200, std::nullopt, {}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.engine->ReleaseShard(200).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gyre::orchestrator
