#ifndef GYRE_LIBS_DURABLE_LOG_ACTIVE_SEGMENT_H_
#define GYRE_LIBS_DURABLE_LOG_ACTIVE_SEGMENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/durable_log/segment_info.h"
#include "libs/durable_log/unique_fd.h"

namespace gyre::durable_log {

// The segment file that new records are appended to: the last one of the
// log. It knows its size, writes whole batches of frames at its end and makes
// them durable. Owned and used by EventLog's writer thread alone, so it is not
// thread-safe.
class ActiveSegment {
 public:
  // Creates the empty segment file for records from `first_index` in `dir`
  // and, when `sync`, fsyncs the directory so the new name survives a crash.
  static absl::StatusOr<ActiveSegment> Create(const std::string& dir, uint64_t first_index,
                                              bool sync);

  // Reopens a recovered segment to append after its `segment.bytes` valid
  // bytes (recovery has already cut any torn tail).
  static absl::StatusOr<ActiveSegment> Reopen(const SegmentInfo& segment);

  // Writes `frames` at the end. If the write fails part way, the partial
  // bytes are cut off again when possible, so a failed batch leaves nothing
  // that a later open would mistake for records.
  absl::Status Append(absl::string_view frames);

  // fdatasync(2): everything appended so far is durable once this returns OK.
  absl::Status Sync();

  uint64_t first_index() const { return first_index_; }
  uint64_t bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  ActiveSegment(UniqueFd fd, std::string path, uint64_t first_index, uint64_t bytes)
      : fd_(std::move(fd)), path_(std::move(path)), first_index_(first_index), bytes_(bytes) {}

  UniqueFd fd_;
  std::string path_;
  uint64_t first_index_;
  uint64_t bytes_;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_ACTIVE_SEGMENT_H_
