#include "libs/durable_log/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace gyre::durable_log {

absl::Status ErrnoError(absl::string_view action, absl::string_view path, int error) {
  std::string message = absl::StrCat("cannot ", action, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status SyncDirectory(const std::string& dir) {
  absl::StatusOr<UniqueFd> fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  if (fsync(fd->get()) != 0) return ErrnoError("fsync directory", dir, errno);
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError("open", path, errno);
  return UniqueFd(fd);
}

absl::Status WriteFully(int fd, absl::string_view data, off_t offset, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        pwrite(fd, data.data() + done, data.size() - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write", path, errno);
    if (n == 0) return ErrnoError("write", path, EIO);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SyncFile(int fd, const std::string& path) {
  if (fdatasync(fd) != 0) return ErrnoError("fdatasync", path, errno);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FileSize(int fd, const std::string& path) {
  struct stat info {};
  if (fstat(fd, &info) != 0) return ErrnoError("stat", path, errno);
  return static_cast<uint64_t>(info.st_size);
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) return ErrnoError("list directory", dir, errno);
  absl::Cleanup close_dir = [handle] { closedir(handle); };
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = readdir(handle)) {
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
    errno = 0;
  }
  if (errno != 0) return ErrnoError("list directory", dir, errno);
  return names;
}

absl::Status EnsureDirectory(const std::string& dir, bool create) {
  struct stat info {};
  if (stat(dir.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("event log directory ", dir, " is not a directory"));
    }
    return absl::OkStatus();
  }
  if (errno != ENOENT || !create) return ErrnoError("open event log directory", dir, errno);
  // Create each missing ancestor, so the error names the level that failed.
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string prefix = dir.substr(0, slash);
    if (!prefix.empty() && mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError("create event log directory", prefix, errno);
    }
    if (slash == std::string::npos) break;
  }
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("event log directory ", dir, " could not be created"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  absl::StatusOr<UniqueFd> fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), path);
  if (!size.ok()) return size.status();
  std::string data(*size, '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        pread(fd->get(), data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", path, errno);
    if (n == 0) break;  // shrank while reading
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

}  // namespace gyre::durable_log
