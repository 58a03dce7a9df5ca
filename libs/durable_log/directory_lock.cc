#include "libs/durable_log/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "libs/durable_log/file_io.h"

namespace gyre::durable_log {

absl::StatusOr<DirectoryLock> DirectoryLock::Acquire(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/LOCK");
  absl::StatusOr<UniqueFd> fd = OpenFile(path, O_RDWR | O_CREAT);
  if (!fd.ok()) return fd.status();
  int result;
  do {
    result = flock(fd->get(), LOCK_EX | LOCK_NB);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat("event log ", dir, " is already open (",
                                                        path, " is locked by another EventLog)"));
    }
    return ErrnoError("lock", path, errno);
  }
  return DirectoryLock(*std::move(fd));
}

}  // namespace gyre::durable_log
