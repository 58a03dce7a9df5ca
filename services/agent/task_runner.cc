#include "services/agent/task_runner.h"

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

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
#include "libs/logging/logger.h"

namespace gyre::agent {
namespace {

// The most a task may pass downstream (the orchestrator keeps no more).
constexpr size_t kMaxOutputJsonBytes = limits::kMaxOutputJsonBytes;

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

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

std::vector<std::string> BuildEnvironment(const TaskLaunch& launch, const std::string& output) {
  std::map<std::string, std::string> env = launch.env;
  for (const char* inherited : {"PATH", "HOME", "LANG"}) {
    if (env.count(inherited) == 0) {
      if (const char* value = std::getenv(inherited)) env[inherited] = value;
    }
  }
  env["GYRE_OUTPUT"] = output;
  std::vector<std::string> entries;
  entries.reserve(env.size());
  for (const auto& [key, value] : env) entries.push_back(absl::StrCat(key, "=", value));
  return entries;
}

}  // namespace

// One running subprocess, shared by its supervisor and Cancel().
struct TaskRunner::Process {
  Handle handle = 0;
  int wake_fd = -1;  // eventfd: Cancel() wakes the supervisor
  std::atomic<bool> cancelled{false};
  std::atomic<int64_t> cancel_grace_ms{10000};
};

TaskRunner::TaskRunner() = default;

TaskRunner::~TaskRunner() {
  std::vector<std::shared_ptr<Process>> live;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [handle, process] : processes_) live.push_back(process);
  }
  for (const auto& process : live) Cancel(process->handle, absl::ZeroDuration());
  absl::MutexLock lock(&mutex_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return processes_.empty(); };
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
    const absl::Time started = absl::Now();
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
      outcome.wall_time = absl::Now() - started;
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
  TaskOutcome outcome;
  const absl::Time started = absl::Now();
  std::error_code mkdir_error;
  // The child starts inside the directory, so every path it is given
  // ($GYRE_OUTPUT) must not be relative to where the agent was started.
  if (!launch.work_dir.empty()) {
    launch.work_dir = std::filesystem::absolute(launch.work_dir, mkdir_error).string();
  }
  std::filesystem::create_directories(launch.work_dir, mkdir_error);
  constexpr char kOutputName[] = "gyre_output.json";
  const std::string output_path = launch.work_dir + "/" + kOutputName;
  std::filesystem::remove(output_path, mkdir_error);
  // Held while the task runs: $GYRE_OUTPUT is read through it afterwards.
  const int work_dir_fd = open(launch.work_dir.empty() ? "/" : launch.work_dir.c_str(),
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    outcome.error = absl::StrCat("cannot create pipes: ", std::strerror(errno));
  }
  std::vector<std::string> argv_storage =
      launch.shell
          ? std::vector<std::string>{"/bin/sh", "-c", launch.argv.empty() ? "" : launch.argv[0]}
          : launch.argv;
  std::vector<std::string> env_storage = BuildEnvironment(launch, output_path);
  std::vector<char*> argv;
  argv.reserve(argv_storage.size() + 1);
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env_storage.size() + 1);
  for (std::string& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  if (outcome.error.empty() && argv.size() > 1) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    if (!launch.work_dir.empty()) {
      posix_spawn_file_actions_addchdir_np(&actions, launch.work_dir.c_str());
    }
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t no_signals;
    sigemptyset(&no_signals);
    sigset_t default_signals;
    sigfillset(&default_signals);
    posix_spawnattr_setsigmask(&attributes, &no_signals);
    posix_spawnattr_setsigdefault(&attributes, &default_signals);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    const int error = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (error != 0) {
      pid = -1;
      outcome.error = absl::StrCat("cannot run \"", argv_storage[0], "\": ", std::strerror(error));
    }
  } else if (outcome.error.empty()) {
    outcome.error = "empty command";
  }
  if (out_pipe[1] >= 0) close(out_pipe[1]);
  if (err_pipe[1] >= 0) close(err_pipe[1]);

  if (pid > 0) {
    const int pidfd = PidfdOpen(pid);
    const absl::Time deadline = launch.timeout == absl::InfiniteDuration()
                                    ? absl::InfiniteFuture()
                                    : started + launch.timeout;
    absl::Time kill_at = absl::InfiniteFuture();
    bool terminating = false;
    bool exited = false;
    int open_pipes = 2;
    char buffer[65536];
    while (!exited || open_pipes > 0) {
      const absl::Time now = absl::Now();
      if (!terminating && (now >= deadline || process->cancelled)) {
        terminating = true;
        outcome.kind =
            process->cancelled ? TaskOutcome::Kind::kCancelled : TaskOutcome::Kind::kTimedOut;
        kill(-pid, SIGTERM);
        kill_at = now + (process->cancelled ? absl::Milliseconds(process->cancel_grace_ms.load())
                                            : launch.kill_grace);
      }
      if (terminating && now >= kill_at) {
        kill(-pid, SIGKILL);
        kill_at = absl::InfiniteFuture();
      }
      if (exited) {
        // The leader is gone; whatever still holds the pipes is killed too.
        kill(-pid, SIGKILL);
      }
      const absl::Time next = std::min(terminating ? kill_at : deadline, now + absl::Seconds(1));
      const int wait_ms = exited ? 100
                                 : static_cast<int>(std::clamp<int64_t>(
                                       absl::ToInt64Milliseconds(next - now) + 1, 1, 1000));
      pollfd fds[4] = {{out_pipe[0], POLLIN, 0},
                       {err_pipe[0], POLLIN, 0},
                       {exited ? -1 : pidfd, POLLIN, 0},
                       {process->wake_fd, POLLIN, 0}};
      if (poll(fds, 4, wait_ms) < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
        if (n > 0) {
          if (i == 0) {
            Capture(buffer, static_cast<size_t>(n), launch, 1, &outcome.stdout_tail,
                    &outcome.stdout_bytes);
          } else {
            Capture(buffer, static_cast<size_t>(n), launch, 2, &outcome.stderr_tail,
                    &outcome.stderr_bytes);
          }
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          close(fds[i].fd);
          (i == 0 ? out_pipe[0] : err_pipe[0]) = -1;
          open_pipes--;
        }
      }
      if (fds[2].fd >= 0 && (fds[2].revents & POLLIN) != 0) exited = true;
      if ((fds[3].revents & POLLIN) != 0) {
        uint64_t ignored;
        (void)!read(process->wake_fd, &ignored, sizeof(ignored));
      }
    }
    int status = 0;
    rusage usage{};
    wait4(pid, &status, 0, &usage);
    if (pidfd >= 0) close(pidfd);
    outcome.cpu_time = absl::Seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       absl::Microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    outcome.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
    if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
    if (!terminating) {
      outcome.kind = WIFEXITED(status) && outcome.exit_code == 0 ? TaskOutcome::Kind::kSucceeded
                                                                 : TaskOutcome::Kind::kFailed;
    }
    if (outcome.kind == TaskOutcome::Kind::kFailed && outcome.signal != 0) {
      outcome.error =
          absl::StrCat("killed by signal ", outcome.signal, " (", strsignal(outcome.signal), ")");
    } else if (outcome.kind == TaskOutcome::Kind::kFailed) {
      outcome.error = absl::StrCat("exit code ", outcome.exit_code);
    } else if (outcome.kind == TaskOutcome::Kind::kTimedOut) {
      outcome.error = absl::StrCat("timed out after ", absl::FormatDuration(launch.timeout));
    }
    // One byte more than may pass tells a file cut at the cap from one that
    // fits: a cut one would reach the orchestrator as broken JSON.
    absl::StatusOr<std::string> output =
        work_dir_fd >= 0
            ? ReadTaskOutput(work_dir_fd, kOutputName, kMaxOutputJsonBytes + 1)
            : absl::FailedPreconditionError("the task's working directory cannot be opened");
    if (!output.ok()) {
      if (outcome.kind == TaskOutcome::Kind::kSucceeded) {
        outcome.kind = TaskOutcome::Kind::kFailed;
        outcome.error = std::string(output.status().message());
      }
    } else {
      outcome.output_json = *std::move(output);
    }
    if (outcome.output_json.size() > kMaxOutputJsonBytes) {
      outcome.output_json.clear();
      if (outcome.kind == TaskOutcome::Kind::kSucceeded) {
        outcome.kind = TaskOutcome::Kind::kFailed;
        outcome.error = absl::StrCat("$GYRE_OUTPUT holds more than ", kMaxOutputJsonBytes,
                                     " bytes, the most a task may pass downstream");
      }
    }
  }
  if (launch.remove_work_dir && !launch.work_dir.empty()) {
    std::filesystem::remove_all(launch.work_dir, mkdir_error);
    if (mkdir_error) {
      logging::Warn("task working directory not removed",
                    {{"dir", launch.work_dir}, {"error", mkdir_error.message()}});
    }
  }
  for (int fd : {out_pipe[0], err_pipe[0], process->wake_fd, work_dir_fd}) {
    if (fd >= 0) close(fd);
  }
  outcome.wall_time = absl::Now() - started;
  done(std::move(outcome));
  // Last: the destructor waits for this, so `done` never outlives the runner.
  absl::MutexLock lock(&mutex_);
  processes_.erase(process->handle);
  running_--;
}

}  // namespace gyre::agent
