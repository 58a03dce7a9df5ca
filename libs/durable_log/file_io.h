#ifndef GYRE_LIBS_DURABLE_LOG_FILE_IO_H_
#define GYRE_LIBS_DURABLE_LOG_FILE_IO_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/durable_log/unique_fd.h"

// The few POSIX file operations the durable log needs, each returning an
// absl::Status whose message names the operation, the path and the errno text
// ("cannot write /data/segment-…log: No space left on device"). Stateless and
// thread-safe.
namespace gyre::durable_log {

// Maps `error` (an errno value) to a status code: ENOSPC, EDQUOT and EFBIG are
// kResourceExhausted, ENOENT kNotFound, EACCES/EPERM/EROFS kPermissionDenied,
// anything else kInternal.
absl::Status ErrnoError(absl::string_view action, absl::string_view path, int error);

// Makes the directory's entries (created, renamed or removed files) durable.
absl::Status SyncDirectory(const std::string& dir);

// Opens `path` with open(2) `flags` (O_CLOEXEC is added).
absl::StatusOr<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0644);

// pwrite(2)s all of `data` at `offset`, retrying short writes and EINTR.
absl::Status WriteFully(int fd, absl::string_view data, off_t offset, const std::string& path);

// fdatasync(2) with the path in the error.
absl::Status SyncFile(int fd, const std::string& path);

// Size of an open file.
absl::StatusOr<uint64_t> FileSize(int fd, const std::string& path);

// Names of the entries of `dir` (without "." and "..").
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// Ensures `dir` is an existing directory, creating it (and its parents) when
// `create` is set.
absl::Status EnsureDirectory(const std::string& dir, bool create);

// Reads all of a small file (snapshots) into memory.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_FILE_IO_H_
