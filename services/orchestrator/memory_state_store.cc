#include "services/orchestrator/memory_state_store.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

struct MemoryStateStoreData {
  absl::Mutex mutex;
  // Records after the snapshot; the first one has position first_position.
  std::vector<std::string> records ABSL_GUARDED_BY(mutex);
  uint64_t first_position ABSL_GUARDED_BY(mutex) = 1;
  std::optional<std::string> snapshot ABSL_GUARDED_BY(mutex);
};

namespace {

absl::Status ParseInto(absl::string_view bytes, google::protobuf::MessageLite& message,
                       absl::string_view what) {
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("undecodable ", what));
  }
  return absl::OkStatus();
}

class MemoryStateStore : public StateStore {
 public:
  explicit MemoryStateStore(std::shared_ptr<MemoryStateStoreData> data) : data_(std::move(data)) {}

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override {
    std::vector<std::string> records;
    std::optional<std::string> snapshot;
    {
      absl::MutexLock lock(&data_->mutex);
      records = data_->records;
      snapshot = data_->snapshot;
    }
    if (snapshot) {
      v1::EngineSnapshot state;
      if (absl::Status status = ParseInto(*snapshot, state, "snapshot"); !status.ok()) {
        return status;
      }
      if (absl::Status status = restore(std::move(state)); !status.ok()) return status;
    }
    for (const std::string& bytes : records) {
      v1::StateRecord record;
      if (absl::Status status = ParseInto(bytes, record, "state record"); !status.ok()) {
        return status;
      }
      if (absl::Status status = apply(record); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  void Append(absl::Span<const v1::StateRecord> records, Completion done) override {
    {
      absl::MutexLock lock(&data_->mutex);
      for (const v1::StateRecord& record : records) {
        data_->records.push_back(record.SerializeAsString());
      }
    }
    done(absl::OkStatus());
  }

  uint64_t last_position() override {
    absl::MutexLock lock(&data_->mutex);
    return data_->first_position + data_->records.size() - 1;
  }

  // Appends complete at once here; only a position never appended is wrong.
  absl::Status AwaitDurable(uint64_t position) override {
    const uint64_t last = last_position();
    if (position > last) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state store: record ", position, " was never appended (last is ", last, ")"));
    }
    return absl::OkStatus();
  }

  absl::Status WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) override {
    std::string bytes = snapshot.SerializeAsString();
    absl::MutexLock lock(&data_->mutex);
    const uint64_t last = data_->first_position + data_->records.size() - 1;
    if (position < data_->first_position || position > last) {
      return absl::OutOfRangeError(absl::StrCat("cannot snapshot at position ", position,
                                                ": records ", data_->first_position, "..", last,
                                                " are the ones not yet covered"));
    }
    const uint64_t covered = position - data_->first_position + 1;
    data_->records.erase(data_->records.begin(),
                         data_->records.begin() + static_cast<std::ptrdiff_t>(covered));
    data_->first_position = position + 1;
    data_->snapshot = std::move(bytes);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<MemoryStateStoreData> data_;
};

}  // namespace

std::shared_ptr<MemoryStateStoreData> NewMemoryStateStoreData() {
  return std::make_shared<MemoryStateStoreData>();
}

std::unique_ptr<StateStore> NewMemoryStateStore(std::shared_ptr<MemoryStateStoreData> data) {
  return std::make_unique<MemoryStateStore>(std::move(data));
}

}  // namespace gyre::orchestrator
