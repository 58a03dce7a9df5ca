// The executor's isolation, on real processes: the process group killed as
// a whole, another user, rlimits, the environment, the private working
// directory, and the memory limit of a task's cgroup.
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "libs/testing/scratch_dir.h"
#include "services/agent/task_cgroup.h"
#include "services/agent/task_runner.h"

namespace gyre::agent {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Processes alive (not zombies) in process group `group`.
std::vector<int> LiveMembersOf(int group) {
  std::vector<int> members;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return members;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::string stat = ReadText(absl::StrCat("/proc/", pid, "/stat"));
    // "pid (comm) state ppid pgrp ...": comm may hold spaces, so from ')'.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields =
        absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
    int pgrp = 0;
    if (fields.size() > 2 && absl::SimpleAtoi(fields[2], &pgrp) && pgrp == group &&
        fields[0] != "Z") {
      members.push_back(pid);
    }
  }
  closedir(proc);
  return members;
}

class TaskIsolationTest : public ::testing::Test {
 protected:
  TaskLaunch Launch(std::vector<std::string> argv, bool shell = false) {
    TaskLaunch launch;
    launch.argv = std::move(argv);
    launch.shell = shell;
    launch.work_dir = root_ + "/task" + std::to_string(++count_);
    launch.kill_grace = absl::Milliseconds(300);
    return launch;
  }

  TaskOutcome Run(TaskRunner& runner, TaskLaunch launch) {
    absl::Notification done;
    TaskOutcome result;
    runner.Start(std::move(launch), [&](TaskOutcome outcome) {
      result = std::move(outcome);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return result;
  }

  gyre::testing::ScratchDir scratch_{"gyre_isolation_test"};
  std::string root_ = scratch_.path();
  int count_ = 0;
  TaskRunner runner_;
};

TEST_F(TaskIsolationTest, AGrandchildIgnoringSigtermIsKilledWithItsTaskOnTimeout) {
  // The leader dies of SIGTERM at once; the grandchild ignores it and holds
  // no pipe, so the attempt's end cannot wait for it: only killing the
  // whole group ends it.
  const std::string grandchild_file = root_ + "/grandchild";
  TaskLaunch launch =
      Launch({absl::StrCat("sh -c 'trap \"\" TERM; echo $$ > ", grandchild_file,
                           "; exec sleep 300' </dev/null >/dev/null 2>&1 & "
                           "while [ ! -s ",
                           grandchild_file, " ]; do sleep 0.01; done; echo $$; sleep 300")},
             /*shell=*/true);
  launch.timeout = absl::Seconds(2);
  const TaskOutcome outcome = Run(runner_, launch);
  EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kTimedOut);
  int leader = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(outcome.stdout_head), &leader))
      << outcome.stdout_head;
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadText(grandchild_file)), &grandchild));
  // SIGKILL was sent before the outcome; the kernel ends the process a
  // moment later.
  for (int i = 0; i < 1000 && !LiveMembersOf(leader).empty(); ++i) usleep(10000);
  EXPECT_TRUE(LiveMembersOf(leader).empty()) << "no process of the task's group survives";
  const std::string state = ReadText(absl::StrCat("/proc/", grandchild, "/stat"));
  EXPECT_TRUE(state.empty() || absl::StrContains(state, ") Z "))
      << "the grandchild that ignored SIGTERM is gone: " << state;
}

TEST_F(TaskIsolationTest, TheTaskRunsInASessionOfItsOwn) {
  // ps-free: the session id and process group of the shell are its pid.
  const TaskOutcome outcome =
      Run(runner_,
          Launch({"read -r _ _ _ _ pgrp session _ < /proc/self/stat; echo \"$$ $pgrp $session\""},
                 true));
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_head;
  // /proc/self is the `read` builtin's shell itself.
  std::vector<std::string> ids =
      absl::StrSplit(absl::StripAsciiWhitespace(outcome.stdout_head), ' ');
  ASSERT_EQ(ids.size(), 3u) << outcome.stdout_head;
  EXPECT_EQ(ids[1], ids[0]) << "its own process group";
  EXPECT_EQ(ids[2], ids[0]) << "its own session";
}

