// Retention through the engine: finished executions and their logs go after
// their windows, what is running or recent stays, a restart (replay from the
// records and from a snapshot) keeps them forgotten, and the embedded store's
// files shrink once a snapshot covers what was forgotten.

#include "services/orchestrator/retention.h"

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "libs/testing/scratch_dir.h"
#include "services/orchestrator/embedded_state_store.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Credit;
using ::gyre::orchestrator::testing::Declaring;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

constexpr absl::Duration kDay = absl::Hours(24);

// An engine on a FakeClock over one store that outlives it (a restart
// replays it), with retention of 90 days for executions and 7 for logs and
// no background passes unless a test asks (passes are run by hand).
class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override { Restart(); }

  WorkflowEngine::Options Options() {
    WorkflowEngine::Options options;
    options.clock = &clock_;
    options.store = store_.get();
    options.lease_timeout = absl::Hours(24 * 365);  // agents stay alive across the jumps
    // Snapshots only when a test writes one (a pass asks for one, which
    // would race with a test reading the records).
    options.snapshot_every_records = 0;
    options.heartbeat_interval = absl::Seconds(5);
    options.retention.finished_executions = 90 * kDay;
    options.retention.task_logs = 7 * kDay;
    options.retention.batch = batch_;
    options.retention.interval = interval_;
    return options;
  }

  // Drops the engine and recovers a new one from the store.
  void Restart() {
    engine_.reset();
    store_ = NewMemoryStateStore(data_);
    engine_ = std::make_unique<WorkflowEngine>(Options());
    ASSERT_TRUE(engine_->Recover().ok());
  }

  // A started execution of one task, cancelled at once: finished now.
  std::string Finished(const std::string& request_id = "") {
    v1::StartExecutionRequest request = StartRequest(Workflow({Task("a")}));
    request.set_request_id(request_id);
    absl::StatusOr<v1::Execution> started = engine_->StartExecution(request);
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return "";
    EXPECT_TRUE(engine_->CancelExecution(started->name(), "done with it").ok());
    return started->name();
  }

  bool Known(const std::string& execution) {
    absl::StatusOr<v1::Execution> got = engine_->GetExecution(execution);
    EXPECT_TRUE(got.ok() || got.status().code() == absl::StatusCode::kNotFound) << got.status();
    return got.ok();
  }

  std::set<std::string> Listed() {
    std::set<std::string> names;
    v1::ListExecutionsRequest request;
    do {
      absl::StatusOr<v1::ListExecutionsResponse> page = engine_->ListExecutions(request);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const v1::Execution& exec : page->executions()) names.insert(exec.name());
      request.set_page_token(page->next_page_token());
    } while (!request.page_token().empty());
    return names;
  }

  FakeClock clock_;
  int64_t batch_ = 500;
  absl::Duration interval_ = absl::ZeroDuration();
  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<WorkflowEngine> engine_;
};

