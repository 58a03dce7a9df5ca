#include "services/agent/task_runner.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "libs/testing/scratch_dir.h"
#include "prometheus/counter.h"

namespace gyre::agent {
namespace {

class TaskRunnerTest : public ::testing::Test {
 protected:
  TaskLaunch Launch(std::vector<std::string> argv, bool shell = false) {
    TaskLaunch launch;
    launch.argv = std::move(argv);
    launch.shell = shell;
    launch.work_dir = root_ + "/task" + std::to_string(++count_);
    launch.kill_grace = absl::Milliseconds(300);
    return launch;
  }

  TaskOutcome Run(TaskLaunch launch) {
    absl::Notification done;
    TaskOutcome result;
    runner_.Start(std::move(launch), [&](TaskOutcome outcome) {
      result = std::move(outcome);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return result;
  }

  // Runs `launch` while the clock moves on by `step` at a time.
  TaskOutcome RunAdvancing(TaskLaunch launch, absl::Duration step) {
    absl::Notification done;
    TaskOutcome result;
    runner_.Start(std::move(launch), [&](TaskOutcome outcome) {
      result = std::move(outcome);
      done.Notify();
    });
    EXPECT_TRUE(clock_.AdvanceUntil([&] { return done.HasBeenNotified(); }, step));
    return result;
  }

  // Output of a running task, as on_output delivers it.
  struct Output {
    absl::Mutex mutex;
    std::string stdout_text ABSL_GUARDED_BY(mutex);

    std::function<void(int, int64_t, absl::string_view)> Collector() {
      return [this](int stream, int64_t, absl::string_view data) {
        absl::MutexLock lock(&mutex);
        if (stream == 1) stdout_text.append(data.data(), data.size());
      };
    }
    bool Contains(absl::string_view text) {
      absl::MutexLock lock(&mutex);
      return absl::StrContains(stdout_text, text);
    }
    // Whether `text` arrived within 30 s.
    bool AwaitText(absl::string_view text) {
      absl::MutexLock lock(&mutex);
      auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) {
        return absl::StrContains(stdout_text, text);
      };
      return mutex.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(30));
    }
  };

  // A task started with its stdout collected, and its outcome once reported.
  struct Started {
    Output output;
    absl::Notification done;
    TaskOutcome outcome;
    TaskRunner::Handle handle = 0;
  };
  // Starts `launch` into `started`; returns once "ready" is on its stdout
  // (the task has set itself up: a spawn does not wait for the exec, let
  // alone the shell's first line), false if it never came.
  bool StartUntilReady(TaskLaunch launch, Started* started) {
    launch.on_output = started->output.Collector();
    started->handle = runner_.Start(std::move(launch), [started](TaskOutcome outcome) {
      started->outcome = std::move(outcome);
      started->done.Notify();
    });
    return started->output.AwaitText("ready\n");
  }

