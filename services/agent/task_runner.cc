#include "services/agent/task_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
#include "libs/logging/logger.h"

namespace gyre::agent {
namespace {

// The most a task may pass downstream (the orchestrator keeps no more).
constexpr size_t kMaxOutputJsonBytes = limits::kMaxOutputJsonBytes;

// Reads what the task left at $GYRE_OUTPUT, at most `cap` bytes, from the
// task's working directory `dir_fd` (opened before the task ran, so a task
// that swaps its directory for a symlink cannot redirect the read). The
// task controls that path: a FIFO there would block a plain open or read
// for ever (holding the slot even through cancel), and a symlink would make
// the agent read any file it can. So the open neither follows a symlink nor
// waits for a writer, and only a regular file is read. No file: no output.
absl::StatusOr<std::string> ReadTaskOutput(int dir_fd, const char* name, size_t cap) {
  const int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
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

// The task's environment: what the assignment gives (context, task env,
// GYRE_*), the agent's PATH and LANG when it sets none, HOME (the run_as
// user's, else the agent's) when it sets none, and GYRE_OUTPUT. Nothing
// else of the agent's (its own GYRE_* configuration least of all).
std::map<std::string, std::string> BuildEnvironment(const TaskLaunch& launch,
                                                    const std::string& output) {
  std::map<std::string, std::string> env = launch.env;
  for (const char* inherited : {"PATH", "LANG"}) {
    if (env.count(inherited) == 0) {
      if (const char* value = std::getenv(inherited)) env[inherited] = value;
    }
  }
  if (env.count("HOME") == 0) {
    if (launch.run_as.has_value()) {
      env["HOME"] = launch.run_as->home.empty() ? "/" : launch.run_as->home;
    } else if (const char* home = std::getenv("HOME")) {
      env["HOME"] = home;
    }
  }
  env["GYRE_OUTPUT"] = output;
  return env;
}

std::vector<std::string> EnvironmentEntries(const std::map<std::string, std::string>& env) {
  std::vector<std::string> entries;
  entries.reserve(env.size());
  for (const auto& [key, value] : env) entries.push_back(absl::StrCat(key, "=", value));
  return entries;
}

// The name of $GYRE_OUTPUT inside the task's working directory.
constexpr char kOutputName[] = "gyre_output.json";

// The task's working directory while the attempt runs.
struct WorkDir {
  std::string output_path;  // $GYRE_OUTPUT
  int fd = -1;              // $GYRE_OUTPUT is read through it afterwards
};

// The parent directory of `path` ("" for none).
std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
}

}  // namespace

// Emptied working directories kept for later tasks. On ext4 a new
// directory takes a new inode, and finding a free one among the many just
// freed (ext4's recently_deleted and find_get_block scans) was the
// executor's largest cost per /bin/true task in the profile
// (bench/README.md). A task that leaves nothing but its output hands its
// directory on, renamed, instead of removing it. Thread-safe.
class WorkDirPool {
 public:
  ~WorkDirPool() {
    for (const auto& [parent, dir] : free_) rmdir(dir.c_str());
  }
  // Renames a kept directory (under the same parent) to `path`; false if
  // there is none.
  bool Take(const std::string& path) {
    const std::string parent = ParentOf(path);
    std::string dir;
    {
      absl::MutexLock lock(&mutex_);
      for (size_t i = free_.size(); i-- > 0;) {
        if (free_[i].first != parent) continue;
        dir = std::move(free_[i].second);
        free_.erase(free_.begin() + static_cast<ptrdiff_t>(i));
        break;
      }
    }
    if (dir.empty()) return false;
    // The last task may have opened up its mode: private again.
    if (rename(dir.c_str(), path.c_str()) == 0) return chmod(path.c_str(), 0700) == 0;
    rmdir(dir.c_str());
    return false;
  }
  // Keeps the (empty) directory `path` for a later task; false if the
  // pool is full or it cannot be kept (the caller removes it then).
  bool Give(const std::string& path) {
    const std::string parent = ParentOf(path);
    if (parent.empty()) return false;
    uint64_t number;
    {
      absl::MutexLock lock(&mutex_);
      if (free_.size() >= kMaxKept) return false;
      number = next_++;
    }
    // Hidden in the root (mode 0711: nobody else can list it).
    std::string kept = absl::StrCat(parent, "/.recycled-", getpid(), "-", number);
    if (rename(path.c_str(), kept.c_str()) != 0) return false;
    absl::MutexLock lock(&mutex_);
    free_.emplace_back(parent, std::move(kept));
    return true;
  }

