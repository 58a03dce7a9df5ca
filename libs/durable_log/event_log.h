#ifndef GYRE_LIBS_DURABLE_LOG_EVENT_LOG_H_
#define GYRE_LIBS_DURABLE_LOG_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "libs/durable_log/active_segment.h"
#include "libs/durable_log/directory_lock.h"
#include "libs/durable_log/segment_info.h"
#include "libs/durable_log/snapshot_store.h"

namespace gyre::durable_log {

// Receives the duration, in seconds, of every group commit's fdatasync by any
// EventLog in the process (the orchestrator's gyre_store_sync_seconds). A
// process-wide hook because the log sits below the metrics layer and behind
// the state store interface. nullptr (the default) observes nothing; the
// observer runs on a log's writer thread and must be cheap and thread-safe.
using SyncObserver = void (*)(double seconds);
void SetSyncObserver(SyncObserver observer);

// The embedded store's durable foundation: an append-only log of opaque
// records in a directory, with group commit and snapshots.
//
// Records get consecutive 64-bit indexes from 1 on, kept across reopen. They
// live in segment files ("segment-<first index>.log", a new one once the
// current one reaches Options::segment_bytes); see record_frame.h for the
// framing. Any number of threads append; one writer thread takes everything
// queued, writes it with one write(2), makes it durable with one fdatasync(2)
// and only then completes those appends. Acknowledged means durable: a record
// whose append completed OK survives SIGKILL and power loss. The records of
// one append (AppendBatch) are atomic: after a crash all or none of them are
// there.
//
// Open() verifies every record. A torn tail of the last segment (a write cut
// short by a crash, never acknowledged) is cut off and reported in
// RecoveryInfo::warnings; corruption anywhere else is kDataLoss naming the
// file and offset, never skipped. WriteSnapshot() stores the caller's state
// up to an index so that Open() hands it back and replay starts after it,
// and deletes the segments (and snapshots) no longer needed.
//
// Fail-stop: after a write or sync error every later append fails with that
// error, so the log never has a hole. An append that failed may or may not be
// found after a restart; one that succeeded is always found.
//
// Thread-safety: every method may be called from any thread, except that
// completion callbacks run on the writer thread and must not block on the log
// (AppendAsync from a callback is fine; Append, AppendBatch and Close there
// fail with kFailedPrecondition rather than deadlock).
class EventLog {
 public:
  struct Options {
    // fdatasync each group commit. Off only for tests and benchmarks: an
    // acknowledged record is then merely in the page cache.
    bool fsync = true;
    // A segment is sealed and a new one started once it holds this much.
    uint64_t segment_bytes = 64ull << 20;
    // The active segment grows ahead of its records in steps of this size,
    // so that a group commit's fdatasync rarely has to journal a new file
    // size (see ActiveSegment). 0: grow with every write.
    uint64_t preallocate_bytes = 4ull << 20;
    // The most one group commit writes (an append larger than this is
    // written alone). Also how close to the end of the last segment a bad
    // record must be for recovery to treat it as a torn write.
    uint64_t max_batch_bytes = 1ull << 20;
    // Appends with a larger record fail with kInvalidArgument.
    uint32_t max_record_bytes = 64u << 20;
    // Snapshots kept. With 2 (the default) a corrupt newest snapshot can
    // fall back to the previous one, because segments are deleted only once
    // the oldest kept snapshot covers them; with 1 they go as soon as the
    // newest one does.
    int retain_snapshots = 2;
    // Create the directory (and its parents) when missing; otherwise a
    // missing directory is kNotFound.
    bool create_if_missing = true;
  };

  // What Open() found.
  struct RecoveryInfo {
    std::optional<Snapshot> snapshot;  // newest valid snapshot, if any
    uint64_t replay_from = 1;          // first index the snapshot does not cover
    uint64_t next_index = 1;           // index of the next record appended
    uint64_t records = 0;              // records to replay: next_index - replay_from
    uint64_t segments = 0;
    uint64_t truncated_bytes = 0;       // torn tail cut from the last segment
    std::vector<std::string> warnings;  // repairs made, for the operator's log
  };

  // Counters since Open(), for tests, benchmarks and metrics.
  struct Stats {
    uint64_t records_appended = 0;  // durable
    uint64_t group_commits = 0;     // write(2)s of queued appends
    uint64_t syncs = 0;             // fdatasync(2)s of segment data
    uint64_t bytes_written = 0;
    uint64_t largest_group_commit_records = 0;
    uint64_t segments_created = 0;
    uint64_t snapshots_written = 0;
    uint64_t segments_deleted = 0;
  };

