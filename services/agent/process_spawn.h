#ifndef GYRE_SERVICES_AGENT_PROCESS_SPAWN_H_
#define GYRE_SERVICES_AGENT_PROCESS_SPAWN_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace gyre::agent {

// One resource limit set in the task before it runs (setrlimit).
struct ResourceLimit {
  int resource = 0;  // RLIMIT_NOFILE, RLIMIT_CORE, RLIMIT_NPROC...
  rlim_t value = 0;  // soft and hard
};

// The user and group a task runs as (supplementary groups: just `gid`).
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;  // the user's home directory, the task's $HOME
};

// Everything the child does between clone and exec, in this order:
// signals back to default, a new session (and so its own process group),
// cgroups joined, rlimits, group and user, working directory, stdio, exec.
struct SpawnRequest {
  std::string path;               // the executable, already resolved
  std::vector<std::string> argv;  // argv[0] as the task gave it
  std::vector<std::string> env;   // "KEY=value", exactly the task's
  std::string work_dir;           // empty: stay where the agent is
  int stdout_fd = -1;
  int stderr_fd = -1;
  std::optional<RunAs> run_as;
  std::vector<ResourceLimit> rlimits;
  std::vector<int> cgroup_procs_fds;  // open cgroup.procs files to join
};

// Low file descriptors kept for spawning, so that a child need not copy
// the agent's whole descriptor table. The agent holds three per running
// task (its pipes and pidfd), a kept directory per slot and, with cgroups,
// their files: ~300 with 64 running. A child made the usual way copies all
// of them and its exec closes them again (`do_close_on_exec`: ~17 us per
// task, the largest of the child's costs above the bare spawn's). With a
// group of these, the child shares the agent's table (CLONE_FILES) and
// takes a copy of the descriptors below limit() only (close_range's
// CLOSE_RANGE_UNSHARE), where the parent has just placed what the child
// needs. A group is needed only until the child has its copy, its first
// step, not until its exec: a spawn takes the lowest group that is free or
// whose child has copied it (the spawn that placed it then leaves it
// alone), so that children copy as few descriptors as they can. Reserved
// at construction, so make it early in the agent's life, while the lowest
// numbers are free. Thread-safe.
class SpawnDescriptors {
 public:
  // What a group holds for one spawn: stdout, stderr, then the cgroup.procs
  // files of up to kCgroupFds cgroups (cgroup v1: memory and cpu).
  static constexpr int kCgroupFds = 2;
  static constexpr int kMaxGroupFds = 2 + kCgroupFds;
  struct Group {
    // -1: a slot this agent's groups do not use (fds_per_group).
    int fds[kMaxGroupFds] = {-1, -1, -1, -1};
    static_assert(kMaxGroupFds == 4, "every slot starts at -1, never at stdin's 0");
    // One past its highest descriptor: a child copies those below only
    // (stdin's /dev/null and the groups made before it are lower).
    int limit = 0;
    // Set by the child once it holds its own copy: from then on the slots
    // are the agent's alone again.
    std::atomic<bool> copied{false};
  };
  // One spawn's hold on a group.
  struct Lease {
    Group* group = nullptr;
    uint64_t id = 0;
  };

  // `groups` spawns at once may take the short way; more copy the table.
  // Each group has `fds_per_group` slots (2 to kMaxGroupFds): stdio's two
  // plus the cgroup files a task joins here. Fewer slots, fewer
  // descriptors for every child to copy.
  explicit SpawnDescriptors(int groups, int fds_per_group = kMaxGroupFds);
  ~SpawnDescriptors();
  SpawnDescriptors(const SpawnDescriptors&) = delete;
  SpawnDescriptors& operator=(const SpawnDescriptors&) = delete;

  // The lowest group free or copied, its first `used` slots to be filled
  // (the rest point at /dev/null); a lease without a group when none is,
  // when `used` exceeds the slots of a group, or when the kernel has no
  // close_range (before Linux 5.9).
  Lease Acquire(int used);
  // Points the group's slots at /dev/null again (the child holds its own
  // copies) and frees it, unless another spawn has taken it over since.
  void Release(const Lease& lease);
  // /dev/null, read-only: every task's stdin.
  int null_fd() const { return null_fd_; }

