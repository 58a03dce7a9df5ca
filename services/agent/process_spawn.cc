#include "services/agent/process_spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gyre::agent {
namespace {

// Enough for what the child calls before exec (no allocation, no stdio).
constexpr size_t kChildStackBytes = 64 * 1024;

// What the child needs, prepared by the parent (the child allocates
// nothing: it shares the parent's memory while the parent waits), and the
// step that failed, written by the child.
struct ChildArgs {
  const SpawnRequest* request = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  // The descriptors to use, as numbered in the child's table.
  int stdin_fd = -1;  // -1: open /dev/null
  int stdout_fd = -1;
  int stderr_fd = -1;
  const int* cgroup_fds = nullptr;
  size_t cgroup_count = 0;
  // Sharing the parent's table: keep a copy of the descriptors below this
  // and nothing else. -1: the table is the child's own copy already.
  int unshare_below = -1;
  // Told once the child has its copy (the group may then serve another
  // spawn); null when it copies nothing.
  std::atomic<bool>* copied = nullptr;
  int error = 0;
  const char* step = nullptr;
};

int Fail(ChildArgs* args, const char* step) {
  args->error = errno;
  args->step = step;
  _exit(127);
}

// Runs in the child, on the spawn stack, sharing the parent's memory:
// only system calls. setuid and friends go through syscall(): glibc's
// wrappers would ask every thread of the (shared) process to switch too.
int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);
  const SpawnRequest& request = *args->request;
  // First of all: until then any change to a descriptor would be the
  // agent's too.
  if (args->unshare_below >= 0 &&
      syscall(SYS_close_range, static_cast<unsigned>(args->unshare_below), ~0U,
              CLOSE_RANGE_UNSHARE) != 0) {
    return Fail(args, "copying the descriptor table");
  }
  if (args->copied != nullptr) args->copied->store(true, std::memory_order_release);
  // A handler of the agent's must never run here (it would run on the
  // agent's memory), and the task gets no signal ignored.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction current {};
    if (sigaction(sig, nullptr, &current) != 0) continue;  // glibc's own signals
    if (current.sa_handler != SIG_DFL) sigaction(sig, &default_action, nullptr);
  }
  // A session of its own: no controlling terminal, and a process group the
  // agent signals as a whole.
  if (setsid() < 0) return Fail(args, "setsid");
  for (size_t i = 0; i < args->cgroup_count; ++i) {
    if (write(args->cgroup_fds[i], "0", 1) != 1) return Fail(args, "joining the task's cgroup");
  }
  for (const ResourceLimit& limit : request.rlimits) {
    const rlimit value{limit.value, limit.value};
    if (setrlimit(limit.resource, &value) != 0) return Fail(args, "setrlimit");
  }
  if (request.run_as.has_value()) {
    const gid_t gid = request.run_as->gid;
    if (syscall(SYS_setgroups, 1, &gid) != 0) return Fail(args, "setgroups");
    if (syscall(SYS_setresgid, gid, gid, gid) != 0) return Fail(args, "setgid");
    const uid_t uid = request.run_as->uid;
    if (syscall(SYS_setresuid, uid, uid, uid) != 0) return Fail(args, "setuid");
  }
  if (!request.work_dir.empty() && chdir(request.work_dir.c_str()) != 0) {
    return Fail(args, "entering the working directory");
  }
  const int null_fd = args->stdin_fd >= 0 ? args->stdin_fd : open("/dev/null", O_RDONLY);
  if (null_fd < 0) return Fail(args, "opening /dev/null");
  if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(args->stdout_fd, STDOUT_FILENO) < 0 ||
      dup2(args->stderr_fd, STDERR_FILENO) < 0) {
    return Fail(args, "redirecting stdio");
  }
  if (args->unshare_below >= 0) {
    // The few copied: the task gets its stdio and nothing else, even a
    // descriptor some library opened without O_CLOEXEC.
    syscall(SYS_close_range, 3U, ~0U, 0U);
  } else if (args->stdin_fd < 0 && null_fd > STDERR_FILENO) {
    close(null_fd);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(request.path.c_str(), args->argv, args->envp);
  return Fail(args, "exec");
}