 private:
  static constexpr size_t kMaxKept = 256;
  absl::Mutex mutex_;
  std::vector<std::pair<std::string, std::string>> free_ ABSL_GUARDED_BY(mutex_);
  uint64_t next_ ABSL_GUARDED_BY(mutex_) = 0;
};

namespace {

// Whether the directory open at `dir_fd` holds nothing.
bool IsEmptyDirectory(int dir_fd) {
  const int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
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
  close(fd);
  return empty;
}

// Makes `*work_dir` absolute (the child starts inside it, so no path it is
// given may be relative to where the agent was started), creates it
// private to the task (0700, owned by the user it runs as), removes a
// previous attempt's output and opens it.
WorkDir PrepareWorkDir(std::string* work_dir, const std::optional<RunAs>& run_as,
                       WorkDirPool* pool) {
  std::error_code error;  // a directory that cannot be made fails the spawn
  if (!work_dir->empty() && (*work_dir)[0] != '/') {
    *work_dir = std::filesystem::absolute(*work_dir, error).string();
  }
  if (!work_dir->empty()) {
    if (pool != nullptr && pool->Take(*work_dir)) {
      // A recycled one: empty and 0700; only its owner may need changing.
    } else if (mkdir(work_dir->c_str(), 0700) != 0) {
      if (errno == ENOENT) {
        // The root of the working directories: others may pass through it
        // (a task running as another user must reach its own) but not list.
        const std::filesystem::path parent = std::filesystem::path(*work_dir).parent_path();
        std::filesystem::create_directories(parent, error);
        chmod(parent.c_str(), 0711);
        mkdir(work_dir->c_str(), 0700);
      } else if (errno == EEXIST) {
        chmod(work_dir->c_str(), 0700);
      }
    }
    if (run_as.has_value() && chown(work_dir->c_str(), run_as->uid, run_as->gid) != 0) {
      logging::Warn("task working directory not handed to the task's user",
                    {{"dir", *work_dir}, {"error", std::strerror(errno)}});
    }
  }
  WorkDir dir;
  dir.output_path = *work_dir + "/" + kOutputName;
  std::filesystem::remove(dir.output_path, error);
  dir.fd = open(work_dir->empty() ? "/" : work_dir->c_str(),
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  return dir;
}

// Starts the task: in a session and process group of its own (so that it
// is stopped with everything it started), as run_as, with its rlimits and
// in its cgroup, no signal blocked or ignored, stdin from /dev/null, stdout
// and stderr on `stdout_fd` and `stderr_fd`, in its working directory,
// with exactly `env`.
absl::StatusOr<SpawnedProcess> SpawnTask(const TaskLaunch& launch,
                                         const std::map<std::string, std::string>& env,
                                         ExecutableCache* executables, int stdout_fd, int stderr_fd,
                                         const std::vector<int>& cgroup_procs_fds) {
  SpawnRequest request;
  request.argv = launch.shell ? std::vector<std::string>{"/bin/sh", "-c",
                                                         launch.argv.empty() ? "" : launch.argv[0]}
                              : launch.argv;
  if (request.argv.empty()) return absl::InvalidArgumentError("empty command");
  auto path = env.find("PATH");
  const std::string path_env = path == env.end() ? "/usr/bin:/bin" : path->second;
  absl::StatusOr<std::string> executable = executables->Resolve(request.argv[0], path_env);
  if (!executable.ok()) return executable.status();
  request.path = *std::move(executable);
  request.env = EnvironmentEntries(env);
  request.work_dir = launch.work_dir;
  request.stdout_fd = stdout_fd;
  request.stderr_fd = stderr_fd;
  request.run_as = launch.run_as;
  request.rlimits = launch.rlimits;
  request.cgroup_procs_fds = cgroup_procs_fds;
  absl::StatusOr<SpawnedProcess> spawned = SpawnProcess(request);
  // The executable went away since it was found: search again next time.
  if (!spawned.ok()) executables->Forget(request.argv[0], path_env);
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
      kill(-group_, SIGTERM);
      kill_at_ = now + (cancelled ? cancel_grace : timeout_grace_);
    }
    if (stopped_as_.has_value() && now >= kill_at_) {
      kill(-group_, SIGKILL);
      kill_at_ = absl::InfiniteFuture();
    }
    return stopped_as_.has_value() ? kill_at_ : deadline_;
  }

