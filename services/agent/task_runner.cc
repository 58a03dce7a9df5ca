#include "services/agent/task_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
#include "libs/logging/logger.h"
#include "services/agent/work_dirs.h"

namespace gyre::agent {
namespace {

// The most a task may pass downstream (the orchestrator keeps no more).
constexpr size_t kMaxOutputJsonBytes = limits::kMaxOutputJsonBytes;

// The cgroup.procs files a task joins (TaskCgroup): v1's memory and cpu
// hierarchies, or v2's one; none without cgroups.
int CgroupFilesPerTask(const TaskCgroups* cgroups) {
  if (cgroups == nullptr) return 0;
  switch (cgroups->mode()) {
    case TaskCgroups::Mode::kV1:
      return 2;
    case TaskCgroups::Mode::kV2:
      return 1;
    case TaskCgroups::Mode::kNone:
      return 0;
  }
  return 0;
}

// Reads what the task left at $GYRE_OUTPUT, at most `cap` bytes, from the
// task's working directory `dir_fd` (opened before the task ran, so a task
// that swaps its directory for a symlink cannot redirect the read). The
// task controls that path: a FIFO there would block a plain open or read
// for ever (holding the slot even through cancel), and a symlink would make
// the agent read any file it can. So the open neither follows a symlink nor
// waits for a writer, and only a regular file is read. No file: no output.
// `*found`: something is at that name (false only when nothing is).
absl::StatusOr<std::string> ReadTaskOutput(int dir_fd, const char* name, size_t cap, bool* found) {
  const int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  *found = fd >= 0 || errno != ENOENT;
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          "$GYRE_OUTPUT is a symbolic link; write the output to the file itself");
    }
    return absl::FailedPreconditionError(
        absl::StrCat("$GYRE_OUTPUT cannot be opened: ", std::strerror(errno)));
  }
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        "$GYRE_OUTPUT is not a regular file (a FIFO, device or directory is never read); "
        "write the output to the file itself");
  }
  std::string data(cap, '\0');
  size_t filled = 0;
  while (filled < cap) {
    const ssize_t n = read(fd, data.data() + filled, cap - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    filled += static_cast<size_t>(n);
  }
  close(fd);
  data.resize(filled);
  return data;
}

// Appends what fits under the cap, counting everything; passes the kept
// bytes on to `on_output` (stream 1 or 2) when set.
void Capture(const char* data, size_t size, const TaskLaunch& launch, int stream, std::string* kept,
             int64_t* total) {
  *total += static_cast<int64_t>(size);
  const size_t cap = launch.max_output_bytes;
  if (kept->size() >= cap) return;
  const size_t keep = std::min(size, cap - kept->size());
  const int64_t offset = static_cast<int64_t>(kept->size());
  kept->append(data, keep);
  if (launch.on_output) launch.on_output(stream, offset, absl::string_view(data, keep));
}

// The task's environment, as execve takes it: what the assignment gives
// (context, task env, GYRE_*), the agent's PATH and LANG when it sets none,
// HOME (the run_as user's, else the agent's) when it sets none, and
// GYRE_OUTPUT. Nothing else of the agent's (its own GYRE_* configuration
// least of all). `path` is the PATH the executable is looked up in.
struct TaskEnvironment {
  std::vector<std::string> entries;  // "KEY=value"
  std::string path;
};
// The PATH the task's command is looked up in: the task's, else the agent's.
std::string SearchPath(const TaskLaunch& launch) {
  if (auto path = launch.env.find("PATH"); path != launch.env.end()) return path->second;
  if (const char* agent_path = std::getenv("PATH")) return agent_path;
  return "/usr/bin:/bin";
}

TaskEnvironment BuildEnvironment(const TaskLaunch& launch, const std::string& output) {
  TaskEnvironment env;
  env.entries.reserve(launch.env.size() + 4);
  for (const auto& [key, value] : launch.env) {
    if (key != "GYRE_OUTPUT") env.entries.push_back(absl::StrCat(key, "=", value));
  }
  auto given = [&launch](const char* key) { return launch.env.find(key) != launch.env.end(); };
  for (const char* inherited : {"PATH", "LANG"}) {
    if (given(inherited)) continue;
    if (const char* value = std::getenv(inherited)) {
      env.entries.push_back(absl::StrCat(inherited, "=", value));
    }
  }
  if (!given("HOME")) {
    if (launch.run_as.has_value()) {
      env.entries.push_back(
          absl::StrCat("HOME=", launch.run_as->home.empty() ? "/" : launch.run_as->home));
    } else if (const char* home = std::getenv("HOME")) {
      env.entries.push_back(absl::StrCat("HOME=", home));
    }
  }
  env.entries.push_back(absl::StrCat("GYRE_OUTPUT=", output));
  env.path = SearchPath(launch);
  return env;
}