TEST_F(RetentionTest, ForgetsFinishedExecutionsPastTheWindowAndKeepsRunningAndRecentOnes) {
  const std::string old = Finished("request-old");
  clock_.Advance(60 * kDay);
  const std::string recent = Finished();
  // An agent runs this one: running, it is kept whatever its age.
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->RegisterAgent(Registration("a1", 1), channel).ok());
  const std::string running = engine_->StartExecution(StartRequest(Workflow({Task("a")})))->name();
  ASSERT_EQ(channel->Take(1).size(), 1u);
  clock_.Advance(31 * kDay);  // old ended 91 days ago, recent 31

  const Retention::Pass pass = engine_->RunRetentionPass();
  EXPECT_EQ(pass.forgotten, 1);
  EXPECT_FALSE(pass.more);
  EXPECT_FALSE(Known(old));
  EXPECT_TRUE(Known(recent));
  EXPECT_TRUE(Known(running));
  EXPECT_EQ(Listed(), (std::set<std::string>{recent, running}));
  EXPECT_EQ(engine_->GetTaskRun(old + "/tasks/a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine_->Watch(old, 1).status().code(), absl::StatusCode::kNotFound);
  // Its request id is free again: the same request starts a new execution.
  v1::StartExecutionRequest again = StartRequest(Workflow({Task("a")}));
  again.set_request_id("request-old");
  absl::StatusOr<v1::Execution> restarted = engine_->StartExecution(again);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_NE(restarted->name(), old);
  // Nothing more is due: a second pass forgets nothing.
  EXPECT_EQ(engine_->RunRetentionPass().forgotten, 0);
}

TEST_F(RetentionTest, LogsGoAfterTheirWindowWithAMessageSayingWhenAndTheRunStays) {
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->RegisterAgent(Registration("a1", 1), channel).ok());
  const std::string execution =
      engine_->StartExecution(StartRequest(Workflow({Task("a")})))->name();
  const v1::TaskAssignment a = channel->Take(1).at(0);
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = a.ref();
  result->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result->set_stdout_tail("hello from a\n");
  result->set_sequence(1);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", message).ok());
  ASSERT_EQ(engine_->GetExecution(execution)->state(), v1::EXECUTION_SUCCEEDED);
  ASSERT_EQ(engine_->GetTaskLogs(execution + "/tasks/a", 0)->stdout(), "hello from a\n");

  clock_.Advance(6 * kDay);
  EXPECT_EQ(engine_->RunRetentionPass().logs_dropped, 0);
  EXPECT_EQ(engine_->GetTaskLogs(execution + "/tasks/a", 0)->stdout(), "hello from a\n");
  clock_.Advance(2 * kDay);
  const absl::Time dropped_at = clock_.Now();
  EXPECT_EQ(engine_->RunRetentionPass().logs_dropped, 1);

  auto expect_removed = [&] {
    const absl::StatusOr<v1::GetTaskLogsResponse> logs =
        engine_->GetTaskLogs(execution + "/tasks/a", 0);
    EXPECT_EQ(logs.status().code(), absl::StatusCode::kFailedPrecondition) << logs.status();
    EXPECT_TRUE(absl::StrContains(
        logs.status().message(),
        "removed by retention at " +
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", dropped_at, absl::UTCTimeZone())))
        << logs.status();
    // The execution and its attempt stay.
    const absl::StatusOr<v1::TaskRun> run = engine_->GetTaskRun(execution + "/tasks/a");
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->state(), v1::TASK_SUCCEEDED);
    EXPECT_EQ(run->attempts_size(), 1);
  };
  expect_removed();
  Restart();  // replay of TaskLogsExpired
  expect_removed();
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot
  expect_removed();
}

TEST_F(RetentionTest, TheForgottenStayForgottenAfterReplayFromRecordsAndFromASnapshot) {
  std::vector<std::string> old;
  for (int i = 0; i < 5; ++i) old.push_back(Finished(absl::StrCat("old-", i)));
  clock_.Advance(50 * kDay);
  const std::string recent = Finished("recent");
  clock_.Advance(41 * kDay);
  ASSERT_EQ(engine_->RunRetentionPass().forgotten, 5);

  auto expect_forgotten = [&] {
    for (const std::string& name : old) EXPECT_FALSE(Known(name)) << name;
    EXPECT_TRUE(Known(recent));
    EXPECT_EQ(Listed(), std::set<std::string>{recent});
  };
  expect_forgotten();
  Restart();  // replays ExecutionsExpired
  expect_forgotten();
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // the snapshot left them out
  expect_forgotten();
  // The restart from a snapshot renumbered the slots: paging and new
  // executions still work, and the recent one goes in its turn.
  const std::string newer = Finished();
  EXPECT_EQ(Listed(), (std::set<std::string>{recent, newer}));
  clock_.Advance(50 * kDay);
  EXPECT_EQ(engine_->RunRetentionPass().forgotten, 1);
  EXPECT_EQ(Listed(), std::set<std::string>{newer});
}

TEST_F(RetentionTest, PassesAreBatchedAndEachRecordHoldsOneShardsExecutions) {
  batch_ = 10;
  Restart();
  std::set<std::string> finished;
  for (int i = 0; i < 25; ++i) finished.insert(Finished());
  clock_.Advance(91 * kDay);
  std::vector<int64_t> passes;
  Retention::Pass pass;
  do {
    pass = engine_->RunRetentionPass();
    passes.push_back(pass.forgotten);
  } while (pass.more && passes.size() < 10);
  EXPECT_EQ(passes, (std::vector<int64_t>{10, 10, 5}));
  EXPECT_TRUE(Listed().empty());

  // What was appended: ExecutionsExpired records, each of one shard,
  // naming every finished execution once.
  engine_.reset();
  store_ = NewMemoryStateStore(data_);
  std::multiset<std::string> expired;
  ASSERT_TRUE(store_
                  ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                         [&](const v1::StateRecord& record) {
                           if (!record.has_executions_expired()) return absl::OkStatus();
                           std::set<uint32_t> shards;
                           for (const std::string& id :
                                record.executions_expired().execution_ids()) {
                             expired.insert("executions/" + id);
                             shards.insert(ShardOfExecution(id, kDefaultShardCount));
                           }
                           EXPECT_EQ(shards.size(), 1u) << record.ShortDebugString();
                           return absl::OkStatus();
                         })
                  .ok());
  EXPECT_EQ(std::set<std::string>(expired.begin(), expired.end()), finished);
  EXPECT_EQ(expired.size(), finished.size());
}