  // Why the task is being stopped, once it is.
  std::optional<TaskOutcome::Kind> stopped_as() const { return stopped_as_; }

 private:
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
// fails instead.
void CollectOutputJson(int work_dir_fd, TaskOutcome* outcome) {
  auto fail = [outcome](std::string error) {
    if (outcome->kind != TaskOutcome::Kind::kSucceeded) return;
    outcome->kind = TaskOutcome::Kind::kFailed;
    outcome->error = std::move(error);
  };
  // One byte more than may pass tells a file cut at the cap from one that
  // fits: a cut one would reach the orchestrator as broken JSON.
  absl::StatusOr<std::string> output =
      work_dir_fd >= 0
          ? ReadTaskOutput(work_dir_fd, kOutputName, kMaxOutputJsonBytes + 1)
          : absl::FailedPreconditionError("the task's working directory cannot be opened");
  if (!output.ok()) {
    fail(std::string(output.status().message()));
    return;
  }
  if (output->size() > kMaxOutputJsonBytes) {
    fail(absl::StrCat("$GYRE_OUTPUT holds more than ", kMaxOutputJsonBytes,
                      " bytes, the most a task may pass downstream"));
    return;
  }
  outcome->output_json = *std::move(output);
}

// Reads once from each pipe that poll() found ready (`ready[0]` stdout,
// `ready[1]` stderr), closing one that has ended.
void ReadReadyPipes(const pollfd ready[2], const TaskLaunch& launch, int (&read_fds)[2],
                    TaskOutcome* outcome) {
  char buffer[65536];
  for (int i = 0; i < 2; ++i) {
    if (ready[i].fd < 0 || (ready[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const ssize_t n = read(ready[i].fd, buffer, sizeof(buffer));
    if (n > 0) {
      if (i == 0) {
        Capture(buffer, static_cast<size_t>(n), launch, 1, &outcome->stdout_head,
                &outcome->stdout_bytes);
      } else {
        Capture(buffer, static_cast<size_t>(n), launch, 2, &outcome->stderr_head,
                &outcome->stderr_bytes);
      }
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      close(read_fds[i]);
      read_fds[i] = -1;
    }
  }
}

void RemoveWorkDir(const std::string& work_dir) {
  std::error_code error;
  std::filesystem::remove_all(work_dir, error);
  if (error) {
    logging::Warn("task working directory not removed",
                  {{"dir", work_dir}, {"error", error.message()}});
  }
}

}  // namespace

// One running subprocess, shared by its supervisor and Cancel().
struct TaskRunner::Process {
  Handle handle = 0;
  int wake_fd = -1;  // eventfd: Cancel() wakes the supervisor
  std::atomic<bool> cancelled{false};
  std::atomic<int64_t> cancel_grace_ms{10000};
};

// The task's stdout and stderr pipes ([0] stdout, [1] stderr); closes what
// is still open when destroyed.
struct TaskRunner::Pipes {
  int read[2] = {-1, -1};
  int write[2] = {-1, -1};

  ~Pipes() {
    for (int fd : {read[0], read[1], write[0], write[1]}) {
      if (fd >= 0) close(fd);
    }
  }
  absl::Status Open() {
    for (int i = 0; i < 2; ++i) {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) != 0) {
        return absl::InternalError(absl::StrCat("cannot create pipes: ", std::strerror(errno)));
      }
      read[i] = fds[0];
      write[i] = fds[1];
    }
    return absl::OkStatus();
  }
  // The child holds its own copies: the agent's must go, or the pipes
  // would never reach their end.
  void CloseWriteEnds() {
    for (int& fd : write) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
  int open_read_ends() const { return (read[0] >= 0 ? 1 : 0) + (read[1] >= 0 ? 1 : 0); }
};

TaskRunner::TaskRunner(Clock* clock, std::shared_ptr<const TaskCgroups> cgroups)
    : clock_(clock),
      cgroups_(std::move(cgroups)),
      work_dirs_(std::make_unique<WorkDirPool>()),
      timers_(clock),
      supervisors_(clock, absl::Minutes(1)) {}

TaskRunner::~TaskRunner() {
  std::vector<std::shared_ptr<Process>> live;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [handle, process] : processes_) live.push_back(process);
  }
  for (const auto& process : live) Cancel(process->handle, absl::ZeroDuration());
  absl::MutexLock lock(&mutex_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return processes_.empty(); };
  // Real time: SIGKILL went out at once, whatever the clock.
  mutex_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(30));
}

