#include "services/agent/agent_owned_dirs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gyre::agent {

absl::StatusOr<int> MakeHeldDirectory(const std::string& path, int mode, bool existing_ok) {
  if (mkdir(path.c_str(), static_cast<mode_t>(mode)) != 0 && !(existing_ok && errno == EEXIST)) {
    const int error = errno;
    if (error == EEXIST) return absl::AbortedError(absl::StrCat(path, " exists already"));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(error)));
  }
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  // Still the directory at `path` once held.
  struct stat held {};
  struct stat at_path {};
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &held) != 0 ||
      lstat(path.c_str(), &at_path) != 0 || held.st_ino != at_path.st_ino ||
      held.st_dev != at_path.st_dev) {
    close(fd);
    return absl::AbortedError(absl::StrCat(path, ": another agent holds or removed it"));
  }
  return fd;
}

void ForEachAbandonedDirectory(const std::string& parent,
                               std::initializer_list<absl::string_view> prefixes,
                               absl::FunctionRef<void(const std::string& path, int fd)> abandoned) {
  DIR* dir = opendir(parent.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> names;
  while (const dirent* entry = readdir(dir)) {
    for (absl::string_view prefix : prefixes) {
      if (absl::StartsWith(entry->d_name, prefix)) {
        names.emplace_back(entry->d_name);
        break;
      }
    }
  }
  closedir(dir);
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(parent, "/", name);
    const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) abandoned(path, fd);
    close(fd);
  }
}

}  // namespace gyre::agent
