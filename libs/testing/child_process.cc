#include "libs/testing/child_process.h"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace gyre::testing {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    std::vector<std::string> argv, std::vector<std::string> extra_env) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  return Spawn(std::move(argv), std::move(extra_env), pipe_fds[0], pipe_fds[1],
               /*on_terminal=*/false);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::StartOnTerminal(
    std::vector<std::string> argv, std::vector<std::string> extra_env) {
  int controller = -1;
  int terminal = -1;
  if (openpty(&controller, &terminal, nullptr, nullptr, nullptr) != 0) {
    return absl::InternalError(absl::StrCat("openpty failed: ", std::strerror(errno)));
  }
  fcntl(controller, F_SETFD, FD_CLOEXEC);
  fcntl(terminal, F_SETFD, FD_CLOEXEC);
  return Spawn(std::move(argv), std::move(extra_env), controller, terminal, /*on_terminal=*/true);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    std::vector<std::string> argv, std::vector<std::string> extra_env, int read_fd, int output_fd,
    bool on_terminal) {
  int pipe_fds[2] = {read_fd, output_fd};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (on_terminal) posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** entry = environ; *entry != nullptr; ++entry) env_storage.emplace_back(*entry);
  for (std::string& entry : extra_env) env_storage.push_back(std::move(entry));
  std::vector<char*> env;
  env.reserve(env_storage.size() + 1);
  for (std::string& entry : env_storage) env.push_back(entry.data());
  env.push_back(nullptr);

  pid_t pid = 0;
  const int error = posix_spawn(&pid, args[0], &actions, &attributes, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(pipe_fds[1]);
  if (error != 0) {
    close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", std::strerror(error)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, pipe_fds[0]));
}

ChildProcess::ChildProcess(pid_t pid, int output_fd)
    : pid_(pid), output_fd_(output_fd), reader_([this] { ReadOutput(); }) {}

ChildProcess::~ChildProcess() {
  if (!exit_status_) {
    kill(pid_, SIGKILL);
    WaitForExit(absl::Seconds(10));
  }
  reader_.join();
  close(output_fd_);
}

void ChildProcess::ReadOutput() {
  std::string pending;
  char buffer[4096];
  while (true) {
    const ssize_t n = read(output_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      absl::MutexLock lock(&mutex_);
      lines_.push_back(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
  }
  absl::MutexLock lock(&mutex_);
  if (!pending.empty()) lines_.push_back(pending);
  output_closed_ = true;
}

absl::StatusOr<std::string> ChildProcess::WaitForLine(
    const std::function<bool(const std::string&)>& match, absl::Duration timeout) {
  size_t checked = 0;
  std::optional<std::string> found;
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    for (; checked < lines_.size(); ++checked) {
      if (match(lines_[checked])) {
        found = lines_[checked];
        return true;
      }
    }
    return output_closed_;
  };
  absl::MutexLock lock(&mutex_);
  mutex_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (found) return *found;
  return absl::DeadlineExceededError(
      absl::StrCat("no matching output line; output so far:\n", absl::StrJoin(lines_, "\n")));
}

std::string ChildProcess::Output() {
  absl::MutexLock lock(&mutex_);
  return absl::StrJoin(lines_, "\n");
}

void ChildProcess::Signal(int signal_number) { kill(pid_, signal_number); }

std::optional<int> ChildProcess::WaitForExit(absl::Duration timeout) {
  if (exit_status_) return exit_status_;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_status_ = status;
      // The reader may not have drained the pipe yet: a caller that looks
      // at Output() right after the exit must see the last lines too.
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&output_closed_), absl::Seconds(2));
      return status;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::optional<int> JsonIntField(const std::string& line, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t at = line.find(needle);
  if (at == std::string::npos) return std::nullopt;
  const size_t start = at + needle.size();
  const size_t end = line.find_first_not_of("0123456789-", start);
  int value = 0;
  if (!absl::SimpleAtoi(line.substr(start, end - start), &value)) return std::nullopt;
  return value;
}

}  // namespace gyre::testing
