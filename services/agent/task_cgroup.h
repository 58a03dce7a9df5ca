#ifndef GYRE_SERVICES_AGENT_TASK_CGROUP_H_
#define GYRE_SERVICES_AGENT_TASK_CGROUP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gyre::agent {

// What a task declared, to be enforced (0: no limit).
struct TaskLimits {
  int64_t memory_bytes = 0;
  double cpu = 0;  // cores
};

// One task's cgroup(s): created before the spawn (the child joins them
// through procs_fds() before exec), read after the exit, killed and removed
// when destroyed.
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

 private:
  friend class TaskCgroups;
  bool v2_ = false;
  std::string memory_dir_;  // v2: the one directory
  std::string cpu_dir_;     // v1 only; may be empty
  std::vector<int> procs_fds_;
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

  // A cgroup for one task with `limits`; `name` must be unique among the
  // running tasks.
  absl::StatusOr<std::unique_ptr<TaskCgroup>> Create(const std::string& name,
                                                     const TaskLimits& limits) const;

 private:
  Mode mode_ = Mode::kNone;
  std::string description_;
  std::string prefix_;
  std::string memory_base_;  // v2: the parent of task cgroups
  std::string cpu_base_;     // v1 cpu hierarchy; may be empty
};

// "512 MiB", "1.5 GiB": how a limit or peak is shown to a user.
std::string FormatBytes(int64_t bytes);

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_TASK_CGROUP_H_