// The command the task's process runs, before its PATH search.
const std::string& CommandName(const TaskLaunch& launch) {
  static const std::string* const kShell = new std::string("/bin/sh");
  return launch.shell ? *kShell : launch.argv.front();
}

// Starts the task: in a session and process group of its own (so that it
// is stopped with everything it started), as run_as, with its rlimits and
// in its cgroup, no signal blocked or ignored, stdin from /dev/null, stdout
// and stderr on `stdout_fd` and `stderr_fd`, in its working directory,
// with exactly `env`.
absl::StatusOr<SpawnedProcess> SpawnTask(const TaskLaunch& launch, TaskEnvironment env,
                                         ExecutableCache* executables,
                                         SpawnDescriptors* descriptors, int stdout_fd,
                                         int stderr_fd, const std::vector<int>& cgroup_procs_fds,
                                         SpawnMode mode) {
  SpawnRequest request;
  request.argv = launch.shell ? std::vector<std::string>{"/bin/sh", "-c",
                                                         launch.argv.empty() ? "" : launch.argv[0]}
                              : launch.argv;
  if (request.argv.empty()) return absl::InvalidArgumentError("empty command");
  absl::StatusOr<std::string> executable = executables->Resolve(request.argv[0], env.path);
  if (!executable.ok()) return executable.status();
  request.path = *std::move(executable);
  request.env = std::move(env.entries);
  request.work_dir = launch.work_dir;
  request.stdout_fd = stdout_fd;
  request.stderr_fd = stderr_fd;
  request.run_as = launch.run_as;
  request.rlimits = launch.rlimits;
  request.cgroup_procs_fds = cgroup_procs_fds;
  absl::StatusOr<SpawnedProcess> spawned = SpawnProcess(std::move(request), descriptors, mode);
  // The executable went away since it was found: search again next time.
  if (!spawned.ok()) executables->Forget(CommandName(launch), env.path);
  return spawned;
}

// Stops a task that outlives its timeout or is cancelled: SIGTERM to its
// process group first, then SIGKILL once the grace after it has passed
// (a task may ignore SIGTERM, or take too long over it).
class Escalation {
 public:
  Escalation(pid_t group, absl::Time deadline, absl::Duration timeout_grace)
      : group_(group), deadline_(deadline), timeout_grace_(timeout_grace) {}

  // Sends what is due at `now`; returns when something next falls due.
  absl::Time Enforce(absl::Time now, bool cancelled, absl::Duration cancel_grace) {
    if (!stopped_as_.has_value() && (now >= deadline_ || cancelled)) {
      stopped_as_ = cancelled ? TaskOutcome::Kind::kCancelled : TaskOutcome::Kind::kTimedOut;
      Signal(SIGTERM);
      kill_at_ = now + (cancelled ? cancel_grace : timeout_grace_);
    }
    if (stopped_as_.has_value() && now >= kill_at_) {
      Signal(SIGKILL);
      kill_at_ = absl::InfiniteFuture();
    }
    return stopped_as_.has_value() ? kill_at_ : deadline_;
  }

  // Why the task is being stopped, once it is.
  std::optional<TaskOutcome::Kind> stopped_as() const { return stopped_as_; }

 private:
  // The process group; or the process alone, before it has made its group
  // (a spawn that does not wait returns before the child's setsid).
  void Signal(int sig) const {
    if (kill(-group_, sig) != 0 && errno == ESRCH) kill(group_, sig);
  }

  const pid_t group_;
  const absl::Time deadline_;
  const absl::Duration timeout_grace_;
  std::optional<TaskOutcome::Kind> stopped_as_;
  absl::Time kill_at_ = absl::InfiniteFuture();
};