// The spawning thread's child stack: the child runs on it only while this
// thread waits for it (until exec), so one per thread is enough.
char* ChildStackTop() {
  thread_local std::unique_ptr<char[]> stack;
  if (stack == nullptr) stack = std::make_unique<char[]>(kChildStackBytes);
  // The stack grows down; 16-byte aligned.
  auto top = reinterpret_cast<uintptr_t>(stack.get() + kChildStackBytes);
  return reinterpret_cast<char*>(top & ~uintptr_t{15});
}

}  // namespace

SpawnDescriptors::SpawnDescriptors(int groups) {
  null_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Without close_range (Linux 5.9) every spawn copies the table.
  if (null_fd_ < 0 || syscall(SYS_close_range, ~0U - 1, ~0U, 0U) != 0) return;
  const int count = std::max(groups, 0);
  groups_ = std::make_unique<Group[]>(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    for (int& fd : groups_[i].fds) {
      fd = fcntl(null_fd_, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) {
        // Out of descriptors already: no short way for anyone.
        for (int made = 0; made <= i; ++made) {
          for (int& other : groups_[made].fds) {
            if (other > 0) close(other);
            other = -1;
          }
        }
        return;
      }
      groups_[i].limit = std::max({groups_[i].limit, fd + 1, null_fd_ + 1});
    }
    group_count_ = i + 1;
  }
  absl::MutexLock lock(&mutex_);
  holders_.resize(static_cast<size_t>(group_count_));
}

SpawnDescriptors::~SpawnDescriptors() {
  for (int i = 0; i < group_count_; ++i) {
    for (int fd : groups_[i].fds) {
      if (fd >= 0) close(fd);
    }
  }
  if (null_fd_ >= 0) close(null_fd_);
}

void SpawnDescriptors::Clear(Group& group, int from, int to) {
  // dup3 replaces in one step: the number is never free for another
  // thread's open to take.
  for (int i = std::max(from, 0); i < to && i < kGroupFds; ++i) {
    dup3(null_fd_, group.fds[i], O_CLOEXEC);
  }
}

SpawnDescriptors::Lease SpawnDescriptors::Acquire(int used) {
  Lease lease;
  int taken_over_used = 0;
  {
    absl::MutexLock lock(&mutex_);
    // A free group first; else one whose child has its copy already.
    int found = -1;
    for (int i = 0; i < group_count_ && found < 0; ++i) {
      if (holders_[i].lease == 0) found = i;
    }
    for (int i = 0; i < group_count_ && found < 0; ++i) {
      if (groups_[i].copied.load(std::memory_order_acquire)) found = i;
    }
    if (found < 0) return lease;
    Holder& holder = holders_[found];
    taken_over_used = holder.lease != 0 ? holder.used : 0;
    holder.lease = next_lease_++;
    holder.used = std::max(used, taken_over_used);
    lease.group = &groups_[found];
    lease.id = holder.lease;
    lease.group->copied.store(false, std::memory_order_relaxed);
  }
  // Taken over: the slots this spawn will not fill still hold the last
  // one's descriptors (its pipes, which must not stay open here).
  Clear(*lease.group, used, taken_over_used);
  return lease;
}

void SpawnDescriptors::Release(const Lease& lease) {
  if (lease.group == nullptr) return;
  const size_t index = static_cast<size_t>(lease.group - groups_.get());
  absl::MutexLock lock(&mutex_);
  Holder& holder = holders_[index];
  // Taken over: the spawn that took it replaced this one's descriptors.
  if (holder.lease != lease.id) return;
  Clear(*lease.group, 0, holder.used);
  holder.lease = 0;
  holder.used = 0;
}

