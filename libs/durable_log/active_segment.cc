#include "libs/durable_log/active_segment.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

#include "libs/durable_log/file_io.h"

namespace gyre::durable_log {

absl::StatusOr<ActiveSegment> ActiveSegment::Create(const std::string& dir, uint64_t first_index,
                                                    bool sync, uint64_t preallocate_bytes) {
  std::string path = dir + "/" + SegmentFileName(first_index);
  absl::StatusOr<UniqueFd> fd = OpenFile(path, O_WRONLY | O_CREAT | O_EXCL);
  if (!fd.ok()) return fd.status();
  if (sync) {
    if (absl::Status status = SyncDirectory(dir); !status.ok()) return status;
  }
  return ActiveSegment(*std::move(fd), std::move(path), first_index, 0, preallocate_bytes);
}

absl::StatusOr<ActiveSegment> ActiveSegment::Reopen(const SegmentInfo& segment,
                                                    uint64_t preallocate_bytes) {
  absl::StatusOr<UniqueFd> fd = OpenFile(segment.path, O_WRONLY);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), segment.path);
  if (!size.ok()) return size.status();
  ActiveSegment active(*std::move(fd), segment.path, segment.first_index, segment.bytes,
                       preallocate_bytes);
  active.file_bytes_ = std::max(*size, segment.bytes);
  return active;
}

void ActiveSegment::Preallocate(uint64_t more) {
  if (preallocate_bytes_ == 0 || bytes_ + more <= file_bytes_) return;
  const uint64_t target = std::max(bytes_ + more, file_bytes_ + preallocate_bytes_);
  if (fallocate(fd_.get(), 0, static_cast<off_t>(file_bytes_),
                static_cast<off_t>(target - file_bytes_)) == 0) {
    file_bytes_ = target;
  } else if (errno == EOPNOTSUPP) {
    preallocate_bytes_ = 0;  // this file system cannot: plain appends it is
  }
  // Otherwise (no space) the write below reports the error, or succeeds
  // where a smaller reservation would not have.
}

absl::Status ActiveSegment::Append(absl::string_view frames) {
  Preallocate(frames.size());
  absl::Status status = WriteFully(fd_.get(), frames, static_cast<off_t>(bytes_), path_);
  if (!status.ok()) {
    // Best effort: the caller fails the batch and stops the log either way,
    // and recovery would cut a partial frame as a torn tail.
    if (ftruncate(fd_.get(), static_cast<off_t>(bytes_)) != 0) {
      return absl::Status(status.code(),
                          absl::StrCat(status.message(), "; cutting the partial batch failed too: ",
                                       std::strerror(errno)));
    }
    file_bytes_ = bytes_;
    return status;
  }
  bytes_ += frames.size();
  file_bytes_ = std::max(file_bytes_, bytes_);
  return absl::OkStatus();
}

absl::Status ActiveSegment::Sync() { return SyncFile(fd_.get(), path_); }

absl::Status ActiveSegment::Seal(bool sync) {
  if (file_bytes_ == bytes_) return absl::OkStatus();
  if (ftruncate(fd_.get(), static_cast<off_t>(bytes_)) != 0) {
    return ErrnoError("cut the preallocated space of", path_, errno);
  }
  file_bytes_ = bytes_;
  // fsync, not fdatasync: the new size is all there is to make durable.
  if (sync && fsync(fd_.get()) != 0) return ErrnoError("fsync", path_, errno);
  return absl::OkStatus();
}

}  // namespace gyre::durable_log