int TaskRunner::running() {
  absl::MutexLock lock(&mutex_);
  return running_;
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
  auto process = std::make_shared<Process>();
  process->handle = handle;
  process->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  {
    absl::MutexLock lock(&mutex_);
    processes_[handle] = process;
  }
  supervisors_.Run([this, process, launch = std::move(launch), done = std::move(done)]() mutable {
    Supervise(process, std::move(launch), done);
  });
  return handle;
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
    } else {
      auto it = processes_.find(handle);
      if (it == processes_.end()) return;
      it->second->cancel_grace_ms = absl::ToInt64Milliseconds(grace);
      it->second->cancelled = true;
      const uint64_t one = 1;
      (void)!write(it->second->wake_fd, &one, sizeof(one));
      return;
    }
  }
  TaskOutcome outcome;
  outcome.kind = TaskOutcome::Kind::kCancelled;
  sleeper(std::move(outcome));
}

void TaskRunner::Supervise(const std::shared_ptr<Process>& process, TaskLaunch launch,
                           const Callback& done) {
  const absl::Time started = clock_->Now();
  TaskOutcome outcome;
  const WorkDir work_dir = PrepareWorkDir(&launch.work_dir, launch.run_as,
                                          launch.remove_work_dir ? work_dirs_.get() : nullptr);
  // Only a task that declares limits gets a cgroup: creating and removing
  // one costs more than running /bin/true.
  std::unique_ptr<TaskCgroup> cgroup;
  absl::Status prepared = absl::OkStatus();
  if (cgroups_ != nullptr && cgroups_->enforced() &&
      (launch.limits.memory_bytes > 0 || launch.limits.cpu > 0)) {
    absl::StatusOr<std::unique_ptr<TaskCgroup>> created = cgroups_->Create(launch.limits);
    if (created.ok()) {
      cgroup = *std::move(created);
    } else {
      prepared = created.status();
    }
  }
  Pipes pipes;
  if (prepared.ok()) prepared = pipes.Open();
  absl::StatusOr<SpawnedProcess> spawned =
      prepared.ok() ? SpawnTask(launch, BuildEnvironment(launch, work_dir.output_path),
                                &executables_, pipes.write[0], pipes.write[1],
                                cgroup != nullptr ? cgroup->procs_fds() : std::vector<int>{})
                    : absl::StatusOr<SpawnedProcess>(prepared);
  pipes.CloseWriteEnds();
  if (spawned.ok() && !launch.log_name.empty()) {
    logging::Debug("task process started", {{"attempt", launch.log_name},
                                            {"pid", static_cast<int64_t>(spawned->pid)},
                                            {"cgroup", cgroup != nullptr}});
  }
  if (spawned.ok()) {
    const std::optional<TaskOutcome::Kind> stopped_as =
        PumpUntilExit(*process, spawned->pid, spawned->pidfd, launch, started, pipes, &outcome);
    const int status = Reap(spawned->pid, &outcome);
    if (!launch.log_name.empty()) {
      logging::Debug("task process exited",
                     {{"attempt", launch.log_name},
                      {"pid", static_cast<int64_t>(spawned->pid)},
                      {"exit_code", outcome.exit_code},
                      {"signal", outcome.signal},
                      {"took_ms", absl::ToInt64Milliseconds(clock_->Now() - started)}});
    }
    if (cgroup != nullptr) {
      const TaskCgroup::Usage usage = cgroup->Read();
      cgroup->KillAll();
      if (usage.peak_memory_bytes > 0) {
        outcome.peak_rss_bytes = usage.peak_memory_bytes;
        outcome.peak_memory_source = cgroups_->mode() == TaskCgroups::Mode::kV2
                                         ? "cgroup memory.peak"
                                         : "cgroup v1 memory.max_usage_in_bytes";
      }
      outcome.oom_killed = usage.oom_killed;
      if (usage.oom_killed) oom_kills_++;
    }
    ClassifyEnd(status, stopped_as, launch.timeout, launch.limits.memory_bytes, &outcome);
    CollectOutputJson(work_dir.fd, &outcome);
  } else {
    outcome.error = std::string(spawned.status().message());
  }
  cgroup.reset();  // removed once its processes are gone
  if (launch.remove_work_dir && !launch.work_dir.empty()) {
    // What the task left is gone either way; an emptied directory is kept
    // for the next task.
    if (work_dir.fd >= 0) unlinkat(work_dir.fd, kOutputName, 0);
    if (work_dir.fd < 0 || !IsEmptyDirectory(work_dir.fd) || !work_dirs_->Give(launch.work_dir)) {
      RemoveWorkDir(launch.work_dir);
    }
  }
  for (int fd : {process->wake_fd, work_dir.fd}) {
    if (fd >= 0) close(fd);
  }
  outcome.wall_time = clock_->Now() - started;
  done(std::move(outcome));
  // Last: the destructor waits for this, so `done` never outlives the runner.
  Finished(process->handle);
}

