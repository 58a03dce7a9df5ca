#include "services/orchestrator/state_store.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/durable_log/event_log.h"
#include "libs/logging/logger.h"

namespace gyre::orchestrator {

struct MemoryStateStoreData {
  absl::Mutex mutex;
  std::vector<std::string> records ABSL_GUARDED_BY(mutex);
};

namespace {

class MemoryStateStore : public StateStore {
 public:
  explicit MemoryStateStore(std::shared_ptr<MemoryStateStoreData> data) : data_(std::move(data)) {}

  absl::Status Load(
      const std::function<absl::Status(const gyre::v1::StateRecord&)>& apply) override {
    std::vector<std::string> records;
    {
      absl::MutexLock lock(&data_->mutex);
      records = data_->records;
    }
    for (const std::string& bytes : records) {
      gyre::v1::StateRecord record;
      if (!record.ParseFromString(bytes)) return absl::DataLossError("undecodable record");
      if (absl::Status status = apply(record); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  void Append(std::vector<gyre::v1::StateRecord> records, Completion done) override {
    {
      absl::MutexLock lock(&data_->mutex);
      for (const gyre::v1::StateRecord& record : records) {
        data_->records.push_back(record.SerializeAsString());
      }
    }
    done(absl::OkStatus());
  }

 private:
  std::shared_ptr<MemoryStateStoreData> data_;
};

class EmbeddedStateStore : public StateStore {
 public:
  EmbeddedStateStore(const std::string& data_dir, bool fsync)
      : path_(data_dir + "/events.log"), fsync_(fsync) {}

  absl::Status Load(
      const std::function<absl::Status(const gyre::v1::StateRecord&)>& apply) override {
    durable_log::EventLog::RecoveryInfo info;
    auto log = durable_log::EventLog::Open(
        path_, {fsync_},
        [&](absl::string_view bytes) -> absl::Status {
          gyre::v1::StateRecord record;
          if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
            return absl::DataLossError("undecodable state record");
          }
          return apply(record);
        },
        &info);
    if (!log.ok()) return log.status();
    log_ = *std::move(log);
    logging::Info(
        "state recovered",
        {{"path", path_}, {"records", info.records}, {"torn_tail_bytes", info.truncated_bytes}});
    return absl::OkStatus();
  }

  void Append(std::vector<gyre::v1::StateRecord> records, Completion done) override {
    if (log_ == nullptr) {
      done(absl::FailedPreconditionError("state store appended to before Load"));
      return;
    }
    std::vector<std::string> bytes;
    bytes.reserve(records.size());
    for (const gyre::v1::StateRecord& record : records) bytes.push_back(record.SerializeAsString());
    log_->AppendAsync(std::move(bytes), std::move(done));
  }

 private:
  const std::string path_;
  const bool fsync_;
  std::unique_ptr<durable_log::EventLog> log_;
};

}  // namespace

std::shared_ptr<MemoryStateStoreData> NewMemoryStateStoreData() {
  return std::make_shared<MemoryStateStoreData>();
}

std::unique_ptr<StateStore> NewMemoryStateStore(std::shared_ptr<MemoryStateStoreData> data) {
  return std::make_unique<MemoryStateStore>(std::move(data));
}

std::unique_ptr<StateStore> NewEmbeddedStateStore(const std::string& data_dir, bool fsync) {
  return std::make_unique<EmbeddedStateStore>(data_dir, fsync);
}

}  // namespace gyre::orchestrator