// Waits for the process that has exited and records its exit code or
// signal, CPU time and peak memory. Returns its wait status.
int Reap(pid_t pid, TaskOutcome* outcome) {
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  outcome->cpu_time = absl::Seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                      absl::Microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  outcome->peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  outcome->peak_memory_source = "wait4 maxrss";
  if (WIFEXITED(status)) outcome->exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) outcome->signal = WTERMSIG(status);
  return status;
}

// How the attempt ended, from the wait status and why the agent stopped
// it (if it did), with the error a reader is shown.
void ClassifyEnd(int status, std::optional<TaskOutcome::Kind> stopped_as, absl::Duration timeout,
                 int64_t memory_limit, TaskOutcome* outcome) {
  if (stopped_as.has_value()) {
    outcome->kind = *stopped_as;
  } else {
    outcome->kind = WIFEXITED(status) && outcome->exit_code == 0 ? TaskOutcome::Kind::kSucceeded
                                                                 : TaskOutcome::Kind::kFailed;
  }
  if (outcome->kind == TaskOutcome::Kind::kFailed && outcome->oom_killed) {
    outcome->error = absl::StrCat("killed: out of memory, limit ", FormatBytes(memory_limit),
                                  ", peak ", FormatBytes(outcome->peak_rss_bytes));
  } else if (outcome->kind == TaskOutcome::Kind::kFailed && outcome->signal != 0) {
    outcome->error =
        absl::StrCat("killed by signal ", outcome->signal, " (", strsignal(outcome->signal), ")");
  } else if (outcome->kind == TaskOutcome::Kind::kFailed) {
    outcome->error = absl::StrCat("exit code ", outcome->exit_code);
  } else if (outcome->kind == TaskOutcome::Kind::kTimedOut) {
    outcome->error = absl::StrCat("timed out after ", absl::FormatDuration(timeout));
  }
}

// Takes what the task left at $GYRE_OUTPUT into the outcome; a succeeded
// task whose output cannot be passed on (unreadable, or over the cap)
// fails instead. Returns whether anything was at $GYRE_OUTPUT (to remove).
bool CollectOutputJson(int work_dir_fd, TaskOutcome* outcome) {
  auto fail = [outcome](std::string error) {
    if (outcome->kind != TaskOutcome::Kind::kSucceeded) return;
    outcome->kind = TaskOutcome::Kind::kFailed;
    outcome->error = std::move(error);
  };
  // One byte more than may pass tells a file cut at the cap from one that
  // fits: a cut one would reach the orchestrator as broken JSON.
  bool found = true;
  absl::StatusOr<std::string> output =
      work_dir_fd >= 0
          ? ReadTaskOutput(work_dir_fd, kOutputName, kMaxOutputJsonBytes + 1, &found)
          : absl::FailedPreconditionError("the task's working directory cannot be opened");
  if (!output.ok()) {
    fail(std::string(output.status().message()));
    return found;
  }
  if (output->size() > kMaxOutputJsonBytes) {
    fail(absl::StrCat("$GYRE_OUTPUT holds more than ", kMaxOutputJsonBytes,
                      " bytes, the most a task may pass downstream"));
    return found;
  }
  outcome->output_json = *std::move(output);
  return found;
}

}  // namespace

// One running subprocess, from its spawn to its report. Only one thread
// uses it at a time: the thread that spawns it until it is registered, then
// the poller, then (a slow completion) a pooled thread.
struct TaskRunner::Process {
  Handle handle = 0;
  TaskLaunch launch;
  Callback done;
  absl::Time started;
  TaskOutcome outcome;
  WorkDir work_dir;
  std::unique_ptr<TaskCgroup> cgroup;
  // What the child reads until its exec (SpawnMode::kNoWait), until reaped.
  std::unique_ptr<SpawnInFlight> in_flight;
  pid_t pid = -1;
  int pidfd = -1;
  int pipes[2] = {-1, -1};  // read ends: [0] stdout, [1] stderr
  std::optional<Escalation> escalation;
  bool exited = false;
  // Cancelled, with this grace between SIGTERM and SIGKILL.
  bool cancelled = false;
  absl::Duration cancel_grace;
  // After the exit, while something holds the pipes: when it is killed again.
  absl::Time kill_again_at = absl::InfiniteFuture();
  // When the poller must next look at it (its key in the poller's timers).
  absl::Time due = absl::InfiniteFuture();
  bool completing = false;
  // Its working directory held nothing but (at most) the output.
  bool work_dir_emptied = false;

