#ifndef GYRE_SERVICES_AGENT_TASK_RUNNER_H_
#define GYRE_SERVICES_AGENT_TASK_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/common/clock.h"
#include "libs/common/timer_queue.h"
#include "services/agent/process_spawn.h"
#include "services/agent/supervisor_threads.h"
#include "services/agent/task_cgroup.h"

namespace gyre::agent {

// What to run for one task attempt.
struct TaskLaunch {
  enum class Builtin { kNone, kNoop, kSleep };
  std::vector<std::string> argv;  // with shell, one element: the script
  bool shell = false;
  // The complete environment of the task; nothing of the agent's own
  // environment leaks in except PATH and LANG when the task sets none, and
  // HOME (the run_as user's home, else the agent's) when it sets none.
  std::map<std::string, std::string> env;
  // Created if missing, mode 0700 (owned by run_as); GYRE_OUTPUT points
  // inside it.
  std::string work_dir;
  // The user and group the task runs as; unset: the agent's.
  std::optional<RunAs> run_as;
  // Set in the task before it runs.
  std::vector<ResourceLimit> rlimits;
  // Enforced in a cgroup of the task's own when the runner has cgroups and
  // the task declares any; else advisory.
  TaskLimits limits;
  // Remove work_dir and everything in it once the attempt has ended and its
  // output is read (what the task wrote there is not kept).
  bool remove_work_dir = false;
  absl::Duration timeout = absl::InfiniteDuration();
  absl::Duration kill_grace = absl::Seconds(10);
  size_t max_output_bytes = 1 << 20;
  Builtin builtin = Builtin::kNone;
  absl::Duration sleep = absl::ZeroDuration();
  // The attempt ("executions/ID/TASK#N") that debug log lines name; set
  // only when debug logging is on, so that it costs nothing otherwise.
  std::string log_name;
  // Called on the supervising thread with output as it arrives (only the
  // bytes kept under max_output_bytes): stream 1 is stdout, 2 is stderr;
  // offset is the position of `data` within that stream. Optional.
  std::function<void(int stream, int64_t offset, absl::string_view data)> on_output;
};

// How one attempt ended.
struct TaskOutcome {
  enum class Kind { kSucceeded, kFailed, kTimedOut, kCancelled };
  Kind kind = Kind::kFailed;
  int exit_code = 0;
  int signal = 0;
  std::string error;  // spawn failure and the like
  absl::Duration wall_time;
  absl::Duration cpu_time;
  // Peak memory: the task cgroup's peak when it ran in one (memory.peak,
  // memory.max_usage_in_bytes in v1), else wait4's maxrss of the task's
  // own process; peak_memory_source says which.
  int64_t peak_rss_bytes = 0;
  std::string peak_memory_source;
  // The kernel's OOM killer ended a process of the task (its cgroup's
  // memory limit was reached).
  bool oom_killed = false;
  // The first max_output_bytes of stdout and stderr: the bytes on_output
  // streamed, so the stored log and the live one agree (the result's
  // proto fields are named stdout_tail and stderr_tail all the same).
  std::string stdout_head;
  std::string stderr_head;
  int64_t stdout_bytes = 0;  // total written, including what was not kept
  int64_t stderr_bytes = 0;
  std::string output_json;  // contents of $GYRE_OUTPUT (up to 1 MiB), if written
};

// Runs task attempts as subprocesses (SpawnProcess: own session and process
// group, optionally another user, rlimits and a cgroup; a private working
// directory, explicit environment, no shell unless asked) or as
// built-in no-op / sleep executors. Each subprocess is supervised by a
// thread of its own while it runs (taken from a pool, reused), which
// multiplexes its pipes and a pidfd with poll(); timeouts and
// cancellation send SIGTERM to the group, then SIGKILL after the grace.
// Completion callbacks run on the supervising thread (or the timer thread
// for built-ins) and must not block for long. Timeouts, kill graces, sleeps
// and wall times are read from `clock` (a test advances a FakeClock past a
// timeout instead of waiting for it; the process itself runs in real
// time). Thread-safe.
class WorkDirPool;

class TaskRunner {
 public:
  using Handle = uint64_t;
  using Callback = std::function<void(TaskOutcome)>;

  // `cgroups`: how declared limits are enforced (null: not at all).
  explicit TaskRunner(Clock* clock = Clock::Real(),
                      std::shared_ptr<const TaskCgroups> cgroups = nullptr);
  // Kills whatever still runs and joins every supervisor.
  ~TaskRunner();

  Handle Start(TaskLaunch launch, Callback done);
  // Terminates the attempt (SIGTERM, SIGKILL after `grace`); its outcome is
  // kCancelled. Unknown or finished handles are ignored.
  void Cancel(Handle handle, absl::Duration grace);
  // Tasks started and not yet finished.
  int running();
  // Attempts ended by the OOM killer since the start.
  int64_t oom_kills() const { return oom_kills_.load(); }

 private:
  struct Process;
  struct Pipes;
  // The steps of one attempt, in order, on its supervising thread.
  void Supervise(const std::shared_ptr<Process>& process, TaskLaunch launch, const Callback& done);
  // Reads the task's output until the process has exited and both pipes
  // are closed, stopping it on timeout or cancel meanwhile. Returns why the
  // agent stopped it, if it did.
  std::optional<TaskOutcome::Kind> PumpUntilExit(Process& process, int pid, int pidfd,
                                                 const TaskLaunch& launch, absl::Time started,
                                                 Pipes& pipes, TaskOutcome* outcome);
  // The attempt is over and reported: forget it (the destructor waits for
  // this).
  void Finished(Handle handle);

  Clock* const clock_;
  const std::shared_ptr<const TaskCgroups> cgroups_;
  ExecutableCache executables_;
  std::unique_ptr<WorkDirPool> work_dirs_;
  std::atomic<int64_t> oom_kills_{0};
  TimerQueue timers_;
  absl::Mutex mutex_;
  Handle next_handle_ ABSL_GUARDED_BY(mutex_) = 1;
  absl::flat_hash_map<Handle, std::shared_ptr<Process>> processes_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<Handle, TimerQueue::TimerId> sleeps_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<Handle, Callback> sleep_callbacks_ ABSL_GUARDED_BY(mutex_);
  int running_ ABSL_GUARDED_BY(mutex_) = 0;
  // Last: destroyed first, it waits for supervisors still using the above.
  SupervisorThreads supervisors_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_TASK_RUNNER_H_