 private:
  struct Holder {
    uint64_t lease = 0;  // 0: free
    int used = 0;        // slots not pointing at /dev/null
  };
  // Points slots [from, to) of `group` at /dev/null.
  void Clear(Group& group, int from, int to);

  int null_fd_ = -1;
  std::unique_ptr<Group[]> groups_;  // not movable: the children write `copied`
  int group_count_ = 0;
  int fds_per_group_ = kMaxGroupFds;
  absl::Mutex mutex_;
  std::vector<Holder> holders_ ABSL_GUARDED_BY(mutex_);  // one per group
  uint64_t next_lease_ ABSL_GUARDED_BY(mutex_) = 1;
};

class SpawnInFlight;

struct SpawnedProcess {
  pid_t pid = -1;
  int pidfd = -1;  // owned by the caller
  // The child copied the agent's whole descriptor table (no group of
  // SpawnDescriptors could serve it), rather than a few low descriptors.
  bool copied_table = true;
  // Set when the spawn did not wait for the child's exec
  // (SpawnMode::kNoWait): what the child reads until then. Keep it until
  // the process has been reaped.
  std::unique_ptr<SpawnInFlight> in_flight;
};

enum class SpawnMode {
  // The parent thread waits until the child has exec'd (a vfork): a step
  // that fails in the child is SpawnProcess's error.
  kWaitForExec,
  // The parent goes on at once; the child runs on a stack of its own and
  // calls the kernel directly, never glibc, which would write the parent
  // thread's errno (the child shares its memory until the exec). A step
  // that fails in the child is known once the process has exited
  // (SpawnInFlight::Failure). Where the kernel cannot be called directly
  // (an architecture other than x86-64 and arm64) it is kWaitForExec.
  kNoWait,
};

// A process started with SpawnMode::kNoWait, until it has been reaped: the
// request, argv, environment and stack its child uses until its exec, and
// the descriptor group it was placed in. Used by one thread at a time.
class SpawnInFlight {
 public:
  SpawnInFlight();
  ~SpawnInFlight();
  SpawnInFlight(const SpawnInFlight&) = delete;
  SpawnInFlight& operator=(const SpawnInFlight&) = delete;

  // The process has exited: its descriptor group, if no other spawn took
  // it over, points at /dev/null again (the task's pipes then end) and
  // serves others.
  void Exited();
  // After the process has been reaped: the step that failed in the child
  // before its exec, as SpawnProcess would have reported it
  // (FailedPrecondition "cannot run ..."), or OK.
  absl::Status Failure() const;

 private:
  friend absl::StatusOr<SpawnedProcess> SpawnProcess(SpawnRequest, SpawnDescriptors*, SpawnMode);
  struct State;
  std::unique_ptr<State> state_;
};

// Starts a process as `request` says: a clone that shares the agent's
// memory until the child's exec, so no page table is copied; unlike
// posix_spawn it can set the user, the rlimits and the cgroup, and it
// returns a pidfd made by the clone itself. With kWaitForExec the parent
// thread waits for the exec (on a stack kept per thread) and a step that
// fails in the child is reported here with its name ("setuid: Operation
// not permitted"); with kNoWait see SpawnMode. With `descriptors`, stdin
// is its /dev/null and, when a group is free, the child copies only the
// low descriptors (SpawnDescriptors); the task then holds no descriptor
// but its stdin, stdout and stderr.
absl::StatusOr<SpawnedProcess> SpawnProcess(SpawnRequest request,
                                            SpawnDescriptors* descriptors = nullptr,
                                            SpawnMode mode = SpawnMode::kWaitForExec);

// Whether SpawnMode::kNoWait is available here.
bool SpawnWithoutWaitingAvailable();

// Resolves a command name to the executable it runs, searching `path_env`
// (the task's PATH) for a name without '/'. Results are cached per
// (PATH, name): a PATH search stats every directory before the hit, on
// every spawn. A name with '/' is returned as is (relative to the task's
// working directory, as exec resolves it). Thread-safe.
class ExecutableCache {
 public:
  absl::StatusOr<std::string> Resolve(const std::string& name, const std::string& path_env);
  // Forgets `name` (its executable went away: the next spawn searches again).
  void Forget(const std::string& name, const std::string& path_env);

 private:
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::string> resolved_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_PROCESS_SPAWN_H_
