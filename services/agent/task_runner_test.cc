#include "services/agent/task_runner.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"

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

  gyre::testing::ScratchDir scratch_{"gyre_runner_test"};
  std::string root_ = scratch_.path();
  int count_ = 0;
  TaskRunner runner_;
};

TEST_F(TaskRunnerTest, ExitCodeAndOutputAreReported) {
  const TaskOutcome outcome = Run(Launch({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.exit_code, 3);
  EXPECT_EQ(outcome.stdout_tail, "out\n");
  EXPECT_EQ(outcome.stderr_tail, "err\n");
  EXPECT_EQ(outcome.error, "exit code 3");
}

TEST_F(TaskRunnerTest, ArgvIsPassedLiterallyWithoutAShell) {
  const TaskOutcome outcome = Run(Launch({"/bin/echo", "a b", "$(whoami)", "; rm -rf /"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded);
  EXPECT_EQ(outcome.stdout_tail, "a b $(whoami) ; rm -rf /\n");
}

TEST_F(TaskRunnerTest, EnvironmentIsExplicitAndContextArrivesAsVariables) {
  setenv("GYRE_AGENT_SECRET", "hunter2", 1);
  TaskLaunch launch = Launch({"echo \"$NAME|${GYRE_AGENT_SECRET:-unset}\""}, /*shell=*/true);
  launch.env["NAME"] = "$(reboot)";
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.stdout_tail, "$(reboot)|unset\n");
}

TEST_F(TaskRunnerTest, RunsInItsOwnWorkingDirectoryAndReadsGyreOutput) {
  TaskLaunch launch = Launch({"pwd; echo '{\"ROWS\": \"7\"}' > \"$GYRE_OUTPUT\""}, true);
  const std::string dir = launch.work_dir;
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.stdout_tail, dir + "\n");
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
  EXPECT_EQ(outcome.exit_code, 0) << outcome.stderr_tail;
  EXPECT_EQ(outcome.error,
            "$GYRE_OUTPUT is not a regular file (a FIFO, device or directory is never read); "
            "write the output to the file itself");
  EXPECT_EQ(outcome.output_json, "");
}

TEST_F(TaskRunnerTest, ACancelledTaskWithAFifoAtGyreOutputFreesItsSlot) {
  absl::Notification done;
  TaskOutcome result;
  const TaskRunner::Handle handle =
      runner_.Start(Launch({"rm -f \"$GYRE_OUTPUT\"; mkfifo \"$GYRE_OUTPUT\"; sleep 60"}, true),
                    [&](TaskOutcome outcome) {
                      result = std::move(outcome);
                      done.Notify();
                    });
  absl::SleepFor(absl::Milliseconds(200));
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
  EXPECT_EQ(outcome.exit_code, 0) << outcome.stderr_tail;
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
  EXPECT_EQ(outcome.exit_code, 0) << outcome.stderr_tail;
  EXPECT_EQ(outcome.stdout_tail, root_ + "/relative/task\n");
  EXPECT_EQ(outcome.output_json, "{\"ROWS\": \"7\"}\n");
}

TEST_F(TaskRunnerTest, OutputIsCappedButCounted) {
  TaskLaunch launch = Launch({"head -c 100000 /dev/zero"}, true);
  launch.max_output_bytes = 1000;
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.stdout_tail.size(), 1000u);
  EXPECT_EQ(outcome.stdout_bytes, 100000);
}

TEST_F(TaskRunnerTest, TimeoutKillsTheProcessTreeEvenIfItIgnoresSigterm) {
  TaskLaunch launch = Launch({"trap '' TERM; sleep 100 & sleep 100; wait"}, true);
  launch.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  const TaskOutcome outcome = Run(launch);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kTimedOut);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(outcome.error, "timed out after 200ms");
}

TEST_F(TaskRunnerTest, CancelStopsARunningTask) {
  absl::Notification done;
  TaskOutcome result;
  const TaskRunner::Handle handle =
      runner_.Start(Launch({"sleep", "100"}), [&](TaskOutcome outcome) {
        result = std::move(outcome);
        done.Notify();
      });
  absl::SleepFor(absl::Milliseconds(100));
  runner_.Cancel(handle, absl::Milliseconds(100));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(result.kind, TaskOutcome::Kind::kCancelled);
  EXPECT_EQ(result.signal, SIGTERM);
}

TEST_F(TaskRunnerTest, MissingCommandIsAClearError) {
  const TaskOutcome outcome = Run(Launch({"gyre-no-such-command"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.error, "cannot run \"gyre-no-such-command\": No such file or directory");
}

TEST_F(TaskRunnerTest, ReportsCpuTimeAndPeakMemory) {
  const TaskOutcome outcome =
      Run(Launch({"python3", "-c", "b = bytearray(60 * 1024 * 1024)\nsum(range(3000000))"}));
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_tail;
  EXPECT_GE(outcome.peak_rss_bytes, 60 * 1024 * 1024);
  EXPECT_GT(outcome.cpu_time, absl::ZeroDuration());
}

TEST_F(TaskRunnerTest, BuiltinsNoopAndSleep) {
  TaskLaunch noop;
  noop.builtin = TaskLaunch::Builtin::kNoop;
  EXPECT_EQ(Run(noop).kind, TaskOutcome::Kind::kSucceeded);
  TaskLaunch sleep;
  sleep.builtin = TaskLaunch::Builtin::kSleep;
  sleep.sleep = absl::Milliseconds(50);
  const TaskOutcome slept = Run(sleep);
  EXPECT_EQ(slept.kind, TaskOutcome::Kind::kSucceeded);
  EXPECT_GE(slept.wall_time, absl::Milliseconds(50));
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