  int open_pipes() const { return (pipes[0] >= 0 ? 1 : 0) + (pipes[1] >= 0 ? 1 : 0); }
};

namespace {

// What an epoll event is about: the process's address with the fd's tag in
// its low bits (a Process is aligned to 8). 0 is the wake-up eventfd.
constexpr uint64_t kPidfdTag = 0;
constexpr uint64_t kStdoutTag = 1;
constexpr uint64_t kStderrTag = 2;
constexpr uint64_t kTagMask = 3;

// At most this many events per epoll_wait; more wait for the next.
constexpr int kMaxEvents = 256;

// Once the leader has exited, whatever still holds the pipes is killed
// again this often until they end.
constexpr absl::Duration kKillAfterExitEvery = absl::Milliseconds(100);

int NewEpoll() {
  const int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) {
    logging::Error("epoll_create1 failed: the agent cannot supervise tasks",
                   {{"error", std::strerror(errno)}});
    std::abort();
  }
  return fd;
}

// Opens the task's stdout and stderr pipes: `read_ends` for the agent,
// `write_ends` for the child; on failure none is left open.
absl::Status OpenPipes(int (&read_ends)[2], int (&write_ends)[2]) {
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      const int error = errno;
      for (int j = 0; j < i; ++j) {
        close(read_ends[j]);
        close(write_ends[j]);
        read_ends[j] = write_ends[j] = -1;
      }
      return absl::InternalError(absl::StrCat("cannot create pipes: ", std::strerror(error)));
    }
    read_ends[i] = fds[0];
    write_ends[i] = fds[1];
  }
  return absl::OkStatus();
}

}  // namespace

TaskRunner::TaskRunner(Clock* clock, std::shared_ptr<const TaskCgroups> cgroups)
    : clock_(clock),
      cgroups_(std::move(cgroups)),
      // A spawn that does not wait for the exec comes back for the next
      // task before its child has taken its copy: more groups.
      spawn_descriptors_(
          SpawnWithoutWaitingAvailable()
              ? 64
              : std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 4, 16),
          2 + CgroupFilesPerTask(cgroups_.get())),
      work_dirs_(std::make_unique<WorkDirPool>()),
      timers_(clock),
      epoll_fd_(NewEpoll()),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      blocking_work_(clock, absl::Minutes(1)) {
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.u64 = 0;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake);
  poller_ = std::thread([this] { Poll(); });
}

TaskRunner::~TaskRunner() {
  std::vector<Handle> live;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [handle, process] : processes_) live.push_back(handle);
    for (const auto& [handle, cancel] : launching_) live.push_back(handle);
  }
  for (const Handle handle : live) Cancel(handle, absl::ZeroDuration());
  {
    absl::MutexLock lock(&mutex_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return processes_.empty() && launching_.empty();
    };
    // Real time: SIGKILL went out at once, whatever the clock.
    mutex_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(30));
    stopping_ = true;
  }
  Wake();
  poller_.join();
  close(epoll_fd_);
  close(wake_fd_);
}

int TaskRunner::running() {
  absl::MutexLock lock(&mutex_);
  return running_;
}

void TaskRunner::Wake() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

