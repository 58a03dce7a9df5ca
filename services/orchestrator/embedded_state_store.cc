#include "services/orchestrator/embedded_state_store.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
#include "libs/durable_log/event_log.h"
#include "libs/logging/logger.h"
#include "prometheus/gauge.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

absl::Status ParseInto(absl::string_view bytes, google::protobuf::MessageLite& message,
                       absl::string_view what) {
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("undecodable ", what));
  }
  return absl::OkStatus();
}

class EmbeddedStateStore : public StateStore {
 public:
  EmbeddedStateStore(const std::string& data_dir, bool fsync, prometheus::Registry* metrics)
      : dir_(data_dir + "/log"), fsync_(fsync), metrics_(metrics) {}

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override {
    durable_log::EventLog::Options options;
    options.fsync = fsync_;
    // The engine sizes what it accepts so that every record fits this.
    options.max_record_bytes = static_cast<uint32_t>(limits::kMaxRecordBytes);
    durable_log::EventLog::RecoveryInfo info;
    absl::StatusOr<std::unique_ptr<durable_log::EventLog>> log =
        durable_log::EventLog::Open(dir_, options, &info);
    if (!log.ok()) return log.status();
    for (const std::string& warning : info.warnings) {
      logging::Warn("state store repaired", {{"dir", dir_}, {"repair", warning}});
    }
    ExportRepairs(info);
    if (info.snapshot) {
      v1::EngineSnapshot state;
      if (absl::Status status =
              ParseInto(info.snapshot->state, state,
                        absl::StrCat("snapshot at record ", info.snapshot->index, " in ", dir_));
          !status.ok()) {
        return status;
      }
      if (absl::Status status = restore(std::move(state)); !status.ok()) return status;
    }
    absl::Status replayed = (*log)->Replay(
        info.replay_from, [&](uint64_t index, absl::string_view bytes) -> absl::Status {
          v1::StateRecord record;
          absl::Status status = ParseInto(bytes, record, "state record");
          if (status.ok()) status = apply(record);
          if (status.ok()) return status;
          return absl::Status(status.code(),
                              absl::StrCat(dir_, ": record ", index, ": ", status.message()));
        });
    if (!replayed.ok()) return replayed;
    log_ = *std::move(log);
    logging::Info("state recovered",
                  {{"dir", dir_},
                   {"snapshot_record",
                    info.snapshot ? static_cast<int64_t>(info.snapshot->index) : int64_t{0}},
                   {"records_replayed", static_cast<int64_t>(info.records)},
                   {"torn_tail_bytes", static_cast<int64_t>(info.truncated_bytes)}});
    return absl::OkStatus();
  }

  void Append(absl::Span<const v1::StateRecord> records, Completion done) override {
    if (log_ == nullptr) {
      done(absl::FailedPreconditionError("state store appended to before Load"));
      return;
    }
    if (records.empty()) {
      done(absl::OkStatus());
      return;
    }
    std::vector<std::string> bytes;
    bytes.reserve(records.size());
    for (const v1::StateRecord& record : records) bytes.push_back(record.SerializeAsString());
    log_->AppendAsync(std::move(bytes),
                      [done = std::move(done)](absl::StatusOr<uint64_t> first_index) {
                        done(first_index.status());
                      });
  }

  uint64_t last_position() override { return log_ == nullptr ? 0 : log_->next_index() - 1; }

  absl::Status AwaitDurable(uint64_t position) override {
    if (position == 0) return absl::OkStatus();
    if (log_ == nullptr) return absl::FailedPreconditionError("state store awaited before Load");
    return log_->AwaitDurable(position);
  }

  absl::Status WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) override {
    if (log_ == nullptr) return absl::FailedPreconditionError("state store snapshot before Load");
    if (absl::Status status = log_->AwaitDurable(position); !status.ok()) return status;
    return log_->WriteSnapshot(position, snapshot.SerializeAsString());
  }

 private:
  // What recovery cut and repaired at this start, for an alert: a torn
  // tail after a crash is expected now and then, repeated repairs are a
  // failing disk.
  void ExportRepairs(const durable_log::EventLog::RecoveryInfo& info) {
    if (metrics_ == nullptr) return;
    prometheus::BuildGauge()
        .Name("gyre_store_recovered_torn_tail_bytes")
        .Help(
            "Bytes of a torn or corrupt tail cut from the embedded store's log at the last "
            "start (a write a crash cut short, never acknowledged).")
        .Register(*metrics_)
        .Add({})
        .Set(static_cast<double>(info.truncated_bytes));
    prometheus::BuildGauge()
        .Name("gyre_store_recovery_repairs")
        .Help(
            "Repairs the embedded store made at the last start (torn tail cut, unfinished or "
            "corrupt snapshot set aside); each is logged as \"state store repaired\".")
        .Register(*metrics_)
        .Add({})
        .Set(static_cast<double>(info.warnings.size()));
  }

  const std::string dir_;
  const bool fsync_;
  prometheus::Registry* const metrics_;
  std::unique_ptr<durable_log::EventLog> log_;
};

}  // namespace

std::unique_ptr<StateStore> NewEmbeddedStateStore(const std::string& data_dir, bool fsync,
                                                  prometheus::Registry* metrics) {
  return std::make_unique<EmbeddedStateStore>(data_dir, fsync, metrics);
}

}  // namespace gyre::orchestrator
