#include "services/orchestrator/engine_journal.h"

namespace gyre::orchestrator {

void EngineJournal::Persist(absl::Span<gyre::v1::StateRecord> records,
                            StateStore::Completion done) {
  if (store_ == nullptr || replaying_) {
    if (done) done(absl::OkStatus());
    return;
  }
  // The time the change's events and attempt times carry: replay gives
  // them this one rather than its own.
  const int64_t unix_nanos = absl::ToUnixNanos(now_);
  for (gyre::v1::StateRecord& record : records) record.set_unix_nanos(unix_nanos);
  // Enqueued under the engine lock so the log's order is the order of the
  // changes; the append itself never blocks on I/O. Callers' completions
  // stop the engine on an error themselves, so that wrapping them costs no
  // allocation here.
  store_->Append(
      records, done ? std::move(done) : [this](const absl::Status& status) {
        if (!status.ok()) on_failure_(status);
      });
  if (snapshot_every_records_ > 0 &&
      (records_since_snapshot_ += records.size()) >= snapshot_every_records_) {
    snapshot_requested_ = true;
  }
}

}  // namespace gyre::orchestrator