TaskRunner::Handle TaskRunner::Start(TaskLaunch launch, Callback done) {
  Handle handle;
  {
    absl::MutexLock lock(&mutex_);
    handle = next_handle_++;
    running_++;
  }
  if (launch.builtin == TaskLaunch::Builtin::kNoop) {
    {
      absl::MutexLock lock(&mutex_);
      running_--;
    }
    TaskOutcome outcome;
    outcome.kind = TaskOutcome::Kind::kSucceeded;
    done(std::move(outcome));
    return handle;
  }
  if (launch.builtin == TaskLaunch::Builtin::kSleep) {
    const absl::Time started = clock_->Now();
    absl::MutexLock lock(&mutex_);
    sleep_callbacks_[handle] = std::move(done);
    sleeps_[handle] = timers_.ScheduleAfter(launch.sleep, [this, handle, started] {
      Callback callback;
      {
        absl::MutexLock lock(&mutex_);
        auto it = sleep_callbacks_.find(handle);
        if (it == sleep_callbacks_.end()) return;
        callback = std::move(it->second);
        sleep_callbacks_.erase(it);
        sleeps_.erase(handle);
        running_--;
      }
      TaskOutcome outcome;
      outcome.kind = TaskOutcome::Kind::kSucceeded;
      outcome.wall_time = clock_->Now() - started;
      callback(std::move(outcome));
    });
    return handle;
  }
  processes_running_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mutex_);
    launching_[handle] = std::nullopt;
  }
  if (SpawnWithoutWaitingAvailable()) {
    // The spawn does not wait for the child's exec: here, at once. A
    // pooled thread for each (woken, then waiting ~5 ms for a child queued
    // behind a hundred others for a CPU) cost ~30 us per task
    // (bench/README.md).
    Launch(handle, std::move(launch), std::move(done));
    return handle;
  }
  // Spawned on a pooled thread: a spawn waits for its child's exec, and the
  // children of one burst of assignments exec side by side.
  blocking_work_.Run([this, handle, launch = std::move(launch), done = std::move(done)]() mutable {
    Launch(handle, std::move(launch), std::move(done));
  });
  return handle;
}

void TaskRunner::Launch(Handle handle, TaskLaunch launch, Callback done) {
  auto process = std::make_unique<Process>();
  process->handle = handle;
  process->started = clock_->Now();
  process->work_dir = PrepareWorkDir(&launch.work_dir, launch.run_as,
                                     launch.remove_work_dir ? work_dirs_.get() : nullptr);
  // Only a task that declares limits gets a cgroup: creating and removing
  // one costs more than running /bin/true.
  absl::Status prepared = absl::OkStatus();
  if (cgroups_ != nullptr && cgroups_->enforced() &&
      (launch.limits.memory_bytes > 0 || launch.limits.cpu > 0)) {
    absl::StatusOr<std::unique_ptr<TaskCgroup>> created = cgroups_->Create(launch.limits);
    if (created.ok()) {
      process->cgroup = *std::move(created);
    } else {
      prepared = created.status();
    }
  }
  int write_ends[2] = {-1, -1};
  if (prepared.ok()) prepared = OpenPipes(process->pipes, write_ends);
  absl::StatusOr<SpawnedProcess> spawned =
      prepared.ok() ? SpawnTask(launch, BuildEnvironment(launch, process->work_dir.output_path),
                                &executables_, &spawn_descriptors_, write_ends[0], write_ends[1],
                                process->cgroup != nullptr ? process->cgroup->procs_fds()
                                                           : std::vector<int>{},
                                SpawnMode::kNoWait)
                    : absl::StatusOr<SpawnedProcess>(prepared);
  // The child holds its own copies: the agent's must go, or the pipes would
  // never reach their end.
  for (int fd : write_ends) {
    if (fd >= 0) close(fd);
  }
  process->launch = std::move(launch);
  process->done = std::move(done);
  if (!spawned.ok()) {
    for (int& fd : process->pipes) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
    process->outcome.error = std::string(spawned.status().message());
    if (process->launch.remove_work_dir && process->work_dir.fd >= 0) {
      process->work_dir_emptied = IsEmptyDirectory(process->work_dir.fd);
    }
    {
      absl::MutexLock lock(&mutex_);
      launching_.erase(handle);
      processes_[handle];  // empty: nothing to cancel; Finish erases it
    }
    TaskOutcome outcome = std::move(process->outcome);
    Finish(std::move(process), std::move(outcome));
    return;
  }
  process->pid = spawned->pid;
  process->pidfd = spawned->pidfd;
  process->in_flight = std::move(spawned->in_flight);
  if (prometheus::Counter* spawns =
          spawned->copied_table ? spawns_copied_table_ : spawns_shared_table_) {
    spawns->Increment();
  }
  // Before the poller can see it exit, so the report comes after.
  if (process->launch.on_spawned) process->launch.on_spawned(spawned->pid);
  if (!process->launch.log_name.empty()) {
    logging::Debug("task process started", {{"attempt", process->launch.log_name},
                                            {"pid", static_cast<int64_t>(spawned->pid)},
                                            {"dir", process->launch.work_dir},
                                            {"cgroup", process->cgroup != nullptr}});
  }
  const absl::Time deadline = process->launch.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : process->started + process->launch.timeout;
  process->escalation.emplace(process->pid, deadline, process->launch.kill_grace);
  process->due = deadline;  // the poller's timers take it from here
  static_assert(alignof(Process) > kTagMask, "the tags need the low bits of its address");
  const uint64_t address = reinterpret_cast<uint64_t>(process.get());
  const std::pair<int, uint64_t> watched[] = {{process->pidfd, address | kPidfdTag},
                                              {process->pipes[0], address | kStdoutTag},
                                              {process->pipes[1], address | kStderrTag}};
  bool wake = false;
  {
    absl::MutexLock lock(&mutex_);
    processes_[handle] = std::move(process);
    // A cancel that came while it was being spawned.
    if (auto it = launching_.find(handle); it != launching_.end()) {
      if (it->second.has_value()) {
        cancelled_.emplace_back(handle, *it->second);
        wake = true;
      }
      launching_.erase(it);
    }
    if (deadline != absl::InfiniteFuture()) {
      new_deadlines_.push_back(handle);
      // A poller asleep until later must look earlier.
      if (deadline < poller_due_) {
        poller_due_ = deadline;
        wake = true;
      }
    }
  }
  // Watched once it is in processes_ (the poller, which then owns it, takes
  // the lock after every wait); from here on this thread does not touch it.
  for (const auto& [fd, data] : watched) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = data;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
  }
  if (wake) Wake();
}

