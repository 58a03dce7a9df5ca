#include "libs/durable_log/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/durable_log/file_io.h"

namespace gyre::durable_log {
namespace {

// The pid the holder wrote into the lock file, or 0 if it is unreadable
// (a holder from before pids were recorded, or one still writing it).
int64_t HolderPid(int fd) {
  char text[32] = {};
  const ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
  int64_t pid = 0;
  if (n <= 0 || !absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(text, n)), &pid)) {
    return 0;
  }
  return pid;
}

}  // namespace

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
      const int64_t pid = HolderPid(fd->get());
      return absl::FailedPreconditionError(
          absl::StrCat(dir, " is locked by ", pid > 0 ? absl::StrCat("pid ", pid) : "a process",
                       " (", path, ")"));
    }
    return ErrnoError("lock", path, errno);
  }
  // Who holds it, for the message the next one gets. Best effort: the lock
  // itself is the flock, not this text.
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd->get(), 0) == 0) {
    (void)!pwrite(fd->get(), pid.data(), pid.size(), 0);
  }
  return DirectoryLock(*std::move(fd));
}

}  // namespace gyre::durable_log
