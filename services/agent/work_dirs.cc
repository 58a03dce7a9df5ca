#include "services/agent/work_dirs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/logging/logger.h"
#include "services/agent/agent_owned_dirs.h"

namespace gyre::agent {
namespace {

// The parent directory of `path` ("" for none).
std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
}

// Makes the root of the working directories when it is missing: others may
// pass through it (a task running as another user must reach its own) but
// not list it.
void MakeRoot(const std::string& root) {
  std::error_code error;
  std::filesystem::create_directories(root, error);
  chmod(root.c_str(), 0711);
}

// Hands the directory open at `fd` to the task's user.
void HandTo(int fd, const std::string& path, const std::optional<RunAs>& run_as) {
  if (run_as.has_value() && fchown(fd, run_as->uid, run_as->gid) != 0) {
    logging::Warn("task working directory not handed to the task's user",
                  {{"dir", path}, {"error", std::strerror(errno)}});
  }
}

}  // namespace

WorkDirPool::~WorkDirPool() {
  for (const Kept& kept : free_) {
    close(kept.fd);
    rmdir(kept.path.c_str());
  }
  // Empty unless a directory could not be removed (that was logged).
  for (const auto& [root, slots] : slots_) {
    if (slots.lock_fd < 0) continue;  // none could be made there
    rmdir(slots.path.c_str());
    close(slots.lock_fd);
  }
}

std::string WorkDirPool::SlotsUnder(const std::string& root) {
  {
    absl::MutexLock lock(&mutex_);
    if (auto it = slots_.find(root); it != slots_.end()) return it->second.path;
  }
  absl::MutexLock setup(&setup_mutex_);
  {
    absl::MutexLock lock(&mutex_);
    if (auto it = slots_.find(root); it != slots_.end()) return it->second.path;
  }
  struct stat info {};
  if (stat(root.c_str(), &info) != 0) MakeRoot(root);
  RemoveStaleSlots(root);
  // Another agent's (alive: the sweep left it) may have this name already:
  // an agent in another pid namespace sharing the root.
  for (int suffix = 0; suffix < 16; ++suffix) {
    std::string path = absl::StrCat(root, "/.slots-", getpid());
    if (suffix > 0) absl::StrAppend(&path, "-", suffix);
    // Held from here on, so no other agent's start takes it for abandoned.
    // Passable (not listable) for a task of another user.
    absl::StatusOr<int> fd = MakeHeldDirectory(path, 0711, /*existing_ok=*/false);
    if (!fd.ok()) continue;
    if (fchmod(*fd, 0711) != 0) {
      close(*fd);
      continue;
    }
    absl::MutexLock lock(&mutex_);
    slots_[root] = Slots{path, *fd};
    return path;
  }
  // Not tried again for every task: they get directories of their own.
  logging::Warn("no reusable task directories under the work_dir; each task makes its own",
                {{"dir", root}});
  absl::MutexLock lock(&mutex_);
  slots_[root] = Slots{"", -1};
  return "";
}

void WorkDirPool::RemoveStaleSlots(const std::string& root) {
  // .recycled-{pid}: where agents before the slots kept emptied directories
  // (never locked; an old agent still running makes a new directory when
  // its is gone).
  ForEachAbandonedDirectory(root, {".slots-", ".recycled-"}, [](const std::string& path, int fd) {
    // Another user's is not this agent's to remove.
    struct stat info {};
    if (fstat(fd, &info) != 0 || info.st_uid != geteuid()) return;
    logging::Info("removing the working directories of an agent that is gone", {{"dir", path}});
    RemoveWorkDir(path);
  });
}

std::optional<WorkDir> WorkDirPool::Take(const std::string& root, std::string* path,
                                         struct stat* info) {
  while (std::optional<Kept> kept = TakeKept(root)) {
    // A task running as the agent's user may have moved its directory away
    // (and left something else at its path): the task would run at the
    // path, and its output be read from the directory held here.
    struct stat at_path {};
    if (fstat(kept->fd, info) == 0 && lstat(kept->path.c_str(), &at_path) == 0 &&
        at_path.st_ino == info->st_ino && at_path.st_dev == info->st_dev) {
      WorkDir dir;
      dir.fd = kept->fd;
      dir.pooled = true;
      *path = std::move(kept->path);
      return dir;
    }
    close(kept->fd);
  }
  const std::string slots = SlotsUnder(root);
  if (slots.empty()) return std::nullopt;
  uint64_t number;
  {
    absl::MutexLock lock(&mutex_);
    number = next_++;
  }
  std::string made = absl::StrCat(slots, "/", number);
  if (mkdir(made.c_str(), 0700) != 0) return std::nullopt;
  WorkDir dir;
  dir.fd = open(made.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir.fd < 0 || fstat(dir.fd, info) != 0) {
    if (dir.fd >= 0) close(dir.fd);
    rmdir(made.c_str());
    return std::nullopt;
  }
  dir.pooled = true;
  *path = std::move(made);
  return dir;
}