void TaskRunner::Cancel(Handle handle, absl::Duration grace) {
  Callback sleeper;
  {
    absl::MutexLock lock(&mutex_);
    auto sleep = sleeps_.find(handle);
    if (sleep != sleeps_.end()) {
      timers_.Cancel(sleep->second);
      sleeper = std::move(sleep_callbacks_[handle]);
      sleep_callbacks_.erase(handle);
      sleeps_.erase(sleep);
      running_--;
    } else if (auto launching = launching_.find(handle); launching != launching_.end()) {
      // Not spawned yet: stopped as soon as it is (Launch).
      if (!launching->second.has_value()) launching->second = grace;
      return;
    } else {
      auto it = processes_.find(handle);
      if (it == processes_.end() || it->second == nullptr) return;
      cancelled_.emplace_back(handle, grace);
    }
  }
  if (sleeper == nullptr) {
    Wake();
    return;
  }
  TaskOutcome outcome;
  outcome.kind = TaskOutcome::Kind::kCancelled;
  sleeper(std::move(outcome));
}

void TaskRunner::OnEvent(Process& process, uint64_t which) {
  if (which == kPidfdTag) {
    if (process.exited) return;
    process.exited = true;
    // The descriptor group that held the task's pipes for its child, if no
    // other spawn took it over: released, or the pipes would never end.
    if (process.in_flight != nullptr) process.in_flight->Exited();
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, process.pidfd, nullptr);
    close(process.pidfd);
    process.pidfd = -1;
    // The leader is gone; whatever still holds the pipes is killed too. It
    // is not reaped yet, so its group id cannot have been reused.
    kill(-process.pid, SIGKILL);
    if (process.open_pipes() > 0) process.kill_again_at = clock_->Now() + kKillAfterExitEvery;
    return;
  }
  const int i = which == kStdoutTag ? 0 : 1;
  int& fd = process.pipes[i];
  if (fd < 0) return;
  char* const buffer = read_buffer_.get();
  const ssize_t n = read(fd, buffer, kReadBufferBytes);
  if (n > 0) {
    TaskOutcome& outcome = process.outcome;
    if (i == 0) {
      Capture(buffer, static_cast<size_t>(n), process.launch, 1, &outcome.stdout_head,
              &outcome.stdout_bytes);
    } else {
      Capture(buffer, static_cast<size_t>(n), process.launch, 2, &outcome.stderr_head,
              &outcome.stderr_bytes);
    }
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    // Out of epoll before it is closed: a child being spawned meanwhile
    // (by this runner or by anything else in the process, posix_spawn
    // included) holds a copy until its exec, which would keep it
    // registered, its events naming a task that is gone.
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    fd = -1;
  }
}