TEST_F(RetentionTest, BackgroundPassesForgetWithoutBeingAsked) {
  interval_ = absl::Minutes(1);
  Restart();
  const std::string old = Finished();
  clock_.Advance(91 * kDay);  // the pass timer falls due
  bool forgotten = false;
  for (int i = 0; i < 1000 && !forgotten; ++i) {
    forgotten = !Known(old);
    if (!forgotten) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(forgotten) << "no background pass forgot " << old << " within 10 s";
}

// Bytes of every file under `dir`.
uintmax_t DiskUsage(const std::string& dir) {
  uintmax_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  return bytes;
}

TEST(RetentionEmbeddedStoreTest, ItsFilesShrinkOnceASnapshotCoversWhatWasForgotten) {
  gyre::testing::ScratchDir dir("retention_embedded");
  ASSERT_FALSE(dir.path().empty());
  FakeClock clock;
  std::unique_ptr<StateStore> store = NewEmbeddedStateStore(dir.path(), /*fsync=*/false);
  WorkflowEngine::Options options;
  options.clock = &clock;
  options.store = store.get();
  options.retention.interval = absl::ZeroDuration();
  options.snapshot_every_records = 0;  // only the snapshots the test writes
  auto engine = std::make_unique<WorkflowEngine>(options);
  ASSERT_TRUE(engine->Recover().ok());

  // ~70 MiB of records: more than one 64 MiB segment of the log.
  std::vector<std::string> keys;
  for (int i = 0; i < 14; ++i) keys.push_back(absl::StrCat("k", i));
  const v1::WorkflowDefinition def = Declaring(Workflow({Task("a")}), keys);
  std::map<std::string, std::string> context;
  for (const std::string& key : keys) context[key] = std::string(64 * 1000, 'x');
  for (int i = 0; i < 80; ++i) {
    absl::StatusOr<v1::Execution> started = engine->StartExecution(StartRequest(def, context));
    ASSERT_TRUE(started.ok()) << started.status();
    ASSERT_TRUE(engine->CancelExecution(started->name(), "").ok());
  }
  ASSERT_TRUE(engine->AwaitDurable().ok());
  const uintmax_t before = DiskUsage(dir.path());
  EXPECT_GT(before, uintmax_t{64} << 20);

  clock.Advance(91 * kDay);
  Retention::Pass pass;
  do {
    pass = engine->RunRetentionPass();
  } while (pass.more);
  ASSERT_TRUE(engine->AwaitDurable().ok());
  ASSERT_TRUE(engine->WriteSnapshot().ok());
  // The log keeps two snapshots (a corrupt newest falls back to the one
  // before) and deletes a segment once the older of them covers it: the
  // next periodic snapshot lets the segments go.
  ASSERT_TRUE(engine->StartExecution(StartRequest(Workflow({Task("a")}))).ok());
  ASSERT_TRUE(engine->AwaitDurable().ok());
  ASSERT_TRUE(engine->WriteSnapshot().ok());
  const uintmax_t after = DiskUsage(dir.path());
  EXPECT_LT(after, before / 2) << "before " << before << " bytes, after " << after;

  // And a restart from what is left knows none of them.
  engine.reset();
  store = NewEmbeddedStateStore(dir.path(), /*fsync=*/false);
  options.store = store.get();
  engine = std::make_unique<WorkflowEngine>(options);
  ASSERT_TRUE(engine->Recover().ok());
  EXPECT_EQ(engine->ListExecutions(v1::ListExecutionsRequest())->executions_size(), 1);
}

}  // namespace
}  // namespace gyre::orchestrator