std::optional<WorkDirPool::Kept> WorkDirPool::TakeKept(const std::string& root) {
  absl::MutexLock lock(&mutex_);
  for (size_t i = free_.size(); i-- > 0;) {
    if (free_[i].root != root) continue;
    Kept kept = std::move(free_[i]);
    free_[i] = std::move(free_.back());
    free_.pop_back();
    return kept;
  }
  return std::nullopt;
}

bool WorkDirPool::Give(const std::string& path, const WorkDir& dir) {
  if (!dir.pooled || dir.fd < 0) return false;
  absl::MutexLock lock(&mutex_);
  if (free_.size() >= kMaxKept) return false;
  free_.push_back({ParentOf(ParentOf(path)), path, dir.fd});
  return true;
}

bool IsEmptyDirectory(int fd) {
  // A kept directory's descriptor was read to its end by the last check.
  if (lseek(fd, 0, SEEK_SET) != 0) return false;
  alignas(8) char buffer[512];
  bool empty = true;
  while (empty) {
    const long n = syscall(SYS_getdents64, fd, buffer, sizeof(buffer));
    if (n <= 0) {
      empty = n == 0;
      break;
    }
    for (long offset = 0; offset < n;) {
      auto* entry = reinterpret_cast<dirent64*>(buffer + offset);
      const char* name = entry->d_name;
      if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0) empty = false;
      offset += entry->d_reclen;
    }
  }
  return empty;
}

void PrepareWorkDirs(const std::string& work_root, size_t count, WorkDirPool* pool) {
  if (work_root.empty() || pool == nullptr) return;
  // The root a task's directory has once PrepareWorkDir made it absolute.
  std::error_code error;
  const std::string root = ParentOf(std::filesystem::absolute(work_root + "/task", error).string());
  if (error || root.empty()) return;
  std::vector<std::pair<std::string, WorkDir>> made;
  for (size_t i = 0; i < count; ++i) {
    std::string path;
    struct stat info {};
    std::optional<WorkDir> dir = pool->Take(root, &path, &info);
    if (!dir.has_value()) break;
    made.emplace_back(std::move(path), *std::move(dir));
  }
  for (auto& [path, dir] : made) {
    if (!pool->Give(path, dir)) {
      close(dir.fd);
      RemoveWorkDir(path);
    }
  }
}

WorkDir PrepareWorkDir(std::string* work_dir, const std::optional<RunAs>& run_as,
                       WorkDirPool* pool) {
  std::error_code error;  // a directory that cannot be made fails the spawn
  if (!work_dir->empty() && (*work_dir)[0] != '/') {
    *work_dir = std::filesystem::absolute(*work_dir, error).string();
  }
  if (!work_dir->empty() && pool != nullptr) {
    std::string path;
    struct stat info {};
    if (std::optional<WorkDir> dir = pool->Take(ParentOf(*work_dir), &path, &info)) {
      // Empty; the last task may have opened up its mode. Changed only
      // when it differs: a change is a journalled write, a look is not.
      if ((info.st_mode & 07777) != 0700) fchmod(dir->fd, 0700);
      if (run_as.has_value() && (info.st_uid != run_as->uid || info.st_gid != run_as->gid)) {
        HandTo(dir->fd, path, run_as);
      }
      *work_dir = std::move(path);
      dir->output_path = *work_dir + "/" + kOutputName;
      return *std::move(dir);
    }
  }
  // Made here, empty: no earlier output to remove.
  bool fresh = false;
  if (!work_dir->empty()) {
    if (mkdir(work_dir->c_str(), 0700) == 0) {
      fresh = true;
    } else if (errno == ENOENT) {
      MakeRoot(ParentOf(*work_dir));
      fresh = mkdir(work_dir->c_str(), 0700) == 0;
    } else if (errno == EEXIST) {
      chmod(work_dir->c_str(), 0700);
    }
  }
  WorkDir dir;
  dir.output_path = *work_dir + "/" + kOutputName;
  if (!fresh) std::filesystem::remove(dir.output_path, error);
  dir.fd = open(work_dir->empty() ? "/" : work_dir->c_str(),
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (!work_dir->empty() && dir.fd >= 0) HandTo(dir.fd, *work_dir, run_as);
  return dir;
}

void RemoveWorkDir(const std::string& work_dir) {
  std::error_code error;
  std::filesystem::remove_all(work_dir, error);
  if (error) {
    logging::Warn("task working directory not removed",
                  {{"dir", work_dir}, {"error", error.message()}});
  }
}

}  // namespace gyre::agent
