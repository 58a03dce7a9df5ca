// The StateStore conformance cases (see state_store_conformance.h); the
// backends' tests instantiate them.
#include "services/orchestrator/state_store_conformance.h"

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"

namespace gyre::orchestrator {

std::string StateStoreConformanceTest::BackendName(
    const ::testing::TestParamInfo<StateStoreBackendFactory>& info) {
  return info.param.name;
}

void StateStoreConformanceTest::SetUp() {
  backend_ = GetParam().make();
  ASSERT_NE(backend_, nullptr) << "backend " << GetParam().name << " made no location";
}

namespace {

namespace v1 = ::gyre::v1;

v1::StateRecord Leased(const std::string& task, int64_t attempt) {
  v1::StateRecord record;
  record.mutable_task_leased()->set_execution_id("e1");
  record.mutable_task_leased()->set_task_id(task);
  record.mutable_task_leased()->set_attempt(attempt);
  return record;
}

std::vector<v1::StateRecord> LoadAll(StateStore& store, v1::EngineSnapshot* snapshot = nullptr) {
  std::vector<v1::StateRecord> records;
  const absl::Status status = store.Load(
      [&](v1::EngineSnapshot loaded) {
        EXPECT_NE(snapshot, nullptr) << "a snapshot was restored where none was expected";
        if (snapshot != nullptr) *snapshot = std::move(loaded);
        return absl::OkStatus();
      },
      [&](const v1::StateRecord& record) {
        records.push_back(record);
        return absl::OkStatus();
      });
  EXPECT_TRUE(status.ok()) << status;
  return records;
}

v1::EngineSnapshot SnapshotNamed(const std::string& workflow) {
  v1::EngineSnapshot snapshot;
  snapshot.add_workflows()->set_name(workflow);
  snapshot.set_executions_started(7);
  return snapshot;
}

absl::Status AppendAndWait(StateStore& store, const std::vector<v1::StateRecord>& records) {
  absl::Notification done;
  absl::Status result;
  store.Append(records, [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

TEST_P(StateStoreConformanceTest, NewStoreLoadsNothing) {
  auto store = backend_->Open();
  EXPECT_TRUE(LoadAll(*store).empty());
}

TEST_P(StateStoreConformanceTest, AcknowledgedRecordsReplayInOrderAfterReopen) {
  {
    auto store = backend_->Open();
    LoadAll(*store);
    ASSERT_TRUE(AppendAndWait(*store, {Leased("a", 1), Leased("b", 1)}).ok());
    ASSERT_TRUE(AppendAndWait(*store, {Leased("a", 2)}).ok());
  }
  auto store = backend_->Open();
  const std::vector<v1::StateRecord> records = LoadAll(*store);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].task_leased().task_id(), "a");
  EXPECT_EQ(records[1].task_leased().task_id(), "b");
  EXPECT_EQ(records[2].task_leased().attempt(), 2);
}

TEST_P(StateStoreConformanceTest, ConcurrentAppendsAreAllKept) {
  {
    auto store = backend_->Open();
    LoadAll(*store);
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          ASSERT_TRUE(AppendAndWait(*store, {Leased(std::to_string(t), i)}).ok());
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  auto store = backend_->Open();
  const std::vector<v1::StateRecord> records = LoadAll(*store);
  ASSERT_EQ(records.size(), 200u);
  // Per appender, order is preserved.
  std::map<std::string, int64_t> last;
  for (const v1::StateRecord& record : records) {
    const auto& leased = record.task_leased();
    auto it = last.find(leased.task_id());
    if (it != last.end()) {
      EXPECT_GT(leased.attempt(), it->second);
    }
    last[leased.task_id()] = leased.attempt();
  }
}

TEST_P(StateStoreConformanceTest, ApplyErrorStopsTheLoad) {
  {
    auto store = backend_->Open();
    LoadAll(*store);
    ASSERT_TRUE(AppendAndWait(*store, {Leased("a", 1), Leased("b", 1)}).ok());
  }
  auto store = backend_->Open();
  int applied = 0;
  const absl::Status status =
      store->Load([](const v1::EngineSnapshot&) { return absl::OkStatus(); },
                  [&](const v1::StateRecord&) {
                    return ++applied == 1 ? absl::OkStatus() : absl::DataLossError("bad record");
                  });
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(applied, 2);
}

TEST_P(StateStoreConformanceTest, PositionsCountAppendedRecordsAcrossReopen) {
  {
    auto store = backend_->Open();
    LoadAll(*store);
    EXPECT_EQ(store->last_position(), 0u);
    ASSERT_TRUE(AppendAndWait(*store, {Leased("a", 1), Leased("b", 1)}).ok());
    EXPECT_EQ(store->last_position(), 2u);
  }
  auto store = backend_->Open();
  LoadAll(*store);
  EXPECT_EQ(store->last_position(), 2u);
  ASSERT_TRUE(AppendAndWait(*store, {Leased("c", 1)}).ok());
  EXPECT_EQ(store->last_position(), 3u);
}

TEST_P(StateStoreConformanceTest, LoadRestoresTheSnapshotThenReplaysOnlyLaterRecords) {
  {
    auto store = backend_->Open();
    LoadAll(*store);
    ASSERT_TRUE(AppendAndWait(*store, {Leased("a", 1), Leased("b", 1)}).ok());
    ASSERT_TRUE(store->WriteSnapshot(2, SnapshotNamed("workflows/after-two")).ok());
    ASSERT_TRUE(AppendAndWait(*store, {Leased("c", 1)}).ok());
  }
  auto store = backend_->Open();
  v1::EngineSnapshot snapshot;
  const std::vector<v1::StateRecord> records = LoadAll(*store, &snapshot);
  EXPECT_EQ(snapshot.workflows(0).name(), "workflows/after-two");
  EXPECT_EQ(snapshot.executions_started(), 7u);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].task_leased().task_id(), "c");
  EXPECT_EQ(store->last_position(), 3u);
}

TEST_P(StateStoreConformanceTest, TheNewestSnapshotWins) {
  {
    auto store = backend_->Open();
    LoadAll(*store);
    ASSERT_TRUE(AppendAndWait(*store, {Leased("a", 1)}).ok());
    ASSERT_TRUE(store->WriteSnapshot(1, SnapshotNamed("workflows/one")).ok());
    ASSERT_TRUE(AppendAndWait(*store, {Leased("b", 1)}).ok());
    ASSERT_TRUE(store->WriteSnapshot(2, SnapshotNamed("workflows/two")).ok());
  }
  auto store = backend_->Open();
  v1::EngineSnapshot snapshot;
  EXPECT_TRUE(LoadAll(*store, &snapshot).empty());
  EXPECT_EQ(snapshot.workflows(0).name(), "workflows/two");
}

TEST_P(StateStoreConformanceTest, ASnapshotWaitsForTheRecordsItCovers) {
  auto store = backend_->Open();
  LoadAll(*store);
  // Not awaited: WriteSnapshot itself must wait for durability.
  for (int i = 1; i <= 100; ++i) {
    const v1::StateRecord record = Leased("a", i);
    store->Append({&record, 1}, [](const absl::Status&) {});
  }
  ASSERT_TRUE(store->WriteSnapshot(store->last_position(), SnapshotNamed("workflows/x")).ok());
  EXPECT_FALSE(store->WriteSnapshot(101, SnapshotNamed("workflows/y")).ok())
      << "a snapshot past the last record must be refused";
}

TEST_P(StateStoreConformanceTest, AwaitDurableReturnsOnceTheRecordsAreDurable) {
  auto store = backend_->Open();
  LoadAll(*store);
  EXPECT_TRUE(store->AwaitDurable(0).ok()) << "nothing appended: nothing to wait for";
  std::atomic<int> failed{0};
  for (int i = 1; i <= 100; ++i) {
    const v1::StateRecord record = Leased("a", i);
    store->Append({&record, 1}, [&failed](const absl::Status& status) {
      if (!status.ok()) failed++;
    });
  }
  ASSERT_EQ(store->last_position(), 100u);
  EXPECT_TRUE(store->AwaitDurable(50).ok());
  EXPECT_TRUE(store->AwaitDurable(100).ok());
  EXPECT_EQ(store->AwaitDurable(101).code(), absl::StatusCode::kFailedPrecondition)
      << "a record never appended cannot become durable";
  // A snapshot at the position waits for nothing more and keeps everything.
  ASSERT_TRUE(store->WriteSnapshot(100, SnapshotNamed("workflows/x")).ok());
  EXPECT_EQ(failed.load(), 0);
}

TEST_P(StateStoreConformanceTest, AppendsMadeUnderNestedHoldsBecomeDurableOnceReleased) {
  auto store = backend_->Open();
  LoadAll(*store);
  store->HoldCommits();
  store->HoldCommits();
  std::atomic<int> durable{0};
  // Each append's callback, counted down: AwaitDurable may return before the
  // writer has run the callbacks of what it just made durable.
  absl::BlockingCounter called(3);
  for (int i = 1; i <= 3; ++i) {
    const v1::StateRecord record = Leased("a", i);
    store->Append({&record, 1}, [&durable, &called](const absl::Status& status) {
      if (status.ok()) durable++;
      called.DecrementCount();
    });
  }
  store->ReleaseCommits();
  store->ReleaseCommits();
  ASSERT_TRUE(store->AwaitDurable(3).ok()) << "released holds must not keep appends back";
  called.Wait();
  EXPECT_EQ(durable.load(), 3);
  // And after the holds, appends are committed without one.
  ASSERT_TRUE(AppendAndWait(*store, {Leased("b", 1)}).ok());
  store.reset();
  auto reopened = backend_->Open();
  EXPECT_EQ(LoadAll(*reopened).size(), 4u);
}

}  // namespace
}  // namespace gyre::orchestrator
