#ifndef GYRE_LIBS_DURABLE_LOG_DIRECTORY_LOCK_H_
#define GYRE_LIBS_DURABLE_LOG_DIRECTORY_LOCK_H_

#include <string>

#include "absl/status/statusor.h"
#include "libs/durable_log/unique_fd.h"

namespace gyre::durable_log {

// An exclusive flock(2) on "<dir>/LOCK", held for the lifetime of the object,
// so that two processes (or two EventLogs in one process) never append to the
// same log. The kernel drops it when the process dies, so a crash leaves no
// stale lock. Move-only; not thread-safe.
class DirectoryLock {
 public:
  // kFailedPrecondition "<dir> is locked by pid N (<dir>/LOCK)" when someone
  // else holds the lock; the holder's pid is kept in the file for that.
  static absl::StatusOr<DirectoryLock> Acquire(const std::string& dir);

 private:
  explicit DirectoryLock(UniqueFd fd) : fd_(std::move(fd)) {}

  UniqueFd fd_;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_DIRECTORY_LOCK_H_
