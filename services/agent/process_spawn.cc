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
// The stack of a child whose spawn does not wait, one per such child until
// it is reaped: ChildMain's frames and the kernel calls it makes.
constexpr size_t kNoWaitStackBytes = 32 * 1024;

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

// A system call made without glibc: returns the result, or -errno. The
// child of a spawn that does not wait shares the parent's memory, thread
// storage included, while the parent thread runs on: glibc's wrappers
// would write that thread's errno.
#if defined(__x86_64__)
constexpr bool kRawSyscalls = true;
long RawSyscall(long number, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                long f = 0) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long result;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return result;
}
#elif defined(__aarch64__)
constexpr bool kRawSyscalls = true;
long RawSyscall(long number, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                long f = 0) {
  register long x8 __asm__("x8") = number;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory", "cc");
  return x0;
}
#else
// Elsewhere only the spawn that waits (the parent thread is suspended, so
// glibc's errno is the child's to write) uses it.
constexpr bool kRawSyscalls = false;
long RawSyscall(long number, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                long f = 0) {
  const long result = syscall(number, a, b, c, d, e, f);
  return result < 0 ? -errno : result;
}
#endif

// The kernel's struct sigaction (rt_sigaction), not glibc's.
struct KernelSigaction {
  void* handler = nullptr;  // SIG_DFL
  unsigned long flags = 0;
  void* restorer = nullptr;
  uint64_t mask = 0;
};

[[noreturn]] void Fail(ChildArgs* args, const char* step, long result) {
  args->error = static_cast<int>(-result);
  args->step = step;
  // It never took its copy of the table and never will: the group is free.
  if (args->copied != nullptr) args->copied->store(true, std::memory_order_release);
  RawSyscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

// `from` onto `to` without close-on-exec (dup3 refuses equal numbers).
long MoveTo(int from, int to) {
  return from == to ? RawSyscall(SYS_fcntl, to, F_SETFD, 0) : RawSyscall(SYS_dup3, from, to, 0);
}

// Runs in the child, on the spawn stack, sharing the parent's memory until
// its exec: only system calls, made directly (RawSyscall). setuid and
// friends are the kernel's: glibc's would ask every thread of the
// (shared) process to switch too.
int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);
  const SpawnRequest& request = *args->request;
  long result = 0;
  // First of all: until then any change to a descriptor would be the
  // agent's too.
  if (args->unshare_below >= 0 &&
      (result = RawSyscall(SYS_close_range, args->unshare_below, ~0U, CLOSE_RANGE_UNSHARE)) != 0) {
    Fail(args, "copying the descriptor table", result);
  }
  if (args->copied != nullptr) {
    args->copied->store(true, std::memory_order_release);
    // From here the group may serve another spawn, whose flag this is then:
    // a later failure here must not set it again (Fail).
    args->copied = nullptr;
  }
  // A handler of the agent's must never run here (it would run on the
  // agent's memory), and the task gets no signal ignored.
  const KernelSigaction default_action;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    KernelSigaction current;
    if (RawSyscall(SYS_rt_sigaction, sig, 0, reinterpret_cast<long>(&current), 8) != 0) continue;
    if (current.handler != nullptr) {
      RawSyscall(SYS_rt_sigaction, sig, reinterpret_cast<long>(&default_action), 0, 8);
    }
  }
  // A session of its own: no controlling terminal, and a process group the
  // agent signals as a whole.
  if ((result = RawSyscall(SYS_setsid)) < 0) Fail(args, "setsid", result);
  for (size_t i = 0; i < args->cgroup_count; ++i) {
    if ((result = RawSyscall(SYS_write, args->cgroup_fds[i], reinterpret_cast<long>("0"), 1)) !=
        1) {
      Fail(args, "joining the task's cgroup", result < 0 ? result : -EIO);
    }
  }
  for (const ResourceLimit& limit : request.rlimits) {
    const rlimit value{limit.value, limit.value};
    if ((result = RawSyscall(SYS_prlimit64, 0, limit.resource, reinterpret_cast<long>(&value),
                             0)) != 0) {
      Fail(args, "setrlimit", result);
    }
  }
  if (request.run_as.has_value()) {
    const gid_t gid = request.run_as->gid;
    if ((result = RawSyscall(SYS_setgroups, 1, reinterpret_cast<long>(&gid))) != 0) {
      Fail(args, "setgroups", result);
    }
    if ((result = RawSyscall(SYS_setresgid, gid, gid, gid)) != 0) Fail(args, "setgid", result);
    const uid_t uid = request.run_as->uid;
    if ((result = RawSyscall(SYS_setresuid, uid, uid, uid)) != 0) Fail(args, "setuid", result);
  }
  if (!request.work_dir.empty() &&
      (result = RawSyscall(SYS_chdir, reinterpret_cast<long>(request.work_dir.c_str()))) != 0) {
    Fail(args, "entering the working directory", result);
  }
  long null_fd = args->stdin_fd;
  if (null_fd < 0 && (null_fd = RawSyscall(SYS_openat, AT_FDCWD,
                                           reinterpret_cast<long>("/dev/null"), O_RDONLY)) < 0) {
    Fail(args, "opening /dev/null", null_fd);
  }
  if ((result = MoveTo(static_cast<int>(null_fd), STDIN_FILENO)) < 0 ||
      (result = MoveTo(args->stdout_fd, STDOUT_FILENO)) < 0 ||
      (result = MoveTo(args->stderr_fd, STDERR_FILENO)) < 0) {
    Fail(args, "redirecting stdio", result);
  }
  // The task gets its stdio and nothing else, even a descriptor some
  // library opened without O_CLOEXEC, whether the child copied a few of
  // the agent's or the whole table. Before Linux 5.9 (no close_range),
  // close-on-exec does what it can.
  if (RawSyscall(SYS_close_range, 3, ~0U, 0) != 0 && args->stdin_fd < 0 &&
      null_fd > STDERR_FILENO) {
    RawSyscall(SYS_close, null_fd);
  }
  const uint64_t no_signals = 0;
  RawSyscall(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&no_signals), 0, 8);
  result = RawSyscall(SYS_execve, reinterpret_cast<long>(request.path.c_str()),
                      reinterpret_cast<long>(args->argv), reinterpret_cast<long>(args->envp));
  Fail(args, "exec", result);
}