std::optional<TaskOutcome::Kind> TaskRunner::PumpUntilExit(Process& process, int pid, int pidfd,
                                                           const TaskLaunch& launch,
                                                           absl::Time started, Pipes& pipes,
                                                           TaskOutcome* outcome) {
  Escalation escalation(pid,
                        launch.timeout == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                                                   : started + launch.timeout,
                        launch.kill_grace);
  bool exited = false;
  while (!exited || pipes.open_read_ends() > 0) {
    const absl::Time now = clock_->Now();
    const absl::Time next_due = escalation.Enforce(
        now, process.cancelled, absl::Milliseconds(process.cancel_grace_ms.load()));
    // The leader is gone; whatever still holds the pipes is killed too.
    if (exited) kill(-pid, SIGKILL);
    // poll() is woken by output, the exit and Cancel(), not by the clock:
    // it returns in time for what falls due next (within milliseconds of an
    // Advance, on a fake clock).
    const absl::Duration until_due =
        clock_->MaxRealWait(std::min(next_due - now, absl::Seconds(1)));
    const int wait_ms = exited ? 100
                               : static_cast<int>(std::clamp<int64_t>(
                                     absl::ToInt64Milliseconds(until_due) + 1, 1, 1000));
    pollfd fds[4] = {{pipes.read[0], POLLIN, 0},
                     {pipes.read[1], POLLIN, 0},
                     {exited ? -1 : pidfd, POLLIN, 0},
                     {process.wake_fd, POLLIN, 0}};
    if (poll(fds, 4, wait_ms) < 0 && errno != EINTR) break;
    ReadReadyPipes(fds, launch, pipes.read, outcome);
    if (fds[2].fd >= 0 && (fds[2].revents & POLLIN) != 0) exited = true;
    if ((fds[3].revents & POLLIN) != 0) {
      uint64_t ignored;
      (void)!read(process.wake_fd, &ignored, sizeof(ignored));
    }
  }
  if (pidfd >= 0) close(pidfd);
  // The task is over: nothing it started outlives it (a grandchild that
  // ignored SIGTERM and holds no pipe would not keep the loop going). The
  // leader is not reaped yet, so its group id cannot have been reused.
  kill(-pid, SIGKILL);
  return escalation.stopped_as();
}

void TaskRunner::Finished(Handle handle) {
  absl::MutexLock lock(&mutex_);
  processes_.erase(handle);
  running_--;
}

}  // namespace gyre::agent