absl::Time TaskRunner::Enforce(Process& process, absl::Time now) {
  absl::Time next = process.escalation->Enforce(now, process.cancelled, process.cancel_grace);
  if (process.exited && process.open_pipes() > 0) {
    // Something the task started holds its pipes after it exited.
    if (now >= process.kill_again_at) {
      kill(-process.pid, SIGKILL);
      process.kill_again_at = now + kKillAfterExitEvery;
    }
    next = std::min(next, process.kill_again_at);
  }
  return next;
}

void TaskRunner::Poll() {
  // The poller's own: processes by when they next need it.
  std::set<std::pair<absl::Time, Process*>> timers;
  auto reschedule = [&timers](Process* process, absl::Time due) {
    if (process->due == due) return;
    timers.erase({process->due, process});
    process->due = due;
    if (due != absl::InfiniteFuture()) timers.emplace(due, process);
  };
  std::vector<epoll_event> events(kMaxEvents);
  std::vector<std::pair<Handle, absl::Duration>> cancels;
  std::vector<Handle> deadlines;
  std::vector<Process*> touched;
  std::vector<Process*> completed;
  int wait_ms = -1;
  while (true) {
    const int ready = epoll_wait(epoll_fd_, events.data(), kMaxEvents, wait_ms);
    touched.clear();
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) return;
      // Handles, not pointers: a process may have been reported since.
      cancels.swap(cancelled_);
      deadlines.swap(new_deadlines_);
      for (const auto& [handle, grace] : cancels) {
        auto it = processes_.find(handle);
        if (it == processes_.end() || it->second == nullptr || it->second->completing) continue;
        if (!it->second->cancelled) {
          it->second->cancelled = true;
          it->second->cancel_grace = grace;
        }
        touched.push_back(it->second.get());
      }
      for (const Handle handle : deadlines) {
        auto it = processes_.find(handle);
        if (it == processes_.end() || it->second == nullptr || it->second->completing) continue;
        const absl::Time due = it->second->due;
        it->second->due = absl::InfiniteFuture();
        reschedule(it->second.get(), due);
      }
    }
    cancels.clear();
    deadlines.clear();
    for (int i = 0; i < ready; ++i) {
      const uint64_t data = events[static_cast<size_t>(i)].data.u64;
      if (data == 0) {
        uint64_t ignored;
        (void)!read(wake_fd_, &ignored, sizeof(ignored));
        continue;
      }
      auto* process = reinterpret_cast<Process*>(data & ~kTagMask);
      OnEvent(*process, data & kTagMask);
      touched.push_back(process);
    }
    const absl::Time now = clock_->Now();
    // Due: their timeout, their grace, or another kill after the exit.
    while (!timers.empty() && timers.begin()->first <= now) {
      touched.push_back(timers.begin()->second);
      timers.erase(timers.begin());
      touched.back()->due = absl::InfiniteFuture();
    }
    completed.clear();
    for (Process* process : touched) {
      if (process->completing) continue;
      if (process->exited && process->open_pipes() == 0) {
        process->completing = true;
        reschedule(process, absl::InfiniteFuture());
        completed.push_back(process);
        continue;
      }
      reschedule(process, Enforce(*process, now));
    }
    for (Process* process : completed) {
      std::unique_ptr<Process> owned;
      {
        absl::MutexLock lock(&mutex_);
        // The entry stays (empty) until the attempt is reported.
        owned = std::move(processes_[process->handle]);
      }
      Complete(std::move(owned));
    }
    const absl::Time next = timers.empty() ? absl::InfiniteFuture() : timers.begin()->first;
    bool queued = false;
    {
      absl::MutexLock lock(&mutex_);
      poller_due_ = next;
      // Queued while this round ran (its Start may have seen an earlier
      // due time and not woken the poller): looked at right away.
      queued = !new_deadlines_.empty() || !cancelled_.empty();
    }
    if (queued) {
      wait_ms = 0;
    } else if (next == absl::InfiniteFuture()) {
      wait_ms = -1;
    } else {
      // epoll_wait is woken by events and Wake(), not by the clock: it
      // returns in time for what falls due next (within milliseconds of an
      // Advance, on a fake clock).
      const absl::Duration until_due = clock_->MaxRealWait(next - clock_->Now());
      wait_ms = static_cast<int>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(until_due) + 1, 0, 3'600'000));
    }
  }
}

