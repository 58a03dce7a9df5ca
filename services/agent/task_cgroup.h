#ifndef GYRE_SERVICES_AGENT_TASK_CGROUP_H_
#define GYRE_SERVICES_AGENT_TASK_CGROUP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace gyre::agent {

// What a task declared, to be enforced (0: no limit).
struct TaskLimits {
  int64_t memory_bytes = 0;
  double cpu = 0;  // cores
};

class TaskCgroups;

// One task's cgroup(s): taken before the spawn (the child joins them
// through procs_fds() before exec), read after the exit; when destroyed,
// what is left in it is killed and the emptied cgroup goes back to its
// TaskCgroups for the next task (or is removed).
class TaskCgroup {
 public:
  struct Usage {
    int64_t peak_memory_bytes = 0;  // 0: not known
    bool oom_killed = false;        // the kernel's OOM killer ended a process
  };
  ~TaskCgroup();
  // The cgroup.procs files the child writes itself into.
  const std::vector<int>& procs_fds() const { return procs_fds_; }
  Usage Read() const;
  // Ends every process still in the cgroup (one that left the task's
  // process group cannot escape this).
  void KillAll() const;
  // Whether no process is left in it now (after KillAll): releasing it
  // then does not wait for killed processes to leave.
  bool Empty() const;

 private:
  friend class TaskCgroups;
  // The number of OOM kills the kernel has counted in the cgroup so far.
  int64_t OomKills() const;
  // Whether no process is left in it (none has been for up to ~1 s).
  bool WaitEmpty() const;
  // Its processes' ids, one per line, as cgroup.procs lists them.
  std::string Procs() const;

  const TaskCgroups* owner_ = nullptr;
  bool v2_ = false;
  std::string memory_dir_;  // v2: the one directory
  std::string cpu_dir_;     // v1 only; may be empty
  std::vector<int> procs_fds_;
  // Its directories, open and locked (flock) while it lives: a cgroup no
  // agent holds is one an agent that died left (TaskCgroups::Detect).
  std::vector<int> lock_fds_;
  int peak_fd_ = -1;  // v2: memory.peak, reset and read through this fd
  // Kept open with the cgroup, read (and written) again for every task it
  // serves: opening a cgroup file walks its path each time. -1 when it
  // could not be opened (the path is opened then).
  int usage_fd_ = -1;       // v1: memory.max_usage_in_bytes, reset and read
  int events_fd_ = -1;      // the OOM kill count: v2 memory.events, v1 memory.oom_control
  int procs_read_fd_ = -1;  // cgroup.procs, read
  // The limits written in the files now (a reused cgroup is rewritten only
  // where the next task's differ).
  TaskLimits written_;
  // OOM kills counted before this task: the counter outlives a task.
  int64_t oom_kills_before_ = 0;
  // KillAll found no process left (after the task's end).
  mutable bool seen_empty_ = false;
};

// How this agent enforces tasks' resources: a child cgroup per task, in
// cgroup v2 when the agent's cgroup has the memory and cpu controllers (a
// delegated cgroup, or a root agent), else in the cgroup v1 memory (and
// cpu) hierarchies when they are writable; else not at all (limits are
// advisory, said once at start and in the registration).
class TaskCgroups {
 public:
  enum class Mode { kNone, kV1, kV2 };

  // Finds what this machine allows; `prefix` starts each task cgroup's
  // name. Never fails: kNone says why in description().
  static std::unique_ptr<TaskCgroups> Detect(const std::string& prefix);
  // No enforcement (tests, or turned off by configuration).
  static std::unique_ptr<TaskCgroups> Disabled(std::string why);

  Mode mode() const { return mode_; }
  bool enforced() const { return mode_ != Mode::kNone; }
  // "cgroup v2 (/sys/fs/cgroup/...)", "cgroup v1 memory+cpu (...)" or
  // "none: <why>".
  const std::string& description() const { return description_; }
  // Where the tasks' cgroups are made (v1: in the memory hierarchy).
  const std::string& memory_base() const { return memory_base_; }

  // Removes the cgroups kept for reuse.
  ~TaskCgroups();

  // A cgroup for one task with `limits`: one an earlier task emptied, with
  // its limits rewritten where they differ and its peak reset, else a new
  // one. Creating a memory cgroup (the kernel allocates its per-CPU state)
  // and removing it after a /bin/true cost three times the rest of the
  // executor's CPU per task (bench/README.md).
  absl::StatusOr<std::unique_ptr<TaskCgroup>> Create(const TaskLimits& limits) const;
  // Cgroups kept for reuse now (for tests).
  size_t kept() const;

 private:
  friend class TaskCgroup;
  // Writes `limits` into `cgroup` where they differ from what it has.
  absl::Status Apply(TaskCgroup& cgroup, const TaskLimits& limits) const;
  // Takes back an emptied cgroup for the next task; false if the pool is
  // full or the cgroup cannot be reused (the caller removes it).
  bool Keep(TaskCgroup& cgroup) const;

  static constexpr size_t kMaxKept = 256;

  Mode mode_ = Mode::kNone;
  std::string description_;
  std::string prefix_;
  std::string memory_base_;  // v2: the parent of task cgroups
  std::string cpu_base_;     // v1 cpu hierarchy; may be empty
  mutable absl::Mutex mutex_;
  mutable uint64_t next_id_ ABSL_GUARDED_BY(mutex_) = 0;
  // Emptied task cgroups, ready for the next task.
  mutable std::vector<std::unique_ptr<TaskCgroup>> kept_ ABSL_GUARDED_BY(mutex_);
};

// "512 MiB", "1.5 GiB": how a limit or peak is shown to a user.
std::string FormatBytes(int64_t bytes);

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_TASK_CGROUP_H_