// What a child's failure before its exec is reported as.
absl::Status ChildFailure(const ChildArgs& args, const std::string& command) {
  if (std::strcmp(args.step, "exec") == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run \"", command, "\": ", std::strerror(args.error)));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot run \"", command, "\": ", args.step, ": ", std::strerror(args.error)));
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

SpawnDescriptors::SpawnDescriptors(int groups, int fds_per_group)
    : fds_per_group_(std::clamp(fds_per_group, 2, kMaxGroupFds)) {
  null_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Without close_range (Linux 5.9) every spawn copies the table.
  if (null_fd_ < 0 || syscall(SYS_close_range, ~0U - 1, ~0U, 0U) != 0) return;
  const int count = std::max(groups, 0);
  groups_ = std::make_unique<Group[]>(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    for (int slot = 0; slot < fds_per_group_; ++slot) {
      int& fd = groups_[i].fds[slot];
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
  for (int i = std::max(from, 0); i < to && i < fds_per_group_; ++i) {
    dup3(null_fd_, group.fds[i], O_CLOEXEC);
  }
}

SpawnDescriptors::Lease SpawnDescriptors::Acquire(int used) {
  Lease lease;
  if (used > fds_per_group_) return lease;
  int taken_over_used = 0;
  {
    absl::MutexLock lock(&mutex_);
    // The lowest group free, or whose child has its copy already: a child
    // copies every descriptor below its group's, so low ones are cheaper.
    int found = -1;
    for (int i = 0; i < group_count_ && found < 0; ++i) {
      if (holders_[i].lease == 0 || groups_[i].copied.load(std::memory_order_acquire)) found = i;
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

struct SpawnInFlight::State {
  SpawnRequest request;  // the child's, until its exec
  std::vector<char*> argv;
  std::vector<char*> envp;
  ChildArgs args;
  std::unique_ptr<char[]> stack;
  SpawnDescriptors* descriptors = nullptr;
  SpawnDescriptors::Lease lease;
};

SpawnInFlight::SpawnInFlight() : state_(std::make_unique<State>()) {}

SpawnInFlight::~SpawnInFlight() { Exited(); }

void SpawnInFlight::Exited() {
  if (state_->descriptors != nullptr) state_->descriptors->Release(state_->lease);
  state_->descriptors = nullptr;
  state_->lease = {};
}

absl::Status SpawnInFlight::Failure() const {
  if (state_->args.step == nullptr) return absl::OkStatus();
  return ChildFailure(state_->args, state_->request.argv[0]);
}

bool SpawnWithoutWaitingAvailable() { return kRawSyscalls; }

absl::StatusOr<SpawnedProcess> SpawnProcess(SpawnRequest request, SpawnDescriptors* descriptors,
                                            SpawnMode mode) {
  if (request.argv.empty()) return absl::InvalidArgumentError("empty command");
  const bool wait = mode == SpawnMode::kWaitForExec || !SpawnWithoutWaitingAvailable();
  // Without waiting, what the child reads lives until the process is reaped.
  std::unique_ptr<SpawnInFlight> in_flight;
  SpawnInFlight::State local;
  SpawnInFlight::State* state = &local;
  if (!wait) {
    in_flight = std::make_unique<SpawnInFlight>();
    state = in_flight->state_.get();
    state->request = std::move(request);
    state->stack = std::make_unique_for_overwrite<char[]>(kNoWaitStackBytes);
  }
  const SpawnRequest& kept = wait ? request : state->request;
  state->argv.reserve(kept.argv.size() + 1);
  for (const std::string& arg : kept.argv) state->argv.push_back(const_cast<char*>(arg.c_str()));
  state->argv.push_back(nullptr);
  state->envp.reserve(kept.env.size() + 1);
  for (const std::string& entry : kept.env) {
    state->envp.push_back(const_cast<char*>(entry.c_str()));
  }
  state->envp.push_back(nullptr);
  ChildArgs& args = state->args;
  args.request = &kept;
  args.argv = state->argv.data();
  args.envp = state->envp.data();
  args.stdout_fd = kept.stdout_fd;
  args.stderr_fd = kept.stderr_fd;
  args.cgroup_fds = kept.cgroup_procs_fds.data();
  args.cgroup_count = kept.cgroup_procs_fds.size();
  SpawnDescriptors::Lease lease;
  int flags = CLONE_VM | CLONE_PIDFD | SIGCHLD | (wait ? CLONE_VFORK : 0);
  const int used = 2 + static_cast<int>(kept.cgroup_procs_fds.size());
  if (descriptors != nullptr) {
    args.stdin_fd = descriptors->null_fd();
    lease = descriptors->Acquire(used);
  }
  if (SpawnDescriptors::Group* group = lease.group; group != nullptr) {
    bool placed = dup3(kept.stdout_fd, group->fds[0], O_CLOEXEC) >= 0 &&
                  dup3(kept.stderr_fd, group->fds[1], O_CLOEXEC) >= 0;
    for (size_t i = 0; placed && i < kept.cgroup_procs_fds.size(); ++i) {
      placed = dup3(kept.cgroup_procs_fds[i], group->fds[2 + i], O_CLOEXEC) >= 0;
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
  char* stack_top = ChildStackTop();
  if (!wait) {
    // The stack grows down; 16-byte aligned.
    const auto top = reinterpret_cast<uintptr_t>(state->stack.get() + kNoWaitStackBytes);
    stack_top = reinterpret_cast<char*>(top & ~uintptr_t{15});
  }

  // No signal reaches the child before it has reset the handlers.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  const pid_t pid = clone(ChildMain, stack_top, flags, &args, &pidfd);
  const int clone_error = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (wait || pid < 0) {
    // The child has its copies (or is gone): the pipes must not stay open
    // here as well, or they would never end.
    if (descriptors != nullptr) descriptors->Release(lease);
  } else {
    // Until the process exits, or another spawn takes the group over once
    // the child has its copy (SpawnInFlight::Exited).
    state->descriptors = descriptors;
    state->lease = lease;
  }
  if (pid < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start a process: clone: ", std::strerror(clone_error)));
  }
  if (wait && args.step != nullptr) {
    // The child has exited: reap it here, nobody else knows of it.
    waitpid(pid, nullptr, 0);
    if (pidfd >= 0) close(pidfd);
    return ChildFailure(args, kept.argv[0]);
  }
  // CLONE_PIDFD made it close-on-exec already.
  return SpawnedProcess{pid, pidfd, (flags & CLONE_FILES) == 0, std::move(in_flight)};
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
