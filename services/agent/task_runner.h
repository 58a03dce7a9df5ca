#ifndef GYRE_SERVICES_AGENT_TASK_RUNNER_H_
#define GYRE_SERVICES_AGENT_TASK_RUNNER_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/common/clock.h"
#include "libs/common/timer_queue.h"
#include "prometheus/counter.h"
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
  // Nothing the task leaves is kept: it runs in one of the runner's reused
  // directories instead of work_dir (which then only names its root), and
  // that is removed once the attempt has ended and its output is read, or
  // kept for a later task if the task left it empty.
  bool remove_work_dir = false;
  absl::Duration timeout = absl::InfiniteDuration();
  absl::Duration kill_grace = absl::Seconds(10);
  size_t max_output_bytes = 1 << 20;
  Builtin builtin = Builtin::kNone;
  absl::Duration sleep = absl::ZeroDuration();
  // The attempt ("executions/ID/TASK#N") that debug log lines name; set
  // only when debug logging is on, so that it costs nothing otherwise.
  std::string log_name;
  // Called on the poller thread with output as it arrives (only the
  // bytes kept under max_output_bytes): stream 1 is stdout, 2 is stderr;
  // offset is the position of `data` within that stream. Optional.
  std::function<void(int stream, int64_t offset, absl::string_view data)> on_output;
  // Called on the spawning thread once the process has been started,
  // before the poller watches it: the attempt's report always comes after.
  // Where the spawn does not wait for the child's exec
  // (SpawnWithoutWaitingAvailable) that is before the exec, so a process
  // whose exec then fails has been named here before its failed outcome;
  // elsewhere it is after the exec, and not called when that fails.
  // Optional.
  std::function<void(pid_t pid)> on_spawned;
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
// built-in no-op / sleep executors.
//
// No thread per running task: Start prepares and spawns the process on
// the caller's thread without waiting for the child's exec (SpawnMode::
// kNoWait; where that is not available, a pooled thread spawns it and
// waits, so a burst of tasks is spawned side by side), and one poller
// thread watches every running task (epoll over each task's pidfd, which
// is how it is reaped, and its stdout and stderr pipes), enforces timeouts
// and cancels (SIGTERM to the group, then SIGKILL after the grace) and
// completes the attempt once the process has exited and both pipes have
// ended. A thread per task, even pooled, cost a wake-up and a hand-off per
// task (bench/README.md). Only a completion that may take long (removing a
// directory the task left files in, waiting for a cgroup's killed
// processes to leave it) finishes on a pooled thread, so the poller never
// waits for it.
//
// Callbacks (done, on_output) run on the poller thread, on a pooled thread
// (a slow completion), on the caller's thread for a failed spawn and a
// no-op, and on the timer thread for a sleep; they must not block for
// long and may call Start and Cancel. Timeouts, kill graces, sleeps and
// wall times are read from `clock` (a test advances a FakeClock past a
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
  // Kills whatever still runs, waits for every attempt to be reported and
  // stops the poller.
  ~TaskRunner();

  Handle Start(TaskLaunch launch, Callback done);
  // Makes the reused working directories of `count` tasks whose
  // TaskLaunch::work_dir will be {work_root}/{name} (remove_work_dir on),
  // before they come (PrepareWorkDirs).
  void PrepareWorkDirs(const std::string& work_root, size_t count);
  // Terminates the attempt (SIGTERM, SIGKILL after `grace`); its outcome is
  // kCancelled. Unknown or finished handles are ignored.
  void Cancel(Handle handle, absl::Duration grace);
  // Tasks started and not yet finished.
  int running();
  // Process tasks started and not yet reported: what wants the CPUs (a
  // builtin uses none). Lock-free, for the agent's writer.
  int64_t processes() const { return processes_running_.load(std::memory_order_relaxed); }
  // Attempts ended by the OOM killer since the start.
  int64_t oom_kills() const { return oom_kills_.load(); }
  // Count the processes whose child took a copy of a few low descriptors
  // only (`shared`), and those that copied the whole table (`copied`, see
  // SpawnDescriptors). Set before Start; either may be null.
  void set_spawn_counters(prometheus::Counter* shared, prometheus::Counter* copied) {
    spawns_shared_table_ = shared;
    spawns_copied_table_ = copied;
  }

 private:
  struct Process;
  // Prepares the working directory and cgroup and spawns the process (on
  // the caller's thread, or a pooled one where the spawn waits for the
  // exec), then hands it to the poller (with the cancel that came
  // meanwhile, if one did); a failure is reported at once.
  void Launch(Handle handle, TaskLaunch launch, Callback done);
  // The poller thread.
  void Poll();
  // The poller's part of one event: output read, the exit seen.
  void OnEvent(Process& process, uint64_t which);
  // Applies the timeout, a cancel and the kills after exit that are due;
  // returns when this process next needs the poller.
  absl::Time Enforce(Process& process, absl::Time now);
  // The process has exited and its pipes have ended: reap, classify,
  // collect the output, clean up, report.
  void Complete(std::unique_ptr<Process> process);
  // What may take long (a directory with files in it, a cgroup not yet
  // empty), then the report.
  void Finish(std::unique_ptr<Process> process, TaskOutcome outcome);
  // Wakes the poller (a cancel, an earlier deadline, the destructor).
  void Wake();

  Clock* const clock_;
  const std::shared_ptr<const TaskCgroups> cgroups_;
  ExecutableCache executables_;
  // Made before the descriptors below: their numbers are higher.
  SpawnDescriptors spawn_descriptors_;
  std::unique_ptr<WorkDirPool> work_dirs_;
  std::atomic<int64_t> oom_kills_{0};
  prometheus::Counter* spawns_shared_table_ = nullptr;
  prometheus::Counter* spawns_copied_table_ = nullptr;
  std::atomic<int64_t> processes_running_{0};
  TimerQueue timers_;
  const int epoll_fd_;
  const int wake_fd_;  // eventfd in epoll_fd_
  // Where the poller reads task output; the poller's alone. On the heap: a
  // thread_local array this size would be carved out of every thread's
  // stack in the process (static TLS), and in gyre dev it overflowed the
  // small stacks of the metrics server's threads.
  static constexpr size_t kReadBufferBytes = 64 * 1024;
  const std::unique_ptr<char[]> read_buffer_ = std::make_unique<char[]>(kReadBufferBytes);
  absl::Mutex mutex_;
  Handle next_handle_ ABSL_GUARDED_BY(mutex_) = 1;
  // Running subprocesses. A process is owned here from its spawn until its
  // report; only the poller (or the pooled thread finishing it) takes it
  // out, so the poller may use it without the lock.
  absl::flat_hash_map<Handle, std::unique_ptr<Process>> processes_ ABSL_GUARDED_BY(mutex_);
  // For the poller: processes cancelled, and processes with a deadline it
  // has not seen yet.
  std::vector<std::pair<Handle, absl::Duration>> cancelled_ ABSL_GUARDED_BY(mutex_);
  std::vector<Handle> new_deadlines_ ABSL_GUARDED_BY(mutex_);
  // The earliest time the poller knows it must look (a new deadline before
  // it wakes it).
  absl::Time poller_due_ ABSL_GUARDED_BY(mutex_) = absl::InfiniteFuture();
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  absl::flat_hash_map<Handle, TimerQueue::TimerId> sleeps_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<Handle, Callback> sleep_callbacks_ ABSL_GUARDED_BY(mutex_);
  int running_ ABSL_GUARDED_BY(mutex_) = 0;
  // Attempts queued for a spawn and not yet handed to the poller, with the
  // grace of a cancel that came meanwhile.
  absl::flat_hash_map<Handle, std::optional<absl::Duration>> launching_ ABSL_GUARDED_BY(mutex_);
  // Threads for what blocks: spawns where they wait for the child's exec
  // (SpawnWithoutWaitingAvailable false) and slow completions (declared before poller_: destroyed
  // after it).
  SupervisorThreads blocking_work_;
  std::thread poller_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_TASK_RUNNER_H_