  gyre::testing::ScratchDir scratch_{"gyre_runner_test"};
  std::string root_ = scratch_.path();
  int count_ = 0;
  // Timeouts, graces and sleeps pass when the test advances this clock; the
  // processes themselves run in real time.
  FakeClock clock_;
  TaskRunner runner_{&clock_};
};

TEST_F(TaskRunnerTest, EverySpawnIsCountedByHowMuchOfTheDescriptorTableItsChildCopied) {
  prometheus::Counter shared;
  prometheus::Counter copied;
  runner_.set_spawn_counters(&shared, &copied);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Run(Launch({"/bin/true"})).kind, TaskOutcome::Kind::kSucceeded);
  }
  // One at a time, each child finds a group free: the short way.
  EXPECT_EQ(shared.Value(), 3);
  EXPECT_EQ(copied.Value(), 0);
  // A process whose exec fails was started where the spawn does not wait
  // for the exec, and is counted then.
  EXPECT_EQ(Run(Launch({"/nonexistent/program"})).kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(shared.Value() + copied.Value(), SpawnWithoutWaitingAvailable() ? 4 : 3);
}

TEST_F(TaskRunnerTest, ExitCodeAndOutputAreReported) {
  const TaskOutcome outcome = Run(Launch({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.exit_code, 3);
  EXPECT_EQ(outcome.stdout_head, "out\n");
  EXPECT_EQ(outcome.stderr_head, "err\n");
  EXPECT_EQ(outcome.error, "exit code 3");
}

TEST_F(TaskRunnerTest, ArgvIsPassedLiterallyWithoutAShell) {
  const TaskOutcome outcome = Run(Launch({"/bin/echo", "a b", "$(whoami)", "; rm -rf /"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded);
  EXPECT_EQ(outcome.stdout_head, "a b $(whoami) ; rm -rf /\n");
}

TEST_F(TaskRunnerTest, EnvironmentIsExplicitAndContextArrivesAsVariables) {
  setenv("GYRE_AGENT_SECRET", "hunter2", 1);
  TaskLaunch launch = Launch({"echo \"$NAME|${GYRE_AGENT_SECRET:-unset}\""}, /*shell=*/true);
  launch.env["NAME"] = "$(reboot)";
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.stdout_head, "$(reboot)|unset\n");
}

TEST_F(TaskRunnerTest, RunsInItsOwnWorkingDirectoryAndReadsGyreOutput) {
  TaskLaunch launch = Launch({"pwd; echo '{\"ROWS\": \"7\"}' > \"$GYRE_OUTPUT\""}, true);
  const std::string dir = launch.work_dir;
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.stdout_head, dir + "\n");
  EXPECT_EQ(outcome.output_json, "{\"ROWS\": \"7\"}\n");
}

TEST_F(TaskRunnerTest, AGyreOutputOverTheCapFailsTheTaskInsteadOfArrivingCut) {
  // 1 MiB exactly passes; one byte more fails, with nothing passed on.
  TaskLaunch fits = Launch({"head -c 1048576 /dev/zero | tr '\\0' a > \"$GYRE_OUTPUT\""}, true);
  const TaskOutcome passed = Run(fits);
  EXPECT_EQ(passed.kind, TaskOutcome::Kind::kSucceeded) << passed.error;
  EXPECT_EQ(passed.output_json.size(), 1048576u);
  TaskLaunch over = Launch({"head -c 1048577 /dev/zero | tr '\\0' a > \"$GYRE_OUTPUT\""}, true);
  const TaskOutcome failed = Run(over);
  EXPECT_EQ(failed.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(failed.exit_code, 0);
  EXPECT_EQ(failed.error,
            "$GYRE_OUTPUT holds more than 1048576 bytes, the most a task may pass downstream");
  EXPECT_EQ(failed.output_json, "");
}

TEST_F(TaskRunnerTest, AFifoAtGyreOutputFailsTheTaskInsteadOfBlockingTheAgent) {
  // Nobody ever writes to the FIFO: a blocking open or read would hang here.
  const TaskOutcome outcome =
      Run(Launch({"rm -f \"$GYRE_OUTPUT\"; mkfifo \"$GYRE_OUTPUT\""}, /*shell=*/true));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.stderr_head;
  EXPECT_EQ(outcome.error,
            "$GYRE_OUTPUT is not a regular file (a FIFO, device or directory is never read); "
            "write the output to the file itself");
  EXPECT_EQ(outcome.output_json, "");
}

TEST_F(TaskRunnerTest, ACancelledTaskWithAFifoAtGyreOutputFreesItsSlot) {
  absl::Notification done;
  TaskOutcome result;
  Output output;
  TaskLaunch launch =
      Launch({"rm -f \"$GYRE_OUTPUT\"; mkfifo \"$GYRE_OUTPUT\"; echo made; sleep 60"}, true);
  launch.on_output = output.Collector();
  const TaskRunner::Handle handle = runner_.Start(launch, [&](TaskOutcome outcome) {
    result = std::move(outcome);
    done.Notify();
  });
  ASSERT_TRUE(output.AwaitText("made\n")) << "the FIFO is there before the cancel";
  runner_.Cancel(handle, absl::Milliseconds(100));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(result.kind, TaskOutcome::Kind::kCancelled);
}

TEST_F(TaskRunnerTest, ASymlinkAtGyreOutputIsNotFollowed) {
  const std::string secret = root_ + "/secret.json";
  {
    std::FILE* file = std::fopen(secret.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs("{\"SECRET\": \"agent-only\"}", file);
    std::fclose(file);
  }
  const TaskOutcome outcome =
      Run(Launch({"rm -f \"$GYRE_OUTPUT\"; ln -s " + secret + " \"$GYRE_OUTPUT\""}, true));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "$GYRE_OUTPUT is a symbolic link; write the output to the file itself");
  EXPECT_EQ(outcome.output_json, "") << "the file the link names was not read";
}

TEST_F(TaskRunnerTest, AWorkingDirectoryAskedToGoIsRemovedAfterItsOutputIsRead) {
  TaskLaunch launch =
      Launch({"mkdir -p deep/er && echo x > deep/er/file && echo '{\"K\": \"v\"}' > "
              "\"$GYRE_OUTPUT\""},
             true);
  launch.remove_work_dir = true;
  const std::string dir = launch.work_dir;
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.stderr_head;
  EXPECT_EQ(outcome.output_json, "{\"K\": \"v\"}\n") << "read before the directory went";
  EXPECT_FALSE(std::filesystem::exists(dir)) << "removed with everything in it";

  TaskLaunch kept = Launch({"echo x > file"}, true);  // remove_work_dir is off by default
  const std::string kept_dir = kept.work_dir;
  EXPECT_EQ(Run(kept).exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(kept_dir + "/file"));
}

TEST_F(TaskRunnerTest, ARelativeWorkingDirectoryStillGetsItsOutput) {
  // As gyre dev gives it (--data_dir=.gyre-dev): relative to the agent's
  // directory, while the task itself starts inside it.
  char* previous = getcwd(nullptr, 0);
  ASSERT_NE(previous, nullptr);
  ASSERT_EQ(chdir(root_.c_str()), 0);
  TaskLaunch launch = Launch({"pwd; echo '{\"ROWS\": \"7\"}' > \"$GYRE_OUTPUT\""}, true);
  launch.work_dir = "relative/task";
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(chdir(previous), 0);
  free(previous);
  EXPECT_EQ(outcome.exit_code, 0) << outcome.stderr_head;
  EXPECT_EQ(outcome.stdout_head, root_ + "/relative/task\n");
  EXPECT_EQ(outcome.output_json, "{\"ROWS\": \"7\"}\n");
}

TEST_F(TaskRunnerTest, OutputIsCappedToItsFirstBytesButCounted) {
  TaskLaunch launch =
      Launch({"printf first-; head -c 100000 /dev/zero | tr '\\0' x; printf -- -last"}, true);
  launch.max_output_bytes = 1000;
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.stdout_head.size(), 1000u);
  EXPECT_EQ(outcome.stdout_head.substr(0, 7), "first-x") << "the head is kept, not the tail";
  EXPECT_EQ(outcome.stdout_bytes, 6 + 100000 + 5);
}

TEST_F(TaskRunnerTest, ATaskIsKilledWhenTheClockPassesItsTimeout) {
  // Five minutes of sleep, ended as soon as the (fake) clock passes the
  // timeout: the test takes real milliseconds.
  TaskLaunch launch = Launch({"sleep", "300"});
  launch.timeout = absl::Minutes(2);
  const TaskOutcome outcome = RunAdvancing(launch, absl::Seconds(10));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kTimedOut);
  EXPECT_EQ(outcome.signal, SIGTERM);
  EXPECT_EQ(outcome.error, "timed out after 2m");
  EXPECT_GE(outcome.wall_time, launch.timeout) << "not before the timeout, on the clock";
}

TEST_F(TaskRunnerTest, TimeoutEscalatesFromSigtermToSigkillAfterTheGrace) {
  // The task notes SIGTERM and carries on; only SIGKILL ends it.
  TaskLaunch launch =
      Launch({"trap 'echo term' TERM; echo ready; while :; do sleep 1; done"}, true);
  launch.timeout = absl::Seconds(10);
  launch.kill_grace = absl::Hours(24);
  Started task;
  ASSERT_TRUE(StartUntilReady(launch, &task)) << "the trap is set";
  ASSERT_TRUE(clock_.AdvanceUntil([&] { return task.output.Contains("term"); }, absl::Seconds(1)))
      << "SIGTERM at the timeout";
  EXPECT_FALSE(task.done.HasBeenNotified()) << "no SIGKILL before the grace has passed";
  const absl::Time terminated = clock_.Now();
  ASSERT_TRUE(clock_.AdvanceUntil([&] { return task.done.HasBeenNotified(); }, absl::Hours(1)));
  EXPECT_GE(clock_.Now() - terminated, absl::Hours(23)) << "SIGKILL after the grace";
  EXPECT_EQ(task.outcome.kind, TaskOutcome::Kind::kTimedOut);
  EXPECT_EQ(task.outcome.signal, SIGKILL);
  EXPECT_EQ(task.outcome.error, "timed out after 10s");
}

TEST_F(TaskRunnerTest, TimeoutKillsTheProcessTreeEvenIfItIgnoresSigterm) {
  // The background sleep holds the pipes: the attempt ends only once the
  // whole group is gone. The clock moves once the trap is set (a spawn does
  // not wait for the exec, let alone the shell's first line).
  TaskLaunch launch = Launch({"trap '' TERM; sleep 100 & echo ready; sleep 100; wait"}, true);
  launch.timeout = absl::Milliseconds(200);
  launch.kill_grace = absl::Milliseconds(300);
  Started task;
  ASSERT_TRUE(StartUntilReady(launch, &task)) << "the trap is set";
  ASSERT_TRUE(
      clock_.AdvanceUntil([&] { return task.done.HasBeenNotified(); }, absl::Milliseconds(100)));
  EXPECT_EQ(task.outcome.kind, TaskOutcome::Kind::kTimedOut);
  EXPECT_EQ(task.outcome.signal, SIGKILL) << "the shell ignored SIGTERM";
  EXPECT_EQ(task.outcome.error, "timed out after 200ms");
}

TEST_F(TaskRunnerTest, CancelStopsARunningTask) {
  absl::Notification done;
  TaskOutcome result;
  const TaskRunner::Handle handle =
      runner_.Start(Launch({"sleep", "100"}), [&](TaskOutcome outcome) {
        result = std::move(outcome);
        done.Notify();
      });
  runner_.Cancel(handle, absl::Hours(1));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(result.kind, TaskOutcome::Kind::kCancelled);
  EXPECT_EQ(result.signal, SIGTERM);
}

TEST_F(TaskRunnerTest, CancelWhileTheTaskFloodsItsOutputEndsIt) {
  TaskLaunch launch = Launch({"yes"});
  launch.max_output_bytes = 4096;
  Output output;
  launch.on_output = output.Collector();
  absl::Notification done;
  TaskOutcome result;
  const TaskRunner::Handle handle = runner_.Start(launch, [&](TaskOutcome outcome) {
    result = std::move(outcome);
    done.Notify();
  });
  ASSERT_TRUE(output.AwaitText("y\n")) << "the output is being pumped";
  runner_.Cancel(handle, absl::Hours(1));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(result.kind, TaskOutcome::Kind::kCancelled);
  EXPECT_EQ(result.signal, SIGTERM);
  EXPECT_LE(result.stdout_head.size(), 4096u);
  EXPECT_GE(result.stdout_bytes, static_cast<int64_t>(result.stdout_head.size()));
}

TEST_F(TaskRunnerTest, ACancelledTaskThatIgnoresSigtermIsKilledAfterTheCancelGrace) {
  Started task;
  ASSERT_TRUE(StartUntilReady(Launch({"trap '' TERM; echo ready; sleep 100"}, true), &task))
      << "the trap is set";
  const absl::Time cancelled = clock_.Now();
  runner_.Cancel(task.handle, absl::Minutes(5));
  ASSERT_TRUE(clock_.AdvanceUntil([&] { return task.done.HasBeenNotified(); }, absl::Seconds(30)));
  EXPECT_GE(clock_.Now() - cancelled, absl::Minutes(5)) << "SIGKILL only after the grace";
  EXPECT_EQ(task.outcome.kind, TaskOutcome::Kind::kCancelled);
  EXPECT_EQ(task.outcome.signal, SIGKILL);
}

TEST_F(TaskRunnerTest, OnSpawnedNamesTheProcessBeforeTheOutcomeIsReported) {
  // The agent holds the task's start back from there, and drops it when the
  // outcome comes first: the outcome must never overtake the spawn.
  TaskLaunch launch = Launch({"echo $$"}, /*shell=*/true);
  absl::Mutex mutex;
  std::vector<std::string> calls;
  launch.on_spawned = [&](pid_t pid) {
    absl::MutexLock lock(&mutex);
    calls.push_back(absl::StrCat("spawned ", pid, "\n"));
  };
  const TaskOutcome outcome = Run(launch);
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.error;
  absl::MutexLock lock(&mutex);
  ASSERT_EQ(calls.size(), 1u) << "called once, before the outcome (Run returns after it)";
  EXPECT_EQ(calls[0], "spawned " + outcome.stdout_head) << "with the task's own pid";

  // A spawn whose exec fails: where the spawn does not wait for the exec,
  // a process did start (and is named first); either way the outcome says
  // why it failed.
  TaskLaunch missing = Launch({"/nonexistent/program"});
  std::atomic<bool> spawned{false};
  std::atomic<bool> spawned_after_outcome{false};
  std::atomic<bool> reported{false};
  missing.on_spawned = [&](pid_t) {
    spawned = true;
    spawned_after_outcome = reported.load();
  };
  const TaskOutcome failed = Run(missing);
  reported = true;
  EXPECT_EQ(failed.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(failed.error, "cannot run \"/nonexistent/program\": No such file or directory");
  EXPECT_EQ(failed.exit_code, 0) << "no program ran to exit";
  EXPECT_EQ(spawned.load(), SpawnWithoutWaitingAvailable());
  EXPECT_FALSE(spawned_after_outcome.load());
}

TEST_F(TaskRunnerTest, MissingCommandIsAClearError) {
  const TaskOutcome outcome = Run(Launch({"gyre-no-such-command"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "cannot run \"gyre-no-such-command\": No such file or directory");
}

TEST_F(TaskRunnerTest, ReportsCpuTimeAndPeakMemory) {
  const TaskOutcome outcome =
      Run(Launch({"python3", "-c", "b = bytearray(60 * 1024 * 1024)\nsum(range(3000000))"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_head;
  EXPECT_GE(outcome.peak_rss_bytes, 60 * 1024 * 1024);
  EXPECT_GT(outcome.cpu_time, absl::ZeroDuration());
}

TEST_F(TaskRunnerTest, BuiltinsNoopAndSleep) {
  TaskLaunch noop;
  noop.builtin = TaskLaunch::Builtin::kNoop;
  EXPECT_EQ(Run(noop).kind, TaskOutcome::Kind::kSucceeded);
  TaskLaunch sleep;
  sleep.builtin = TaskLaunch::Builtin::kSleep;
  sleep.sleep = absl::Hours(1);
  const TaskOutcome slept = RunAdvancing(sleep, absl::Minutes(10));
  EXPECT_EQ(slept.kind, TaskOutcome::Kind::kSucceeded);
  EXPECT_GE(slept.wall_time, absl::Hours(1)) << "measured on the clock";
}

TEST_F(TaskRunnerTest, ManyConcurrentTasksAllComplete) {
  absl::Mutex mutex;
  int completed = 0;
  for (int i = 0; i < 100; ++i) {
    runner_.Start(Launch({"/bin/true"}), [&](const TaskOutcome& outcome) {
      EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded);
      absl::MutexLock lock(&mutex);
      completed++;
    });
  }
  absl::MutexLock lock(&mutex);
  auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) { return completed == 100; };
  EXPECT_TRUE(mutex.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(60)));
}

}  // namespace
}  // namespace gyre::agent
