#include "libs/durable_log/log_recovery.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/durable_log/file_io.h"
#include "libs/durable_log/mapped_file.h"
#include "libs/durable_log/segment_reader.h"

namespace gyre::durable_log {
namespace {

// One segment as read from disk.
struct ScannedSegment {
  SegmentInfo info;  // records and bytes up to the first bad frame
  uint64_t file_bytes = 0;
  // Written bytes after the last whole batch (last segment only), not
  // counting the zeros after them.
  uint64_t torn_bytes = 0;
  uint64_t torn_records = 0;                   // whole records among them, of an incomplete batch
  FrameState torn_state = FrameState::kValid;  // the bad frame, if any
};

// Where the written bytes of a segment end: the writer preallocates zeros
// ahead of its records, so the file usually ends in a run of them.
size_t WrittenEnd(absl::string_view data) {
  return data.find_last_not_of('\0') + 1;  // npos + 1 == 0: all zeros
}

// Whether the bad frame where `reader` stopped can be the last write, cut
// short by a crash before it was synced (and so never acknowledged). The
// writer preallocates zeros ahead of its records, so "the end" is where the
// written bytes end, before any run of zeros.
bool IsTornTail(const SegmentReader& reader, absl::string_view data, uint64_t window) {
  const size_t written = WrittenEnd(data);
  return reader.state() == FrameState::kIncomplete ||
         reader.offset() + reader.bad_frame_bytes() >= written ||
         written <= reader.offset() + window;
}

// Reads one segment's frames. Checksums are verified from record
// `verify_from` on: the records before it are covered by the snapshot, so
// they are only delimited (a bad length there still derails the walk into
// a frame that fails verification later).
absl::StatusOr<ScannedSegment> ScanSegment(const std::string& path, uint64_t first_index, bool last,
                                           uint64_t torn_tail_window, uint64_t verify_from) {
  absl::StatusOr<UniqueFd> fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), path);
  if (!size.ok()) return size.status();
  absl::StatusOr<MappedFile> mapped = MappedFile::Map(fd->get(), *size, path);
  if (!mapped.ok()) return mapped.status();

  ScannedSegment scan;
  scan.info.first_index = first_index;
  scan.info.path = path;
  scan.file_bytes = *size;
  SegmentReader reader(mapped->data(), /*verify_checksum=*/first_index >= verify_from);
  uint64_t records_read = 0;
  for (absl::string_view payload; reader.Next(&payload);) {
    if (++records_read + first_index == verify_from) reader.set_verify_checksum(true);
  }
  // Only whole batches count: a batch cut in two by a crash was never
  // acknowledged, and replaying half of it would break its atomicity.
  scan.info.records = reader.batch_end_records();
  scan.info.bytes = reader.batch_end_offset();
  if (reader.at_end() && !reader.continues()) return scan;

  if (reader.at_end()) {  // whole records, but the last batch is incomplete
    if (!last) {
      return absl::DataLossError(absl::StrCat("sealed segment ", path,
                                              " ends inside a batch (after record ",
                                              first_index + records_read - 1, ")"));
    }
  } else {
    const std::string where =
        absl::StrCat(path, " at offset ", reader.offset(), " (record ", first_index + records_read,
                     "): ", FrameStateName(reader.state()));
    if (!last) {
      return absl::DataLossError(absl::StrCat(
          "corrupt record in sealed segment ", where,
          ". A crash cannot tear a sealed segment, so the records after it would be lost; "
          "refusing to open. Restore the file from a backup, or move it and the segments after "
          "it aside to accept the loss."));
    }
    if (!IsTornTail(reader, mapped->data(), torn_tail_window)) {
      return absl::DataLossError(absl::StrCat(
          "corrupt record in the last segment ", where, ", ",
          WrittenEnd(mapped->data()) - reader.offset(),
          " bytes before the end of its records: farther back than one group-commit write (",
          torn_tail_window,
          " bytes), so it is not a torn tail and the records after it were acknowledged; "
          "refusing to open"));
    }
    scan.torn_state = reader.state();
  }
  scan.torn_bytes = std::max(WrittenEnd(mapped->data()), scan.info.bytes) - scan.info.bytes;
  scan.torn_records = records_read - scan.info.records;
  return scan;
}

absl::Status CutTornTail(const ScannedSegment& segment, bool sync) {
  absl::StatusOr<UniqueFd> fd = OpenFile(segment.info.path, O_WRONLY);
  if (!fd.ok()) return fd.status();
  if (ftruncate(fd->get(), static_cast<off_t>(segment.info.bytes)) != 0) {
    return ErrnoError("cut the torn tail of", segment.info.path, errno);
  }
  return sync ? SyncFile(fd->get(), segment.info.path) : absl::OkStatus();
}

// Segment files of `dir` in index order, not yet read.
absl::StatusOr<std::vector<SegmentInfo>> ListSegments(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir);
  if (!names.ok()) return names.status();
  std::vector<SegmentInfo> segments;
  for (const std::string& name : *names) {
    if (std::optional<uint64_t> first = ParseSegmentFileName(name)) {
      segments.push_back(SegmentInfo{*first, 0, 0, absl::StrCat(dir, "/", name)});
    }
  }
  std::sort(segments.begin(), segments.end(), [](const SegmentInfo& a, const SegmentInfo& b) {
    return a.first_index < b.first_index;
  });
  return segments;
}

