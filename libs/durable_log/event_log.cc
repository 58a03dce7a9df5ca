#include "libs/durable_log/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/durable_log/file_io.h"
#include "libs/durable_log/log_recovery.h"
#include "libs/durable_log/mapped_file.h"
#include "libs/durable_log/record_frame.h"
#include "libs/durable_log/segment_reader.h"

namespace gyre::durable_log {

namespace {
std::atomic<SyncObserver> sync_observer{nullptr};
}  // namespace

void SetSyncObserver(SyncObserver observer) { sync_observer.store(observer); }
namespace {

// The log whose writer loop runs on this thread, if any.
thread_local const EventLog* writer_of_this_thread = nullptr;

absl::Status ValidateOptions(const EventLog::Options& options) {
  if (options.segment_bytes < 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment_bytes must be at least 4096, got ", options.segment_bytes));
  }
  if (options.max_batch_bytes == 0) {
    return absl::InvalidArgumentError("max_batch_bytes must be positive");
  }
  if (options.max_record_bytes == 0 || options.max_record_bytes > kMaxRecordPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat("max_record_bytes must be in 1..",
                                                   kMaxRecordPayloadBytes, ", got ",
                                                   options.max_record_bytes));
  }
  if (options.retain_snapshots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("retain_snapshots must be at least 1, got ", options.retain_snapshots));
  }
  return absl::OkStatus();
}

// No step larger than a segment: a small-segment log stays small.
uint64_t PreallocateStep(const EventLog::Options& options) {
  return std::min(options.preallocate_bytes, options.segment_bytes);
}

// The segment to append to after recovery: the last one, or a new one when
// there is none or the log ends before the snapshot does.

absl::StatusOr<ActiveSegment> OpenActiveSegment(const std::string& dir, const RecoveredLog& log,
                                                const EventLog::Options& options,
                                                std::vector<SegmentInfo>* segments,
                                                std::vector<std::string>* warnings) {
  if (!segments->empty() && segments->back().end_index() == log.next_index) {
    return ActiveSegment::Reopen(segments->back(), PreallocateStep(options));
  }
  if (!segments->empty()) {
    warnings->push_back(absl::StrCat("the log ended at record ", segments->back().end_index() - 1,
                                     ", before snapshot ", log.next_index - 1,
                                     "; appends continue in a new segment"));
  }
  absl::StatusOr<ActiveSegment> active =
      ActiveSegment::Create(dir, log.next_index, options.fsync, PreallocateStep(options));
  if (active.ok()) segments->push_back(SegmentInfo{log.next_index, 0, 0, active->path()});
  return active;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Open(const std::string& dir,
                                                         const Options& options,
                                                         RecoveryInfo* recovery) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  if (absl::Status status = EnsureDirectory(dir, options.create_if_missing); !status.ok()) {
    return status;
  }
  absl::StatusOr<DirectoryLock> lock = DirectoryLock::Acquire(dir);
  if (!lock.ok()) return lock.status();

  const SnapshotStore snapshots(dir, options.fsync);
  absl::StatusOr<RecoveredLog> recovered =
      RecoverLog(dir, snapshots, RecoveryPolicy{options.fsync, options.max_batch_bytes});
  if (!recovered.ok()) return recovered.status();

  std::vector<SegmentInfo> segments = recovered->segments;
  RecoveryInfo info;
  info.warnings = std::move(recovered->warnings);
  absl::StatusOr<ActiveSegment> active =
      OpenActiveSegment(dir, *recovered, options, &segments, &info.warnings);
  if (!active.ok()) return active.status();

  const uint64_t snapshot_index = recovered->snapshot ? recovered->snapshot->index : 0;
  info.snapshot = std::move(recovered->snapshot);
  info.replay_from = recovered->replay_from;
  info.next_index = recovered->next_index;
  info.records = recovered->next_index - recovered->replay_from;
  info.segments = segments.size();
  info.truncated_bytes = recovered->truncated_bytes;
  if (recovery != nullptr) *recovery = std::move(info);

  return std::unique_ptr<EventLog>(new EventLog(dir, options, *std::move(lock), std::move(segments),
                                                *std::move(active), recovered->next_index,
                                                snapshot_index));
}