  // Gets the index of the append's first record once it is durable, or the
  // error that prevented it.
  using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<uint64_t> first_index)>;
  // Gets each record replayed; the view is valid during the call only. An
  // error stops the replay and is returned by Replay().
  using RecordVisitor = absl::FunctionRef<absl::Status(uint64_t index, absl::string_view record)>;

  // Opens the log in `dir`, creating it if needed, and recovers it (see the
  // class comment). `recovery`, if given, receives what was found, including
  // the snapshot to start from; replay the rest with Replay(replay_from, ...).
  static absl::StatusOr<std::unique_ptr<EventLog>> Open(const std::string& dir,
                                                        const Options& options,
                                                        RecoveryInfo* recovery = nullptr);

  // Close()s, completing every pending append.
  ~EventLog();

  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Append and wait until durable; return the (first) record's index.
  absl::StatusOr<uint64_t> Append(std::string record);
  absl::StatusOr<uint64_t> AppendBatch(std::vector<std::string> records);

  // Queues the records and returns at once; never blocks on I/O. `done` runs
  // exactly once: on the writer thread after the records are durable (or
  // failed), or right here on the caller's thread if the log is closed or
  // stopped or the records are invalid (empty batch, record too large).
  // Completions run in index order.
  void AppendAsync(std::vector<std::string> records, AppendCallback done);

  // Calls `visit` for each durable record from `from_index` on, in order,
  // re-verifying each. kOutOfRange if `from_index` was compacted into a
  // snapshot or lies past the end. Safe while appends go on: it stops at the
  // records durable when it started.
  absl::Status Replay(uint64_t from_index, RecordVisitor visit) const;

  // Durably stores `state`, the caller's state after applying every record up
  // to and including `up_to_index` (which must be durable and newer than the
  // last snapshot), then deletes the segments and snapshots no longer needed
  // (see Options::retain_snapshots). The I/O runs on the calling thread;
  // appends go on meanwhile.
  absl::Status WriteSnapshot(uint64_t up_to_index, absl::string_view state);

  // Stops accepting appends, writes and syncs everything queued, completes
  // every pending callback and stops the writer thread. Returns the error
  // that stopped the log, if any. Idempotent.
  absl::Status Close();

  // Waits until every record up to and including `index` is durable; the
  // log's failure if it stopped first, kFailedPrecondition if `index` was
  // never appended.
  absl::Status AwaitDurable(uint64_t index) const;

  // Index the next appended record will get.
  uint64_t next_index() const;
  // Index of the last durable record (0 when none).
  uint64_t last_durable_index() const;
  Stats stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct PendingAppend {
    std::vector<std::string> records;
    uint64_t first_index = 0;
    uint64_t frame_bytes = 0;
    AppendCallback done;
  };

  EventLog(std::string dir, Options options, DirectoryLock lock, std::vector<SegmentInfo> segments,
           ActiveSegment active, uint64_t next_index, uint64_t snapshot_index);

  absl::Status ValidateRecords(const std::vector<std::string>& records) const;
  bool OnWriterThread() const;

  // Writer thread.
  void WriterLoop();
  std::vector<PendingAppend> TakeGroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status WriteGroup(const std::vector<PendingAppend>& group);
  absl::Status RotateIfFull(uint64_t group_bytes, uint64_t first_index);

  // Deletes what the snapshots kept no longer need.
  absl::Status Compact();
  absl::Status ReplaySegment(const SegmentInfo& segment, uint64_t from_index, uint64_t end_index,
                             RecordVisitor visit) const;

  const std::string dir_;
  const Options options_;
  const DirectoryLock lock_;
  const SnapshotStore snapshots_;

  // Held shared by Replay and exclusively by WriteSnapshot, so segments are
  // never deleted under a replay. Held across their I/O on purpose: neither
  // is on the append path, and appends never take it.
  mutable absl::Mutex files_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);

  mutable absl::Mutex mutex_;
  std::deque<PendingAppend> queue_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_index_ ABSL_GUARDED_BY(mutex_);
  uint64_t durable_end_ ABSL_GUARDED_BY(mutex_);  // one past the last durable index
  // Durable extent of every segment; the last is the one being appended to.
  std::vector<SegmentInfo> segments_ ABSL_GUARDED_BY(mutex_);
  uint64_t snapshot_index_ ABSL_GUARDED_BY(mutex_);
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
  bool closing_ ABSL_GUARDED_BY(mutex_) = false;
  Stats stats_ ABSL_GUARDED_BY(mutex_);

  // Owned by the writer thread alone once it runs.
  ActiveSegment active_;
  std::string frames_;

  absl::Mutex close_mutex_;  // serializes Close() calls around the join
  std::thread writer_;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_EVENT_LOG_H_