// Newest snapshot that verifies; the newer ones that did not are returned
// in `corrupt` (index and why).
absl::StatusOr<std::optional<Snapshot>> LoadNewestSnapshot(
    const SnapshotStore& snapshots, std::vector<std::pair<uint64_t, absl::Status>>* corrupt) {
  absl::StatusOr<std::vector<uint64_t>> indexes = snapshots.List();
  if (!indexes.ok()) return indexes.status();
  for (auto it = indexes->rbegin(); it != indexes->rend(); ++it) {
    absl::StatusOr<Snapshot> snapshot = snapshots.Load(*it);
    if (snapshot.ok()) return std::optional<Snapshot>(*std::move(snapshot));
    if (!absl::IsDataLoss(snapshot.status())) return snapshot.status();
    corrupt->emplace_back(*it, snapshot.status());
  }
  return std::optional<Snapshot>();
}

// Checks that the segments hold every record from `replay_from` on, with no
// gap a snapshot does not cover.
absl::Status CheckContiguous(const std::vector<SegmentInfo>& segments, uint64_t replay_from) {
  if (!segments.empty() && segments.front().first_index > replay_from) {
    return absl::DataLossError(absl::StrCat(
        "records ", replay_from, "..", segments.front().first_index - 1,
        " are missing: the oldest segment is ", segments.front().path,
        replay_from == 1 ? " and there is no snapshot"
                         : absl::StrCat(" and the newest valid snapshot covers records up to ",
                                        replay_from - 1)));
  }
  for (size_t i = 1; i < segments.size(); ++i) {
    const SegmentInfo& previous = segments[i - 1];
    const SegmentInfo& next = segments[i];
    // A gap below replay_from is covered by the snapshot (a log that lost its
    // unsynced tail after a snapshot was taken with fsync off).
    const bool gap_covered =
        next.first_index > previous.end_index() && next.first_index <= replay_from;
    if (next.first_index != previous.end_index() && !gap_covered) {
      return absl::DataLossError(absl::StrCat("segments do not line up: ", previous.path,
                                              " ends before record ", previous.end_index(),
                                              " but the next segment is ", next.path));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecoveredLog> RecoverLog(const std::string& dir, const SnapshotStore& snapshots,
                                        const RecoveryPolicy& policy) {
  RecoveredLog log;
  std::vector<std::string> removed;
  if (absl::Status status = snapshots.RemoveTemporaryFiles(&removed); !status.ok()) return status;
  for (const std::string& path : removed) {
    log.warnings.push_back(absl::StrCat("deleted unfinished snapshot ", path));
  }

  std::vector<std::pair<uint64_t, absl::Status>> corrupt_snapshots;
  absl::StatusOr<std::optional<Snapshot>> snapshot =
      LoadNewestSnapshot(snapshots, &corrupt_snapshots);
  if (!snapshot.ok()) return snapshot.status();
  log.snapshot = *std::move(snapshot);
  log.replay_from = log.snapshot ? log.snapshot->index + 1 : 1;

  absl::StatusOr<std::vector<SegmentInfo>> listed = ListSegments(dir);
  if (!listed.ok()) return listed.status();
  std::vector<ScannedSegment> scanned;
  for (size_t i = 0; i < listed->size(); ++i) {
    absl::StatusOr<ScannedSegment> scan =
        ScanSegment((*listed)[i].path, (*listed)[i].first_index, i + 1 == listed->size(),
                    policy.torn_tail_window_bytes, log.replay_from);
    if (!scan.ok()) return scan.status();
    log.segments.push_back(scan->info);
    scanned.push_back(*std::move(scan));
  }
  const uint64_t log_end = log.segments.empty() ? 1 : log.segments.back().end_index();
  // A corrupt snapshot is survivable only while the log still holds every
  // record it covered beyond the older snapshot (or the start) used instead.
  for (const auto& [index, why] : corrupt_snapshots) {
    if (log.segments.empty() || log.segments.front().first_index > log.replay_from ||
        log_end <= index) {
      return absl::DataLossError(absl::StrCat(
          why.message(), "; neither an older snapshot nor the log segments hold records ",
          log.replay_from, "..", index, " to recover from instead"));
    }
  }
  if (absl::Status status = CheckContiguous(log.segments, log.replay_from); !status.ok()) {
    return status;
  }
  log.next_index = std::max(log_end, log.replay_from);

  // Everything checks out: now repair.
  // Zeros alone are the space the writer preallocated (or a last write none
  // of which reached the disk): cut, but nothing was lost, nothing to report.
  if (!scanned.empty() && scanned.back().file_bytes > scanned.back().info.bytes) {
    if (absl::Status status = CutTornTail(scanned.back(), policy.sync); !status.ok()) {
      return status;
    }
  }
  if (!scanned.empty() && scanned.back().torn_bytes > 0) {
    const ScannedSegment& last = scanned.back();
    log.truncated_bytes = last.torn_bytes;
    log.warnings.push_back(absl::StrCat(
        "cut a torn tail of ", last.torn_bytes, " bytes from ", last.info.path, " at offset ",
        last.info.bytes, " (",
        last.torn_state == FrameState::kValid ? "" : FrameStateName(last.torn_state),
        last.torn_state == FrameState::kValid || last.torn_records == 0 ? "" : ", ",
        last.torn_records == 0 ? ""
                               : absl::StrCat(last.torn_records, " records of an incomplete batch"),
        "): a write cut short by a crash, never acknowledged"));
  }
  for (const auto& [index, why] : corrupt_snapshots) {
    if (absl::Status status = snapshots.Quarantine(index); !status.ok()) return status;
    log.warnings.push_back(absl::StrCat(
        why.message(), "; renamed it to ", snapshots.PathFor(index), ".corrupt and recovered from ",
        log.snapshot ? absl::StrCat("snapshot ", snapshots.PathFor(log.snapshot->index))
                     : std::string("the start of the log"),
        " instead"));
  }
  return log;
}

}  // namespace gyre::durable_log