EventLog::EventLog(std::string dir, Options options, DirectoryLock lock,
                   std::vector<SegmentInfo> segments, ActiveSegment active, uint64_t next_index,
                   uint64_t snapshot_index)
    : dir_(std::move(dir)),
      options_(options),
      lock_(std::move(lock)),
      snapshots_(dir_, options.fsync),
      next_index_(next_index),
      durable_end_(next_index),
      segments_(std::move(segments)),
      snapshot_index_(snapshot_index),
      active_(std::move(active)),
      writer_([this] { WriterLoop(); }) {}

EventLog::~EventLog() { Close().IgnoreError(); }

absl::Status EventLog::Close() {
  if (OnWriterThread()) {
    return absl::FailedPreconditionError(
        "EventLog::Close called from a completion callback would deadlock");
  }
  absl::MutexLock close_lock(&close_mutex_);
  {
    absl::MutexLock lock(&mutex_);
    closing_ = true;
  }
  if (writer_.joinable()) {
    writer_.join();
    // A cleanly closed log leaves no preallocated zeros behind. Best
    // effort: recovery drops them anyway.
    active_.Seal(options_.fsync).IgnoreError();
  }
  absl::MutexLock lock(&mutex_);
  return failure_;
}

bool EventLog::OnWriterThread() const { return writer_of_this_thread == this; }

absl::Status EventLog::ValidateRecords(const std::vector<std::string>& records) const {
  if (records.empty()) return absl::InvalidArgumentError("cannot append an empty batch");
  for (const std::string& record : records) {
    if (record.size() > options_.max_record_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("record of ", record.size(),
                                                     " bytes exceeds max_record_bytes (",
                                                     options_.max_record_bytes, ")"));
    }
  }
  return absl::OkStatus();
}

void EventLog::AppendAsync(std::vector<std::string> records, AppendCallback done) {
  absl::Status rejected = ValidateRecords(records);
  if (rejected.ok()) {
    uint64_t frame_bytes = 0;
    for (const std::string& record : records) frame_bytes += kRecordHeaderBytes + record.size();
    absl::MutexLock lock(&mutex_);
    if (!failure_.ok()) {
      rejected = failure_;
    } else if (closing_) {
      rejected = absl::FailedPreconditionError(absl::StrCat("event log ", dir_, " is closed"));
    } else {
      const uint64_t first_index = next_index_;
      next_index_ += records.size();
      queue_.push_back(
          PendingAppend{std::move(records), first_index, frame_bytes, std::move(done)});
      return;
    }
  }
  done(rejected);
}

absl::StatusOr<uint64_t> EventLog::AppendBatch(std::vector<std::string> records) {
  if (OnWriterThread()) {
    return absl::FailedPreconditionError(
        "a blocking EventLog append from a completion callback would deadlock; use AppendAsync");
  }
  absl::Notification durable;
  absl::StatusOr<uint64_t> result;
  AppendAsync(std::move(records), [&](absl::StatusOr<uint64_t> first_index) {
    result = std::move(first_index);
    durable.Notify();
  });
  durable.WaitForNotification();
  return result;
}

absl::StatusOr<uint64_t> EventLog::Append(std::string record) {
  std::vector<std::string> records;
  records.push_back(std::move(record));
  return AppendBatch(std::move(records));
}

uint64_t EventLog::next_index() const {
  absl::MutexLock lock(&mutex_);
  return next_index_;
}

absl::Status EventLog::AwaitDurable(uint64_t index) const {
  if (OnWriterThread()) {
    return absl::FailedPreconditionError(
        "EventLog::AwaitDurable called from a completion callback would deadlock");
  }
  absl::MutexLock lock(&mutex_);
  auto settled = [this, index]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    // Close() writes everything queued first, so closing alone never ends
    // the wait: the record either becomes durable or the log fails.
    return durable_end_ > index || !failure_.ok() || index >= next_index_;
  };
  mutex_.Await(absl::Condition(&settled));
  if (durable_end_ > index) return absl::OkStatus();
  if (!failure_.ok()) return failure_;
  return absl::FailedPreconditionError(absl::StrCat(
      "event log ", dir_, ": record ", index, " was never appended (next is ", next_index_, ")"));
}

uint64_t EventLog::last_durable_index() const {
  absl::MutexLock lock(&mutex_);
  return durable_end_ - 1;
}