TEST_F(TaskIsolationTest, RlimitsFromTheConfigAreSetInTheTask) {
  // The limits the process itself reads back (a shell's ulimit -n, and
  // the kernel's view of the task: soft and hard).
  TaskLaunch launch = Launch({"ulimit -n; grep -E '^Max (open files|core file size|processes)' "
                              "/proc/self/limits | tr -s ' '"},
                             true);
  launch.rlimits = {{RLIMIT_NOFILE, 123}, {RLIMIT_CORE, 0}, {RLIMIT_NPROC, 4321}};
  const TaskOutcome outcome = Run(runner_, launch);
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_head;
  EXPECT_EQ(outcome.stdout_head,
            "123\n"
            "Max core file size 0 0 bytes \n"
            "Max processes 4321 4321 processes \n"
            "Max open files 123 123 files \n");
}

TEST_F(TaskIsolationTest, TheTaskHoldsNoDescriptorButItsStdio) {
  // What a library of the agent's might leave open: one descriptor without
  // O_CLOEXEC, and one with it.
  const int leaky = open("/dev/null", O_RDONLY);
  const int sealed = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(leaky, 0);
  ASSERT_GE(sealed, 0);
  const TaskOutcome outcome = Run(runner_, Launch({"/bin/ls", "/proc/self/fd"}));
  close(leaky);
  close(sealed);
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_head;
  // 3 is ls's own handle on the directory it lists.
  EXPECT_EQ(outcome.stdout_head, "0\n1\n2\n3\n");
}

TEST_F(TaskIsolationTest, TasksSpawnedAtOnceEachWriteToTheirOwnOutput) {
  // More at once than the agent keeps descriptor groups for (64 at most):
  // some spawns take the short way, the others copy the table.
  constexpr int kTasks = 96;
  absl::Mutex mutex;
  std::map<int, TaskOutcome> outcomes;
  absl::BlockingCounter done(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    TaskLaunch launch =
        Launch({absl::StrCat("echo out-", i, "; echo err-", i, " >&2; sleep 0.2")}, true);
    runner_.Start(std::move(launch), [&, i](TaskOutcome outcome) {
      absl::MutexLock lock(&mutex);
      outcomes[i] = std::move(outcome);
      done.DecrementCount();
    });
  }
  done.Wait();
  absl::MutexLock lock(&mutex);
  for (int i = 0; i < kTasks; ++i) {
    EXPECT_EQ(outcomes[i].kind, TaskOutcome::Kind::kSucceeded) << i;
    EXPECT_EQ(outcomes[i].stdout_head, absl::StrCat("out-", i, "\n")) << i;
    EXPECT_EQ(outcomes[i].stderr_head, absl::StrCat("err-", i, "\n")) << i;
  }
}

TEST_F(TaskIsolationTest, TheEnvironmentHoldsOnlyWhatTheTaskWasGiven) {
  setenv("GYRE_AGENT_TOKEN", "secret", 1);  // the agent's own configuration
  setenv("AGENT_ONLY", "leak", 1);
  TaskLaunch launch = Launch({"/usr/bin/env"});
  launch.env = {{"GYRE_EXECUTION_ID", "e1"}, {"GYRE_TASK_ID", "t"}, {"ROWS", "7"}};
  const TaskOutcome outcome = Run(runner_, launch);
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_head;
  std::set<std::string> names;
  for (absl::string_view line : absl::StrSplit(outcome.stdout_head, '\n', absl::SkipEmpty())) {
    names.insert(std::string(line.substr(0, line.find('='))));
  }
  std::set<std::string> expected = {"GYRE_EXECUTION_ID", "GYRE_TASK_ID", "ROWS", "GYRE_OUTPUT",
                                    "PATH"};
  // HOME and LANG pass on only when the agent has them (Bazel's test
  // sandbox sets no HOME).
  if (std::getenv("HOME") != nullptr) expected.insert("HOME");
  if (std::getenv("LANG") != nullptr) expected.insert("LANG");
  EXPECT_EQ(names, expected) << outcome.stdout_head;
}

