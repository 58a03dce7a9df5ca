#include "libs/durable_log/active_segment.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

#include "libs/durable_log/file_io.h"

namespace gyre::durable_log {

absl::StatusOr<ActiveSegment> ActiveSegment::Create(const std::string& dir, uint64_t first_index,
                                                    bool sync) {
  std::string path = dir + "/" + SegmentFileName(first_index);
  absl::StatusOr<UniqueFd> fd = OpenFile(path, O_WRONLY | O_CREAT | O_EXCL);
  if (!fd.ok()) return fd.status();
  if (sync) {
    if (absl::Status status = SyncDirectory(dir); !status.ok()) return status;
  }
  return ActiveSegment(*std::move(fd), std::move(path), first_index, 0);
}

absl::StatusOr<ActiveSegment> ActiveSegment::Reopen(const SegmentInfo& segment) {
  absl::StatusOr<UniqueFd> fd = OpenFile(segment.path, O_WRONLY);
  if (!fd.ok()) return fd.status();
  return ActiveSegment(*std::move(fd), segment.path, segment.first_index, segment.bytes);
}

absl::Status ActiveSegment::Append(absl::string_view frames) {
  absl::Status status = WriteFully(fd_.get(), frames, static_cast<off_t>(bytes_), path_);
  if (!status.ok()) {
    // Best effort: the caller fails the batch and stops the log either way,
    // and recovery would cut a partial frame as a torn tail.
    if (ftruncate(fd_.get(), static_cast<off_t>(bytes_)) != 0) {
      return absl::Status(status.code(),
                          absl::StrCat(status.message(), "; cutting the partial batch failed too: ",
                                       std::strerror(errno)));
    }
    return status;
  }
  bytes_ += frames.size();
  return absl::OkStatus();
}

absl::Status ActiveSegment::Sync() { return SyncFile(fd_.get(), path_); }

}  // namespace gyre::durable_log