EventLog::Stats EventLog::stats() const {
  absl::MutexLock lock(&mutex_);
  return stats_;
}

void EventLog::WriterLoop() {
  writer_of_this_thread = this;
  while (true) {
    std::vector<PendingAppend> group;
    absl::Status status;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return closing_ || !queue_.empty();
      };
      mutex_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // closing, and everything is completed
      group = TakeGroup();
      status = failure_;
    }
    // After a failure nothing more is written: the queue is failed instead.
    if (status.ok()) status = WriteGroup(group);
    if (!status.ok()) {
      absl::MutexLock lock(&mutex_);
      if (failure_.ok()) {
        failure_ = absl::Status(
            status.code(), absl::StrCat("event log ", dir_,
                                        " stopped accepting appends after: ", status.message()));
      }
      status = failure_;
    }
    for (PendingAppend& append : group) {
      if (status.ok()) {
        append.done(append.first_index);
      } else {
        append.done(status);
      }
    }
  }
}

std::vector<EventLog::PendingAppend> EventLog::TakeGroup() {
  std::vector<PendingAppend> group;
  uint64_t bytes = 0;
  while (!queue_.empty() &&
         (group.empty() || bytes + queue_.front().frame_bytes <= options_.max_batch_bytes)) {
    bytes += queue_.front().frame_bytes;
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return group;
}

absl::Status EventLog::WriteGroup(const std::vector<PendingAppend>& group) {
  frames_.clear();
  uint64_t records = 0;
  for (const PendingAppend& append : group) {
    for (size_t i = 0; i < append.records.size(); ++i) {
      AppendRecordFrame(append.records[i], i + 1 < append.records.size(), &frames_);
    }
    records += append.records.size();
  }
  const uint64_t first_index = group.front().first_index;
  if (absl::Status status = RotateIfFull(frames_.size(), first_index); !status.ok()) {
    return status;
  }
  if (absl::Status status = active_.Append(frames_); !status.ok()) return status;
  if (options_.fsync) {
    const SyncObserver observer = sync_observer.load(std::memory_order_relaxed);
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status status = active_.Sync(); !status.ok()) return status;
    if (observer != nullptr) {
      observer(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  const uint64_t bytes = frames_.size();
  // Do not keep a huge buffer around after a rare huge append.
  if (frames_.capacity() > 4 * options_.max_batch_bytes) std::string().swap(frames_);

  absl::MutexLock lock(&mutex_);
  SegmentInfo& segment = segments_.back();
  segment.records += records;
  segment.bytes = active_.bytes();
  durable_end_ = first_index + records;
  stats_.records_appended += records;
  stats_.group_commits++;
  if (options_.fsync) stats_.syncs++;
  stats_.bytes_written += bytes;
  stats_.largest_group_commit_records = std::max(stats_.largest_group_commit_records, records);
  return absl::OkStatus();
}

absl::Status EventLog::RotateIfFull(uint64_t group_bytes, uint64_t first_index) {
  // A group never spans segments, so only the last segment can be torn.
  if (active_.bytes() == 0 || active_.bytes() + group_bytes <= options_.segment_bytes) {
    return absl::OkStatus();
  }
  // The current segment's records are already durable: every group is
  // synced before the next one is taken. Its preallocated tail is cut
  // first, so only the last segment can ever end in zeros.
  if (absl::Status status = active_.Seal(options_.fsync); !status.ok()) return status;
  absl::StatusOr<ActiveSegment> next =
      ActiveSegment::Create(dir_, first_index, options_.fsync, PreallocateStep(options_));
  if (!next.ok()) return next.status();
  active_ = *std::move(next);
  absl::MutexLock lock(&mutex_);
  segments_.push_back(SegmentInfo{first_index, 0, 0, active_.path()});
  stats_.segments_created++;
  return absl::OkStatus();
}

absl::Status EventLog::Replay(uint64_t from_index, RecordVisitor visit) const {
  absl::ReaderMutexLock files(&files_mutex_);
  std::vector<SegmentInfo> segments;
  uint64_t end_index;
  {
    absl::MutexLock lock(&mutex_);
    segments = segments_;
    end_index = durable_end_;
  }
  const uint64_t first_index = segments.front().first_index;
  if (from_index < first_index) {
    return absl::OutOfRangeError(absl::StrCat(
        "cannot replay ", dir_, " from record ", from_index, ": the log starts at record ",
        first_index, first_index > 1 ? " (older records are in a snapshot)" : ""));
  }
  if (from_index > end_index) {
    return absl::OutOfRangeError(absl::StrCat("cannot replay ", dir_, " from record ", from_index,
                                              ": the last durable record is ", end_index - 1));
  }
  for (const SegmentInfo& segment : segments) {
    if (segment.end_index() <= from_index || segment.records == 0) continue;
    if (segment.first_index >= end_index) break;
    if (absl::Status status = ReplaySegment(segment, from_index, end_index, visit); !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status EventLog::ReplaySegment(const SegmentInfo& segment, uint64_t from_index,
                                     uint64_t end_index, RecordVisitor visit) const {
  absl::StatusOr<UniqueFd> fd = OpenFile(segment.path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<MappedFile> mapped = MappedFile::Map(fd->get(), segment.bytes, segment.path);
  if (!mapped.ok()) return mapped.status();
  // Records before `from_index` are only skipped: no checksum to compute.
  SegmentReader reader(mapped->data(), /*verify_checksum=*/segment.first_index >= from_index);
  const uint64_t stop = std::min(segment.end_index(), end_index);
  absl::string_view payload;
  for (uint64_t index = segment.first_index; index < stop; ++index) {
    if (index == from_index) reader.set_verify_checksum(true);
    if (!reader.Next(&payload)) {
      return absl::DataLossError(absl::StrCat("record ", index, " in ", segment.path, " at offset ",
                                              reader.offset(), " no longer reads back (",
                                              FrameStateName(reader.state()),
                                              "): the file changed after it was verified"));
    }
    if (index < from_index) continue;
    if (absl::Status status = visit(index, payload); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status EventLog::WriteSnapshot(uint64_t up_to_index, absl::string_view state) {
  absl::WriterMutexLock files(&files_mutex_);
  {
    absl::MutexLock lock(&mutex_);
    if (!failure_.ok()) return failure_;
    if (up_to_index == 0 || up_to_index >= durable_end_) {
      return absl::OutOfRangeError(absl::StrCat("cannot snapshot ", dir_, " up to record ",
                                                up_to_index, ": the last durable record is ",
                                                durable_end_ - 1));
    }
    if (up_to_index <= snapshot_index_) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot snapshot ", dir_, " up to record ", up_to_index,
                       ": not newer than the last snapshot (record ", snapshot_index_, ")"));
    }
  }
  if (absl::Status status = snapshots_.Write(up_to_index, state); !status.ok()) return status;
  {
    absl::MutexLock lock(&mutex_);
    snapshot_index_ = up_to_index;
    stats_.snapshots_written++;
  }
  return Compact();
}

absl::Status EventLog::Compact() {
  absl::StatusOr<std::vector<uint64_t>> indexes = snapshots_.List();
  if (!indexes.ok()) return indexes.status();
  const size_t retain = static_cast<size_t>(options_.retain_snapshots);
  if (indexes->size() < retain) return absl::OkStatus();
  // Everything up to the oldest snapshot kept is no longer needed.
  const uint64_t covered = (*indexes)[indexes->size() - retain];

  std::vector<std::string> doomed;
  {
    absl::MutexLock lock(&mutex_);
    // Never the last (active) segment; a segment goes once its successor
    // starts at or before the first record the snapshot does not cover.
    while (segments_.size() > 1 && segments_[1].first_index <= covered + 1) {
      doomed.push_back(segments_.front().path);
      segments_.erase(segments_.begin());
    }
    stats_.segments_deleted += doomed.size();
  }
  // Oldest first, so a crash in between leaves a contiguous log.
  for (const std::string& path : doomed) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("delete compacted segment", path, errno);
    }
  }
  bool removed_snapshot = false;
  for (uint64_t index : *indexes) {
    if (index >= covered) break;
    if (absl::Status status = snapshots_.Remove(index); !status.ok()) return status;
    removed_snapshot = true;
  }
  if (options_.fsync && (!doomed.empty() || removed_snapshot)) return SyncDirectory(dir_);
  return absl::OkStatus();
}

}  // namespace gyre::durable_log
