#include "services/orchestrator/engine_journal.h"

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/testing/fake_state_stores.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::FailingStore;

v1::StateRecord RetryDue(const std::string& task) {
  v1::StateRecord record;
  record.mutable_task_retry_due()->set_execution_id("e");
  record.mutable_task_retry_due()->set_task_id(task);
  record.mutable_task_retry_due()->set_attempt(1);
  return record;
}

// The records `data` holds, as a restart reads them.
std::vector<v1::StateRecord> Stored(std::shared_ptr<MemoryStateStoreData> data) {
  std::vector<v1::StateRecord> records;
  EXPECT_TRUE(NewMemoryStateStore(std::move(data))
                  ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                         [&](const v1::StateRecord& record) {
                           records.push_back(record);
                           return absl::OkStatus();
                         })
                  .ok());
  return records;
}

TEST(EngineJournalTest, RecordsCarryTheTimeOfTheChange) {
  auto data = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store = NewMemoryStateStore(data);
  EngineJournal journal(store.get(), 0, [](const absl::Status&) {});
  const absl::Time first = absl::FromUnixSeconds(1'800'000'000) + absl::Nanoseconds(7);
  journal.set_now(first);
  EXPECT_EQ(journal.now(), first);
  v1::StateRecord record = RetryDue("a");
  absl::Status done = absl::UnknownError("not called");
  journal.Persist(record, [&](absl::Status status) { done = status; });
  journal.set_now(first + absl::Seconds(5));
  std::vector<v1::StateRecord> batch = {RetryDue("b"), RetryDue("c")};
  journal.Persist(absl::MakeSpan(batch), nullptr);
  ASSERT_TRUE(store->AwaitDurable(store->last_position()).ok());
  EXPECT_TRUE(done.ok()) << done;

  std::vector<v1::StateRecord> stored = Stored(data);
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[0].unix_nanos(), absl::ToUnixNanos(first));
  EXPECT_EQ(stored[0].task_retry_due().task_id(), "a");
  EXPECT_EQ(stored[1].unix_nanos(), absl::ToUnixNanos(first + absl::Seconds(5)));
  EXPECT_EQ(stored[2].unix_nanos(), absl::ToUnixNanos(first + absl::Seconds(5)));
}

TEST(EngineJournalTest, NothingIsAppendedWhileReplayingOrWithoutAStore) {
  auto data = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store = NewMemoryStateStore(data);
  EngineJournal journal(store.get(), 0, [](const absl::Status&) {});
  journal.set_replaying(true);
  EXPECT_TRUE(journal.replaying());
  v1::StateRecord record = RetryDue("a");
  bool done = false;
  journal.Persist(record, [&](absl::Status status) { done = status.ok(); });
  EXPECT_TRUE(done);  // the change is as durable as the record it replays
  EXPECT_EQ(store->last_position(), 0u);
  journal.set_replaying(false);
  journal.Persist(record);
  EXPECT_EQ(store->last_position(), 1u);

  EngineJournal memory_only(nullptr, 1, [](const absl::Status&) {});
  done = false;
  memory_only.Persist(record, [&](absl::Status status) { done = status.ok(); });
  EXPECT_TRUE(done);
  EXPECT_FALSE(memory_only.snapshot_requested());
}

TEST(EngineJournalTest, ASnapshotIsRequestedAfterTheConfiguredNumberOfRecords) {
  std::unique_ptr<StateStore> store = NewMemoryStateStore(NewMemoryStateStoreData());
  EngineJournal journal(store.get(), 3, [](const absl::Status&) {});
  v1::StateRecord record = RetryDue("a");
  journal.Persist(record);
  journal.Persist(record);
  EXPECT_FALSE(journal.snapshot_requested());
  journal.Persist(record);
  EXPECT_TRUE(journal.snapshot_requested());
  journal.TakeSnapshotRequest();
  EXPECT_FALSE(journal.snapshot_requested());
  std::vector<v1::StateRecord> batch = {record, record};
  journal.Persist(absl::MakeSpan(batch), nullptr);
  EXPECT_FALSE(journal.snapshot_requested());
  journal.Persist(record);
  EXPECT_TRUE(journal.snapshot_requested());

  // Replayed records do not count.
  journal.TakeSnapshotRequest();
  journal.set_replaying(true);
  for (int i = 0; i < 5; ++i) journal.Persist(record);
  EXPECT_FALSE(journal.snapshot_requested());
}

TEST(EngineJournalTest, AFailedAppendCallsOnFailure) {
  FailingStore store(NewMemoryStateStoreData());
  absl::Status failure;
  EngineJournal journal(&store, 0, [&](const absl::Status& status) { failure = status; });
  v1::StateRecord record = RetryDue("a");
  journal.Persist(record);
  EXPECT_TRUE(failure.ok()) << failure;
  store.Fail();
  journal.Persist(record);
  EXPECT_FALSE(failure.ok());
}

}  // namespace
}  // namespace gyre::orchestrator