absl::StatusOr<SpawnedProcess> SpawnProcess(const SpawnRequest& request,
                                            SpawnDescriptors* descriptors) {
  if (request.argv.empty()) return absl::InvalidArgumentError("empty command");
  std::vector<char*> argv;
  argv.reserve(request.argv.size() + 1);
  for (const std::string& arg : request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(request.env.size() + 1);
  for (const std::string& entry : request.env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  ChildArgs args;
  args.request = &request;
  args.argv = argv.data();
  args.envp = envp.data();
  args.stdout_fd = request.stdout_fd;
  args.stderr_fd = request.stderr_fd;
  args.cgroup_fds = request.cgroup_procs_fds.data();
  args.cgroup_count = request.cgroup_procs_fds.size();
  SpawnDescriptors::Lease lease;
  int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;
  const int used = 2 + static_cast<int>(request.cgroup_procs_fds.size());
  if (descriptors != nullptr) {
    args.stdin_fd = descriptors->null_fd();
    if (request.cgroup_procs_fds.size() <= SpawnDescriptors::kCgroupFds) {
      lease = descriptors->Acquire(used);
    }
  }
  if (SpawnDescriptors::Group* group = lease.group; group != nullptr) {
    bool placed = dup3(request.stdout_fd, group->fds[0], O_CLOEXEC) >= 0 &&
                  dup3(request.stderr_fd, group->fds[1], O_CLOEXEC) >= 0;
    for (size_t i = 0; placed && i < request.cgroup_procs_fds.size(); ++i) {
      placed = dup3(request.cgroup_procs_fds[i], group->fds[2 + i], O_CLOEXEC) >= 0;
    }
    if (placed) {
      args.stdout_fd = group->fds[0];
      args.stderr_fd = group->fds[1];
      args.cgroup_fds = &group->fds[2];
      args.unshare_below = group->limit;
      args.copied = &group->copied;
      flags |= CLONE_FILES;
    } else {
      descriptors->Release(lease);
      lease = {};
    }
  }

  // No signal reaches the child before it has reset the handlers.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  const pid_t pid = clone(ChildMain, ChildStackTop(), flags, &args, &pidfd);
  const int clone_error = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  // The child has its copies (or is gone): the pipes must not stay open
  // here as well, or they would never end.
  if (descriptors != nullptr) descriptors->Release(lease);
  if (pid < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start a process: clone: ", std::strerror(clone_error)));
  }
  if (args.step != nullptr) {
    // The child has exited: reap it here, nobody else knows of it.
    waitpid(pid, nullptr, 0);
    if (pidfd >= 0) close(pidfd);
    if (std::strcmp(args.step, "exec") == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run \"", request.argv[0], "\": ", std::strerror(args.error)));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run \"", request.argv[0], "\": ", args.step, ": ", std::strerror(args.error)));
  }
  // CLONE_PIDFD made it close-on-exec already.
  return SpawnedProcess{pid, pidfd, (flags & CLONE_FILES) == 0};
}

absl::StatusOr<std::string> ExecutableCache::Resolve(const std::string& name,
                                                     const std::string& path_env) {
  if (name.find('/') != std::string::npos) return name;
  const std::string key = absl::StrCat(path_env, "\n", name);
  {
    absl::MutexLock lock(&mutex_);
    auto it = resolved_.find(key);
    if (it != resolved_.end()) return it->second;
  }
  if (!name.empty()) {
    for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
      std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
      struct stat info {};
      if (stat(candidate.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
      if (access(candidate.c_str(), X_OK) != 0) continue;
      absl::MutexLock lock(&mutex_);
      // Bounded: a cache of command names, cleared when it grows past them.
      if (resolved_.size() >= 4096) resolved_.clear();
      resolved_[key] = candidate;
      return candidate;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot run \"", name, "\": No such file or directory"));
}

void ExecutableCache::Forget(const std::string& name, const std::string& path_env) {
  absl::MutexLock lock(&mutex_);
  resolved_.erase(absl::StrCat(path_env, "\n", name));
}

}  // namespace gyre::agent