TEST_F(TaskIsolationTest, TheWorkingDirectoryIsPrivateAndRemovedAfterwards) {
  // The first task opens its directory up and leaves it empty: the next
  // runs in it, private again; what that one leaves goes with its directory.
  TaskLaunch opener = Launch({"stat -c %a .; pwd; chmod 777 ."}, true);
  opener.remove_work_dir = true;
  const TaskOutcome first = Run(runner_, opener);
  ASSERT_EQ(first.kind, TaskOutcome::Kind::kSucceeded) << first.stderr_head;
  const std::vector<std::string> first_lines = absl::StrSplit(first.stdout_head, '\n');
  ASSERT_EQ(first_lines.size(), 3u) << first.stdout_head;
  EXPECT_EQ(first_lines[0], "700");
  const std::string first_dir = first_lines[1];
  EXPECT_TRUE(absl::StartsWith(first_dir, root_ + "/.slots-")) << first_dir;
  EXPECT_TRUE(std::filesystem::is_empty(first_dir)) << "kept, empty, for the next task";
  TaskLaunch launch = Launch({"stat -c %a .; pwd; ls -A | wc -l; echo left > file"}, true);
  launch.remove_work_dir = true;
  const TaskOutcome outcome = Run(runner_, launch);
  ASSERT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.stderr_head;
  EXPECT_EQ(outcome.stdout_head, "700\n" + first_dir + "\n0\n") << "private, empty, reused";
  EXPECT_FALSE(std::filesystem::exists(first_dir)) << "removed with what the task left";
}

TEST_F(TaskIsolationTest, ATaskThatRemovesOrMovesItsDirectoryDoesNotBreakTheNext) {
  // Running as the agent's user, a task may remove its directory, or move
  // it away and leave something else at its path; the agent then holds a
  // directory no later task can (or should) run in.
  const std::string elsewhere = root_ + "/elsewhere";
  for (const std::string& command : {std::string("rmdir \"$PWD\""),
                                     absl::StrCat("mv \"$PWD\" ", elsewhere, "; mkdir \"$PWD\"")}) {
    SCOPED_TRACE(command);
    TaskLaunch breaker = Launch({command}, true);
    breaker.remove_work_dir = true;
    const TaskOutcome broke = Run(runner_, breaker);
    ASSERT_EQ(broke.kind, TaskOutcome::Kind::kSucceeded) << broke.stderr_head;
    for (int i = 0; i < 2; ++i) {
      TaskLaunch next = Launch({"echo '{\"ok\": 1}' > \"$GYRE_OUTPUT\"; ls -A | wc -l"}, true);
      next.remove_work_dir = true;
      const TaskOutcome outcome = Run(runner_, next);
      EXPECT_EQ(outcome.kind, TaskOutcome::Kind::kSucceeded) << outcome.error;
      EXPECT_EQ(outcome.stdout_head, "1\n") << "an empty directory of its own";
      EXPECT_EQ(outcome.output_json, "{\"ok\": 1}\n");
    }
    std::filesystem::remove_all(elsewhere);
  }
}

TEST_F(TaskIsolationTest, ATaskRunAsNobodyCannotWriteTheAgentsFiles) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs the test to run as root";
  passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  ASSERT_EQ(chmod(root_.c_str(), 0711), 0);
  const std::string agent_file = root_ + "/agent-state";
  {
    std::ofstream out(agent_file);
    out << "agent";
  }
  ASSERT_EQ(chmod(agent_file.c_str(), 0644), 0);
  // In a directory named for the attempt, and in one of the agent's
  // reused ones (under its own directory in the root).
  for (const bool removed : {false, true}) {
    SCOPED_TRACE(removed ? "a reused directory" : "a named directory");
    TaskLaunch launch =
        Launch({absl::StrCat("id -u; echo task >> ", agent_file,
                             "; echo '{\"mine\": 1}' > \"$GYRE_OUTPUT\"; echo $HOME")},
               true);
    launch.run_as = RunAs{nobody->pw_uid, nobody->pw_gid, nobody->pw_dir};
    launch.remove_work_dir = removed;
    const TaskOutcome outcome = Run(runner_, launch);
    EXPECT_EQ(outcome.stdout_head, absl::StrCat(nobody->pw_uid, "\n", nobody->pw_dir, "\n"));
    EXPECT_TRUE(absl::StrContains(outcome.stderr_head, "Permission denied")) << outcome.stderr_head;
    EXPECT_EQ(ReadText(agent_file), "agent") << "the agent's file is untouched";
    EXPECT_EQ(outcome.output_json, "{\"mine\": 1}\n") << "its own directory is writable";
  }
}

