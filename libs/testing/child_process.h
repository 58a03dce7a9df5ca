#ifndef GYRE_LIBS_TESTING_CHILD_PROCESS_H_
#define GYRE_LIBS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gyre::testing {

// A real child process for integration tests: started with posix_spawn,
// stderr (and stdout) collected line by line on a reader thread so tests can
// wait for log lines such as {"msg":"serving",...}. Killed with SIGKILL on
// destruction if still running. Thread-safe.
class ChildProcess {
 public:
  ~ChildProcess();

  // Starts `argv[0]` with `argv`; `extra_env` entries ("K=V") are added to
  // this process's environment.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      std::vector<std::string> argv, std::vector<std::string> extra_env = {});

  // The same with stdin, stdout and stderr on a pseudo-terminal (isatty()
  // is true in the child), for what a program prints to a person. Lines
  // end in "\r" (the terminal's newline translation) and keep any escape
  // sequences the program wrote.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> StartOnTerminal(
      std::vector<std::string> argv, std::vector<std::string> extra_env = {});

  // Waits until an output line satisfies `match`, returning it.
  absl::StatusOr<std::string> WaitForLine(const std::function<bool(const std::string&)>& match,
                                          absl::Duration timeout);

  // Every line seen so far, joined with newlines (for failure messages).
  std::string Output();

  void Signal(int signal_number);

  // Waits for exit; returns the wait status (WIFEXITED etc.) or nullopt on
  // timeout. Once it returns a status, Output() holds everything the
  // process wrote (up to 2 s more for the pipe to drain, less if a process
  // it started still holds the pipe open).
  std::optional<int> WaitForExit(absl::Duration timeout);

  pid_t pid() const { return pid_; }

 private:
  ChildProcess(pid_t pid, int output_fd);
  // Starts the child with stdout and stderr on `output_fd`, stdin too when
  // `on_terminal`; `read_fd` is what the parent reads.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(std::vector<std::string> argv,
                                                             std::vector<std::string> extra_env,
                                                             int read_fd, int output_fd,
                                                             bool on_terminal);
  void ReadOutput();

  pid_t pid_;
  int output_fd_;
  absl::Mutex mutex_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mutex_);
  bool output_closed_ ABSL_GUARDED_BY(mutex_) = false;
  std::optional<int> exit_status_;
  // Last: its thread starts in the constructor and uses every member above,
  // which must be constructed first (declared before it, it ran against an
  // unconstructed mutex: "Mutex corrupt" aborts of whole test binaries).
  std::thread reader_;
};

// Extracts an integer field from a JSON log line ("grpc_port":1234).
std::optional<int> JsonIntField(const std::string& line, const std::string& key);

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_CHILD_PROCESS_H_