void TaskRunner::Complete(std::unique_ptr<Process> process) {
  TaskOutcome& outcome = process->outcome;
  const int status = Reap(process->pid, &outcome);
  if (!process->launch.log_name.empty()) {
    logging::Debug("task process exited",
                   {{"attempt", process->launch.log_name},
                    {"pid", static_cast<int64_t>(process->pid)},
                    {"exit_code", outcome.exit_code},
                    {"signal", outcome.signal},
                    {"took_ms", absl::ToInt64Milliseconds(clock_->Now() - process->started)}});
  }
  bool slow = false;
  if (process->cgroup != nullptr) {
    const TaskCgroup::Usage usage = process->cgroup->Read();
    process->cgroup->KillAll();
    if (usage.peak_memory_bytes > 0) {
      outcome.peak_rss_bytes = usage.peak_memory_bytes;
      outcome.peak_memory_source = cgroups_->mode() == TaskCgroups::Mode::kV2
                                       ? "cgroup memory.peak"
                                       : "cgroup v1 memory.max_usage_in_bytes";
    }
    outcome.oom_killed = usage.oom_killed;
    if (usage.oom_killed) oom_kills_++;
    // Killed processes leave it a moment later: not waited for here.
    slow = !process->cgroup->Empty();
  }
  ClassifyEnd(status, process->escalation->stopped_as(), process->launch.timeout,
              process->launch.limits.memory_bytes, &outcome);
  if (process->in_flight != nullptr) {
    // A step before the exec failed: reported as a spawn that waited for
    // the exec reports it, with no exit code.
    const absl::Status failed = process->in_flight->Failure();
    process->in_flight.reset();
    if (!failed.ok()) {
      outcome.kind = TaskOutcome::Kind::kFailed;
      outcome.exit_code = 0;
      outcome.signal = 0;
      outcome.error = std::string(failed.message());
      // The executable may have gone away since it was found.
      executables_.Forget(CommandName(process->launch), SearchPath(process->launch));
    }
  }
  // What the task left in its own directory is gone either way; an emptied
  // directory is kept for the next task (Finish). One left empty holds no
  // output: a look at it instead of an open that fails.
  const bool own_dir = process->launch.remove_work_dir && !process->launch.work_dir.empty();
  const int dir_fd = process->work_dir.fd;
  bool emptied = own_dir && dir_fd >= 0 && IsEmptyDirectory(dir_fd);
  if (!emptied) {
    const bool had_output = CollectOutputJson(dir_fd, &outcome);
    if (own_dir && dir_fd >= 0) {
      if (had_output) unlinkat(dir_fd, kOutputName, 0);
      emptied = IsEmptyDirectory(dir_fd);
    }
  }
  if (own_dir) {
    process->work_dir_emptied = emptied;
    // Removing what it left may take long.
    slow = slow || !emptied;
  }
  TaskOutcome finished = std::move(outcome);
  if (!slow) {
    Finish(std::move(process), std::move(finished));
    return;
  }
  blocking_work_.Run(
      [this, process = std::move(process), finished = std::move(finished)]() mutable {
        Finish(std::move(process), std::move(finished));
      });
}

void TaskRunner::PrepareWorkDirs(const std::string& work_root, size_t count) {
  agent::PrepareWorkDirs(work_root, count, work_dirs_.get());
}

void TaskRunner::Finish(std::unique_ptr<Process> process, TaskOutcome outcome) {
  process->cgroup.reset();  // kept for the next task once its processes are gone
  const TaskLaunch& launch = process->launch;
  if (launch.remove_work_dir && !launch.work_dir.empty()) {
    if (process->work_dir_emptied && work_dirs_->Give(launch.work_dir, process->work_dir)) {
      process->work_dir.fd = -1;  // the pool's now
    } else {
      RemoveWorkDir(launch.work_dir);
    }
  }
  if (process->work_dir.fd >= 0) close(process->work_dir.fd);
  outcome.wall_time = clock_->Now() - process->started;
  const Handle handle = process->handle;
  // Before the report: whoever it reaches sees this process gone.
  processes_running_.fetch_sub(1, std::memory_order_relaxed);
  process->done(std::move(outcome));
  // Last: the destructor waits for this, so `done` never outlives the runner.
  process.reset();
  absl::MutexLock lock(&mutex_);
  processes_.erase(handle);
  running_--;
}

}  // namespace gyre::agent
