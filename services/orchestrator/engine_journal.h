#ifndef GYRE_SERVICES_ORCHESTRATOR_ENGINE_JOURNAL_H_
#define GYRE_SERVICES_ORCHESTRATOR_ENGINE_JOURNAL_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gyre/v1/state_record.pb.h"
#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator {

// Where the engine's changes are written down, and the time they carry.
// Owns: the appends to the StateStore (in the order of the changes), the
// time of the change being made (every event, attempt time and record of
// one change carries it, so that replay rebuilds the same history), whether
// history is being replayed (then nothing is appended), and when a snapshot
// is due. Must not touch: engine state; it knows records, not what they
// mean. Not thread-safe: used under the engine lock.
class EngineJournal {
 public:
  // `store` may be null (state kept in memory only: unit tests).
  // `on_failure` runs when an append fails, on whatever thread the store
  // completes it (it may be under the engine lock).
  EngineJournal(StateStore* store, uint64_t snapshot_every_records,
                std::function<void(const absl::Status&)> on_failure)
      : store_(store),
        snapshot_every_records_(snapshot_every_records),
        on_failure_(std::move(on_failure)) {}

  StateStore* store() const { return store_; }

  // The time of the change being made: set when a section starts (live,
  // from the clock), or from each record as it is replayed.
  absl::Time now() const { return now_; }
  void set_now(absl::Time now) { now_ = now; }

  // While history is replayed, changes are applied but not appended again.
  bool replaying() const { return replaying_; }
  void set_replaying(bool replaying) { replaying_ = replaying; }

  // Queues `record` for durability (never blocks), stamped with now();
  // `done` runs once it is durable (its error stops the engine: callers'
  // completions call on_failure themselves, see WorkflowEngine).
  void Persist(gyre::v1::StateRecord& record, StateStore::Completion done = nullptr) {
    Persist(absl::MakeSpan(&record, 1), std::move(done));
  }
  void Persist(absl::Span<gyre::v1::StateRecord> records, StateStore::Completion done);

  // For one critical section that appends several times (a submission and
  // the leases dispatch gives it; results and the next leases): the store
  // commits none of them before the section ends, so they share one commit
  // rather than the writer taking the first alone (StateStore::HoldCommits).
  class CommitHold {
   public:
    explicit CommitHold(const EngineJournal& journal)
        : store_(journal.replaying_ ? nullptr : journal.store_) {
      if (store_ != nullptr) store_->HoldCommits();
    }
    ~CommitHold() {
      if (store_ != nullptr) store_->ReleaseCommits();
    }
    CommitHold(const CommitHold&) = delete;
    CommitHold& operator=(const CommitHold&) = delete;

   private:
    StateStore* const store_;
  };

  // An append failed: the engine must stop (see WorkflowEngine::FailStop).
  void Fail(const absl::Status& status) const { on_failure_(status); }

  // Whether enough records were appended since the last snapshot that
  // another is due; TakeSnapshotRequest clears it.
  bool snapshot_requested() const { return snapshot_requested_; }
  // Asks for a snapshot now (retention forgot executions: the next
  // snapshot lets the store drop what it kept of them). No-op with
  // periodic snapshots off.
  void RequestSnapshot() {
    if (snapshot_every_records_ > 0) snapshot_requested_ = true;
  }
  void TakeSnapshotRequest() {
    snapshot_requested_ = false;
    records_since_snapshot_ = 0;
  }

 private:
  StateStore* const store_;
  const uint64_t snapshot_every_records_;
  const std::function<void(const absl::Status&)> on_failure_;
  absl::Time now_ = absl::UnixEpoch();
  bool replaying_ = false;
  uint64_t records_since_snapshot_ = 0;
  bool snapshot_requested_ = false;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ENGINE_JOURNAL_H_
