#include "services/agent/process_spawn.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gyre::agent {
namespace {

// The inode a descriptor refers to, to tell a pipe from /dev/null.
ino_t InodeOf(int fd) {
  struct stat info {};
  return fstat(fd, &info) == 0 ? info.st_ino : 0;
}

// Reads `fd` to its end.
std::string ReadAll(int fd) {
  std::string out;
  char buffer[256];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

TEST(SpawnDescriptorsTest, AGroupWhoseChildHasItsCopyServesTheNextSpawnAndIsNotClearedUnderIt) {
  SpawnDescriptors descriptors(1);
  const ino_t null_inode = InodeOf(descriptors.null_fd());
  SpawnDescriptors::Lease first = descriptors.Acquire(2);
  ASSERT_NE(first.group, nullptr) << "no close_range on this kernel";
  // Its child has not copied the table yet: nobody else may use the group.
  EXPECT_EQ(descriptors.Acquire(2).group, nullptr);

  first.group->copied.store(true);  // what the child does after its copy
  SpawnDescriptors::Lease second = descriptors.Acquire(2);
  ASSERT_EQ(second.group, first.group);
  EXPECT_NE(second.id, first.id);
  EXPECT_FALSE(second.group->copied.load()) << "the new child has not copied it yet";
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  ASSERT_GE(dup3(pipe_fds[1], second.group->fds[0], O_CLOEXEC), 0);

  // The first spawn's parent returns from its clone: the group is no longer
  // its own, and the second spawn's pipe stays where it was placed.
  descriptors.Release(first);
  EXPECT_EQ(InodeOf(second.group->fds[0]), InodeOf(pipe_fds[1]));
  descriptors.Release(second);
  EXPECT_EQ(InodeOf(second.group->fds[0]), null_inode);
  EXPECT_NE(descriptors.Acquire(2).group, nullptr) << "released: free again";
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

TEST(SpawnDescriptorsTest, TakingOverClearsTheSlotsTheLastSpawnFilledAndThisOneDoesNot) {
  SpawnDescriptors descriptors(1);
  const ino_t null_inode = InodeOf(descriptors.null_fd());
  SpawnDescriptors::Lease first = descriptors.Acquire(4);  // stdio and two cgroup files
  ASSERT_NE(first.group, nullptr) << "no close_range on this kernel";
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  for (int fd : first.group->fds) ASSERT_GE(dup3(pipe_fds[1], fd, O_CLOEXEC), 0);
  first.group->copied.store(true);

  SpawnDescriptors::Lease second = descriptors.Acquire(2);
  ASSERT_EQ(second.group, first.group);
  // Left holding the write end, the pipe would never reach its end.
  EXPECT_EQ(InodeOf(second.group->fds[2]), null_inode);
  EXPECT_EQ(InodeOf(second.group->fds[3]), null_inode);
  descriptors.Release(second);
  for (int fd : second.group->fds) EXPECT_EQ(InodeOf(fd), null_inode);
  close(pipe_fds[1]);
  EXPECT_EQ(ReadAll(pipe_fds[0]), "") << "every copy of the write end is closed";
  close(pipe_fds[0]);
  descriptors.Release(first);  // taken over: does nothing
}

// A child copies every descriptor below its group's: a spawn takes the
// lowest group it may, and a group has only the slots a task fills.
TEST(SpawnDescriptorsTest, ASpawnTakesTheLowestGroupFreeOrCopiedWithTheSlotsItNeedsOnly) {
  SpawnDescriptors descriptors(3, 2);
  SpawnDescriptors::Lease first = descriptors.Acquire(2);
  ASSERT_NE(first.group, nullptr) << "no close_range on this kernel";
  EXPECT_EQ(first.group->fds[2], -1) << "no slot for cgroup files that no task joins";
  EXPECT_EQ(descriptors.Acquire(3).group, nullptr) << "more than a group holds: the long way";
  SpawnDescriptors::Lease second = descriptors.Acquire(2);
  SpawnDescriptors::Lease third = descriptors.Acquire(2);
  ASSERT_NE(second.group, nullptr);
  ASSERT_NE(third.group, nullptr);
  EXPECT_LT(first.group->limit, second.group->limit);
  EXPECT_LT(second.group->limit, third.group->limit);

  // The third's process has exited (its group is free); the first child
  // has its copy, the second not yet.
  descriptors.Release(third);
  first.group->copied.store(true);
  SpawnDescriptors::Lease fourth = descriptors.Acquire(2);
  EXPECT_EQ(fourth.group, first.group) << "copied and lower than the free one";
  SpawnDescriptors::Lease fifth = descriptors.Acquire(2);
  EXPECT_EQ(fifth.group, third.group) << "the second's child has not copied its group yet";
  for (const SpawnDescriptors::Lease& lease : {first, second, fourth, fifth}) {
    descriptors.Release(lease);
  }
}

// Many threads spawn at once through 2 groups, most of them taking one over
// from a spawn whose child is still on its way to exec: each child's output
// must reach its own pipe, and every pipe its end. Without waiting for the
// exec, the group is released once the process has exited.
void SpawnConcurrently(SpawnMode mode) {
  SpawnDescriptors descriptors(2);
  constexpr int kThreads = 16;
  constexpr int kSpawnsPerThread = 20;
  std::vector<std::string> failures(kThreads);
  std::atomic<int> shared_table{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kSpawnsPerThread; ++i) {
        const std::string token = absl::StrCat(t, "-", i);
        int out[2];
        int err[2];
        if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
          failures[t] = "pipe2";
          return;
        }
        SpawnRequest request;
        request.path = "/bin/echo";
        request.argv = {"echo", token};
        request.stdout_fd = out[1];
        request.stderr_fd = err[1];
        absl::StatusOr<SpawnedProcess> spawned = SpawnProcess(request, &descriptors, mode);
        close(out[1]);
        close(err[1]);
        if (!spawned.ok()) {
          failures[t] = std::string(spawned.status().message());
          return;
        }
        if (!spawned->copied_table) shared_table++;
        int status = 0;
        waitpid(spawned->pid, &status, 0);
        if (spawned->in_flight != nullptr) {
          if (absl::Status failed = spawned->in_flight->Failure(); !failed.ok()) {
            failures[t] = std::string(failed.message());
            return;
          }
          spawned->in_flight->Exited();
        }
        const std::string got = ReadAll(out[0]);  // ends only if no copy is left open
        close(spawned->pidfd);
        close(out[0]);
        close(err[0]);
        if (got != token + "\n") {
          failures[t] = absl::StrCat("spawn ", token, " printed \"", got, "\"");
          return;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& failure : failures) EXPECT_EQ(failure, "");
  // How many take the short way depends on how soon each child runs (with
  // or without taking a group over: 50-95% here); none would mean the
  // groups never serve.
  EXPECT_GT(shared_table.load(), 0) << "no spawn took the short way";
}

TEST(SpawnProcessTest, ConcurrentSpawnsSharingFewGroupsEachWriteToTheirOwnPipe) {
  SpawnConcurrently(SpawnMode::kWaitForExec);
}

TEST(SpawnProcessTest, ConcurrentSpawnsThatDoNotWaitEachWriteToTheirOwnPipe) {
  if (!SpawnWithoutWaitingAvailable()) GTEST_SKIP() << "no direct system calls on this CPU";
  SpawnConcurrently(SpawnMode::kNoWait);
}

// Without waiting for the exec, a step that fails in the child is known
// once the process has exited, in the words a spawn that waits would use.
TEST(SpawnProcessTest, AChildThatFailsBeforeItsExecSaysWhichStepOnceReaped) {
  if (!SpawnWithoutWaitingAvailable()) GTEST_SKIP() << "no direct system calls on this CPU";
  for (const auto& [work_dir, expected] : std::vector<std::pair<std::string, std::string>>{
           {"", "cannot run \"/nonexistent/program\": No such file or directory"},
           {"/nonexistent/dir",
            "cannot run \"/nonexistent/program\": entering the working "
            "directory: No such file or directory"}}) {
    SpawnRequest request;
    request.path = "/nonexistent/program";
    request.argv = {"/nonexistent/program"};
    request.work_dir = work_dir;
    request.stdout_fd = STDERR_FILENO;
    request.stderr_fd = STDERR_FILENO;
    absl::StatusOr<SpawnedProcess> spawned = SpawnProcess(request, nullptr, SpawnMode::kNoWait);
    ASSERT_TRUE(spawned.ok()) << spawned.status() << ": it is known only at the exit";
    ASSERT_NE(spawned->in_flight, nullptr);
    int status = 0;
    ASSERT_EQ(waitpid(spawned->pid, &status, 0), spawned->pid);
    EXPECT_EQ(WEXITSTATUS(status), 127);
    EXPECT_EQ(spawned->in_flight->Failure().message(), expected);
    close(spawned->pidfd);
    // And a spawn that waits says the same at once.
    absl::StatusOr<SpawnedProcess> waited = SpawnProcess(request);
    EXPECT_EQ(waited.status().message(), expected);
  }
}

// A child that copied the whole table closes every descriptor but its
// stdio before its exec, even one opened without O_CLOEXEC: the task gets
// none of the agent's.
TEST(SpawnProcessTest, AChildThatCopiedTheWholeTableExecsWithItsStdioOnly) {
  const int leaky = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 0);
  for (const SpawnMode mode : {SpawnMode::kWaitForExec, SpawnMode::kNoWait}) {
    SpawnDescriptors descriptors(1, 2);
    SpawnDescriptors::Lease held = descriptors.Acquire(2);  // none left: the long way
    int out[2];
    ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    SpawnRequest request;
    request.path = "/bin/ls";
    request.argv = {"ls", "/proc/self/fd"};
    request.stdout_fd = out[1];
    request.stderr_fd = out[1];
    absl::StatusOr<SpawnedProcess> spawned = SpawnProcess(request, &descriptors, mode);
    close(out[1]);
    ASSERT_TRUE(spawned.ok()) << spawned.status();
    EXPECT_TRUE(spawned->copied_table);
    // 3 is ls's own handle on the directory it lists.
    EXPECT_EQ(ReadAll(out[0]), "0\n1\n2\n3\n");
    close(out[0]);
    int status = 0;
    ASSERT_EQ(waitpid(spawned->pid, &status, 0), spawned->pid);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    if (spawned->in_flight != nullptr) spawned->in_flight->Exited();
    close(spawned->pidfd);
    descriptors.Release(held);
  }
  close(leaky);
}

}  // namespace
}  // namespace gyre::agent
