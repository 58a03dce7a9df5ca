#ifndef GYRE_SERVICES_AGENT_WORK_DIRS_H_
#define GYRE_SERVICES_AGENT_WORK_DIRS_H_

// The tasks' working directories: made private to a task, read for its
// $GYRE_OUTPUT, then removed, or kept open for a later task.

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/agent/process_spawn.h"

namespace gyre::agent {

// The name of $GYRE_OUTPUT inside the task's working directory.
inline constexpr char kOutputName[] = "gyre_output.json";

// The task's working directory while the attempt runs.
struct WorkDir {
  std::string output_path;  // $GYRE_OUTPUT
  int fd = -1;              // $GYRE_OUTPUT is read through it afterwards
  // It came from a WorkDirPool: given back there (open) once emptied.
  bool pooled = false;
};

// Working directories of the tasks whose directories are removed
// afterwards (keep_work_dirs off), kept open for the next task once the
// last has emptied them. A task then costs no directory made, renamed or
// removed, and no path resolved: each of those was a journalled ext4
// operation, and together the executor's largest kernel cost per /bin/true
// task after the spawn itself (bench/README.md). They live in the agent's
// own `{root}/.slots-{pid}/{n}`. Thread-safe.
class WorkDirPool {
 public:
  WorkDirPool() = default;
  ~WorkDirPool();
  WorkDirPool(const WorkDirPool&) = delete;
  WorkDirPool& operator=(const WorkDirPool&) = delete;

  // An empty directory under `root` (absolute), open at `fd`: a kept one
  // (still at its path), else a new one (0700). Sets `*path`, and `*info`
  // to what fstat says of it. nullopt when none can be made (the caller
  // makes one of its own).
  std::optional<WorkDir> Take(const std::string& root, std::string* path, struct stat* info);
  // Keeps `dir` (taken here, empty, at `path`) for a later task; false if
  // the pool is full (the caller removes it and closes its descriptor).
  bool Give(const std::string& path, const WorkDir& dir);

 private:
  struct Kept {
    std::string root;
    std::string path;
    int fd;
  };
  // This agent's directory under a root, holding the kept ones. Its lock
  // (flock) says it is alive: the directories of an agent that died (kill
  // -9, a restarted container on the same volume) are removed by the next
  // agent to use the root.
  struct Slots {
    std::string path;
    int lock_fd;
  };
  static constexpr size_t kMaxKept = 256;
  // A kept directory under `root`, out of free_.
  std::optional<Kept> TakeKept(const std::string& root);
  // This agent's directory under `root`, made on first use (after removing
  // the stale ones); "" if it cannot be made.
  std::string SlotsUnder(const std::string& root);
  static void RemoveStaleSlots(const std::string& root);

  absl::Mutex setup_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);  // one SlotsUnder setup at a time
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, Slots> slots_ ABSL_GUARDED_BY(mutex_);
  std::vector<Kept> free_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Makes `*work_dir` absolute (the child starts inside it, so no path it is
// given may be relative to where the agent was started), makes it private
// to the task (0700, owned by `run_as` when given) and opens it. With a
// `pool`, the task runs in one of the pool's directories instead, and
// `*work_dir` becomes its path. Without, a directory that existed keeps
// what it holds but a previous attempt's $GYRE_OUTPUT.
WorkDir PrepareWorkDir(std::string* work_dir, const std::optional<RunAs>& run_as,
                       WorkDirPool* pool);

// Makes up to `count` of `pool`'s directories for the tasks whose
// directories go under `work_root` ({work_root}/{name}, as PrepareWorkDir
// is given them), so that the first tasks find them made: on a slow disk a
// mkdir costs a task's spawn several times over. Stops at the first that
// cannot be made (those tasks make their own later).
void PrepareWorkDirs(const std::string& work_root, size_t count, WorkDirPool* pool);

// Whether the directory open at `fd` holds nothing. Reads the entries
// through `fd` itself (which nothing else reads them through), from the
// start.
bool IsEmptyDirectory(int fd);

// Removes `work_dir` and everything in it; a failure is logged.
void RemoveWorkDir(const std::string& work_dir);

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_WORK_DIRS_H_