TEST_F(TaskIsolationTest, AStartingAgentRemovesTheCgroupsOfAgentsThatDiedAndNoOthers) {
  std::unique_ptr<TaskCgroups> probe = TaskCgroups::Detect(absl::StrCat("gyre-test-", getpid()));
  if (!probe->enforced()) {
    GTEST_SKIP() << "no cgroup can be written here: " << probe->description();
  }
  const std::string base = probe->memory_base();
  // One an agent that died left (nobody holds it); one a live agent holds;
  // one a live agent keeps for its next task.
  const std::string dead = absl::StrCat(base, "/gyre-dead-", getpid(), "-0");
  const std::string live = absl::StrCat(base, "/gyre-live-", getpid(), "-0");
  ASSERT_EQ(mkdir(dead.c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_EQ(mkdir(live.c_str(), 0755), 0) << std::strerror(errno);
  const int held = open(live.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_EQ(flock(held, LOCK_EX | LOCK_NB), 0);
  std::unique_ptr<TaskCgroups> other = TaskCgroups::Detect(absl::StrCat("gyre-other-", getpid()));
  const TaskLimits limits{int64_t{64} << 20, 0};
  ASSERT_TRUE(other->Create(limits).ok());  // emptied at once: kept
  ASSERT_EQ(other->kept(), 1u);
  const std::string kept = absl::StrCat(base, "/gyre-other-", getpid(), "-0");
  ASSERT_TRUE(std::filesystem::exists(kept));

  std::unique_ptr<TaskCgroups> starting = TaskCgroups::Detect(absl::StrCat("gyre-new-", getpid()));
  EXPECT_FALSE(std::filesystem::exists(dead)) << "left by an agent that is gone";
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(std::filesystem::exists(kept));
  absl::StatusOr<std::unique_ptr<TaskCgroup>> reused = other->Create(limits);
  ASSERT_TRUE(reused.ok()) << reused.status();
  EXPECT_EQ(other->kept(), 0u) << "the kept one served the next task";
  reused->reset();
  close(held);
  rmdir(live.c_str());
}

TEST_F(TaskIsolationTest, ATaskOverItsMemoryLimitIsOomKilledAndReportedAsSuch) {
  std::shared_ptr<const TaskCgroups> cgroups =
      TaskCgroups::Detect(absl::StrCat("gyre-test-", getpid()));
  if (!cgroups->enforced()) {
    GTEST_SKIP() << "no writable cgroup (v2, or v1 memory) on this machine: "
                 << cgroups->description();
  }
  TaskRunner runner(Clock::Real(), cgroups);
  TaskLaunch over = Launch({"python3", "-c", "s = b'x' * (256 << 20)\nprint(len(s))"});
  over.limits.memory_bytes = int64_t{64} << 20;
  over.limits.cpu = 1;
  const TaskOutcome killed = Run(runner, over);
  EXPECT_EQ(killed.kind, TaskOutcome::Kind::kFailed);
  EXPECT_TRUE(killed.oom_killed);
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_TRUE(absl::StartsWith(killed.error, "killed: out of memory, limit 64 MiB, peak "))
      << killed.error;
  EXPECT_GE(killed.peak_rss_bytes, int64_t{60} << 20) << "the cgroup's peak, near the limit";
  EXPECT_TRUE(absl::StartsWith(killed.peak_memory_source, "cgroup")) << killed.peak_memory_source;
  EXPECT_EQ(runner.oom_kills(), 1);
  EXPECT_EQ(cgroups->kept(), 1u) << "the emptied cgroup is kept for the next task";

  // The next task reuses that cgroup: its limit rewritten, its peak reset,
  // and the OOM kill counted there before it not taken for its own.
  TaskLaunch within = Launch({"python3", "-c", "s = b'x' * (16 << 20)\nprint(len(s))"});
  within.limits.memory_bytes = int64_t{256} << 20;
  const TaskOutcome passed = Run(runner, within);
  EXPECT_EQ(passed.kind, TaskOutcome::Kind::kSucceeded) << passed.error << passed.stderr_head;
  EXPECT_FALSE(passed.oom_killed);
  EXPECT_GE(passed.peak_rss_bytes, int64_t{16} << 20);
  EXPECT_LT(passed.peak_rss_bytes, int64_t{60} << 20) << "not the previous task's peak";
  EXPECT_EQ(runner.oom_kills(), 1);
  EXPECT_EQ(cgroups->kept(), 1u);
}

TEST_F(TaskIsolationTest, WithoutCgroupsPeakMemoryComesFromWait4) {
  const TaskOutcome outcome = Run(runner_, Launch({"/bin/true"}));
  EXPECT_EQ(outcome.peak_memory_source, "wait4 maxrss");
}

TEST(FormatBytesTest, LimitsReadAsAUserWroteThem) {
  EXPECT_EQ(FormatBytes(int64_t{512} << 20), "512 MiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 29), "1.5 GiB");
  EXPECT_EQ(FormatBytes(1000), "1000 bytes");
}

}  // namespace
}  // namespace gyre::agent
