#include "services/agent/work_dirs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"

namespace gyre::agent {
namespace {

// The permission bits of `path` (0 when it is missing).
mode_t ModeOf(const std::string& path) {
  struct stat info {};
  if (lstat(path.c_str(), &info) != 0) return 0;
  return info.st_mode & 07777;
}

class WorkDirsTest : public ::testing::Test {
 protected:
  testing::ScratchDir scratch_{"gyre_work_dirs"};
  const std::string root_ = scratch_.path() + "/root";
  const std::string slots_ = absl::StrCat(root_, "/.slots-", getpid());

  // A directory from `pool` for the attempt `name`, expected in `slots`.
  WorkDir Pooled(WorkDirPool& pool, const std::string& name, const std::string& slots,
                 std::string* path) {
    *path = root_ + "/" + name;
    WorkDir dir = PrepareWorkDir(path, std::nullopt, &pool);
    EXPECT_GE(dir.fd, 0);
    EXPECT_TRUE(dir.pooled);
    EXPECT_EQ(path->rfind(slots + "/", 0), 0u) << *path;
    return dir;
  }
};

TEST_F(WorkDirsTest, APooledDirectoryIsPrivateAndAnEmptiedOneServesTheNextTask) {
  WorkDirPool pool;
  std::string first;
  const WorkDir dir = Pooled(pool, "exec.task.1", slots_, &first);
  ASSERT_GE(dir.fd, 0);
  EXPECT_EQ(dir.output_path, first + "/" + kOutputName);
  EXPECT_EQ(ModeOf(first), 0700u);
  EXPECT_EQ(ModeOf(slots_), 0711u) << "passable, not listable, for a task of another user";
  EXPECT_EQ(ModeOf(root_), 0711u);

  // The task opened its mode and left it empty: the next task gets it
  // back, private again, through the same descriptor.
  ASSERT_EQ(chmod(first.c_str(), 0777), 0);
  ASSERT_TRUE(IsEmptyDirectory(dir.fd));
  ASSERT_TRUE(pool.Give(first, dir));
  std::string second = root_ + "/exec.task.2";
  const WorkDir again = PrepareWorkDir(&second, std::nullopt, &pool);
  EXPECT_EQ(second, first);
  EXPECT_EQ(again.fd, dir.fd);
  EXPECT_EQ(ModeOf(second), 0700u);

  // Another taken meanwhile is another directory.
  std::string third = root_ + "/exec.task.3";
  const WorkDir other = PrepareWorkDir(&third, std::nullopt, &pool);
  EXPECT_NE(third, second);
  close(other.fd);
  RemoveWorkDir(third);
}

// The entries of directory `path`.
size_t EntriesIn(const std::string& path) {
  std::error_code error;
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(path, error),
                                           std::filesystem::directory_iterator()));
}

TEST_F(WorkDirsTest, PreparedDirectoriesServeTheFirstTasksWithoutMakingMore) {
  WorkDirPool pool;
  PrepareWorkDirs(root_, 3, &pool);
  ASSERT_EQ(EntriesIn(slots_), 3u);
  std::vector<std::string> paths(3);
  std::vector<WorkDir> dirs;
  for (int i = 0; i < 3; ++i) {
    dirs.push_back(Pooled(pool, absl::StrCat("exec.task.", i), slots_, &paths[i]));
    EXPECT_EQ(ModeOf(paths[i]), 0700u);
  }
  EXPECT_EQ(EntriesIn(slots_), 3u) << "the three tasks took the prepared ones";
  std::string fourth;
  const WorkDir made = Pooled(pool, "exec.task.3", slots_, &fourth);
  EXPECT_EQ(EntriesIn(slots_), 4u) << "a fourth at once is made when needed";
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.Give(paths[i], dirs[i]));
  ASSERT_TRUE(pool.Give(fourth, made));
}

TEST_F(WorkDirsTest, DirectoriesPreparedUnderARelativeRootServeTasksGivenItsAbsolutePath) {
  const std::filesystem::path was = std::filesystem::current_path();
  std::filesystem::create_directories(root_);
  std::filesystem::current_path(scratch_.path());
  WorkDirPool pool;
  PrepareWorkDirs("root", 2, &pool);
  std::filesystem::current_path(was);
  ASSERT_EQ(EntriesIn(slots_), 2u);
  std::string path;
  const WorkDir dir = Pooled(pool, "exec.task.1", slots_, &path);
  EXPECT_EQ(EntriesIn(slots_), 2u);
  ASSERT_TRUE(pool.Give(path, dir));
}

TEST_F(WorkDirsTest, AnEmptinessCheckReadsTheDirectoryFromTheStartEveryTime) {
  WorkDirPool pool;
  std::string path = root_ + "/exec.task.1";
  const WorkDir dir = PrepareWorkDir(&path, std::nullopt, &pool);
  ASSERT_GE(dir.fd, 0);
  EXPECT_TRUE(IsEmptyDirectory(dir.fd));
  std::ofstream(path + "/left") << "x";
  EXPECT_FALSE(IsEmptyDirectory(dir.fd)) << "a second check through the same descriptor";
  ASSERT_EQ(unlink((path + "/left").c_str()), 0);
  EXPECT_TRUE(IsEmptyDirectory(dir.fd));
  ASSERT_TRUE(pool.Give(path, dir));
}

TEST_F(WorkDirsTest, WithoutAPoolTheTaskRunsInTheNamedDirectoryWhichKeepsWhatItHolds) {
  std::string path = root_ + "/exec.task.1";
  const std::string named = path;
  WorkDir dir = PrepareWorkDir(&path, std::nullopt, nullptr);
  ASSERT_GE(dir.fd, 0);
  EXPECT_FALSE(dir.pooled);
  EXPECT_EQ(path, named);
  EXPECT_EQ(ModeOf(path), 0700u);
  close(dir.fd);
  // A second attempt in the same directory: the earlier output goes, the
  // rest stays.
  std::ofstream(path + "/" + kOutputName) << "{}";
  std::ofstream(path + "/kept") << "x";
  ASSERT_EQ(chmod(path.c_str(), 0755), 0);
  dir = PrepareWorkDir(&path, std::nullopt, nullptr);
  EXPECT_EQ(ModeOf(path), 0700u);
  EXPECT_FALSE(std::filesystem::exists(path + "/" + kOutputName));
  EXPECT_TRUE(std::filesystem::exists(path + "/kept"));
  close(dir.fd);
}

TEST_F(WorkDirsTest, ASlotsPathThatIsNotADirectoryOfTheAgentsIsNeverUsed) {
  // Someone put a symbolic link where the agent's directories would go:
  // nothing is made (or removed) where it points, and the agent takes
  // another name.
  const std::string elsewhere = scratch_.path() + "/elsewhere";
  ASSERT_TRUE(std::filesystem::create_directories(elsewhere));
  std::ofstream(elsewhere + "/theirs") << "x";
  ASSERT_TRUE(std::filesystem::create_directories(root_));
  ASSERT_EQ(symlink(elsewhere.c_str(), slots_.c_str()), 0);
  WorkDirPool pool;
  std::string path;
  const WorkDir dir = Pooled(pool, "exec.task.1", slots_ + "-1", &path);
  ASSERT_GE(dir.fd, 0);
  EXPECT_TRUE(std::filesystem::is_symlink(slots_));
  EXPECT_TRUE(std::filesystem::exists(elsewhere + "/theirs"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(elsewhere),
                          std::filesystem::directory_iterator()),
            1);
  ASSERT_TRUE(pool.Give(path, dir));
}

TEST_F(WorkDirsTest, TheDirectoriesOfAnAgentThatIsGoneAreRemovedAndALiveOnesAreNot) {
  // A dead agent's (its lock went with it), with what its tasks left; a
  // live one's (held, here by the test); and one of another agent with
  // this agent's pid (another pid namespace on the same volume).
  const std::string dead = root_ + "/.slots-1";
  const std::string live = root_ + "/.slots-2";
  const std::string older = root_ + "/.recycled-3";  // an agent before the slots
  ASSERT_TRUE(std::filesystem::create_directories(older + "/12"));
  ASSERT_TRUE(std::filesystem::create_directories(dead + "/7/deep"));
  std::ofstream(dead + "/7/deep/left") << "x";
  ASSERT_TRUE(std::filesystem::create_directories(live + "/3"));
  ASSERT_TRUE(std::filesystem::create_directories(slots_ + "/0"));
  std::vector<int> held;
  for (const std::string& path : {live, slots_}) {
    const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    held.push_back(fd);
  }
  {
    WorkDirPool pool;
    std::string path;
    const WorkDir dir = Pooled(pool, "exec.task.1", slots_ + "-1", &path);
    ASSERT_GE(dir.fd, 0);
    EXPECT_FALSE(std::filesystem::exists(dead)) << "removed with what its tasks left";
    EXPECT_FALSE(std::filesystem::exists(older));
    EXPECT_TRUE(std::filesystem::exists(live + "/3"));
    EXPECT_TRUE(std::filesystem::exists(slots_ + "/0")) << "another agent's, alive";
    ASSERT_TRUE(pool.Give(path, dir));

    // This pool's own, held while it lives: not stale to another pool.
    WorkDirPool other;
    std::string other_path;
    const WorkDir other_dir = Pooled(other, "exec.task.2", slots_ + "-2", &other_path);
    EXPECT_TRUE(std::filesystem::exists(path));
    ASSERT_TRUE(other.Give(other_path, other_dir));
  }
  EXPECT_FALSE(std::filesystem::exists(slots_ + "-1")) << "removed by its pool";
  for (int fd : held) close(fd);
}

TEST_F(WorkDirsTest, WhereNoPooledDirectoryCanBeMadeTasksGetNamedOnes) {
  // Sixteen live agents (locked, as a live agent holds its own) already
  // hold every name this agent would take under the root.
  std::vector<int> held;
  for (int suffix = 0; suffix < 16; ++suffix) {
    const std::string path = suffix == 0 ? slots_ : absl::StrCat(slots_, "-", suffix);
    ASSERT_TRUE(std::filesystem::create_directories(path));
    const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    held.push_back(fd);
  }
  WorkDirPool pool;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    std::string path = absl::StrCat(root_, "/exec.task.", attempt);
    const std::string named = path;
    const WorkDir dir = PrepareWorkDir(&path, std::nullopt, &pool);
    ASSERT_GE(dir.fd, 0);
    EXPECT_FALSE(dir.pooled);
    EXPECT_EQ(path, named);
    close(dir.fd);
  }
  for (int fd : held) close(fd);
}

TEST_F(WorkDirsTest, ThePoolRemovesTheDirectoriesItKeeps) {
  {
    WorkDirPool pool;
    std::string path = root_ + "/exec.task.1";
    const WorkDir dir = PrepareWorkDir(&path, std::nullopt, &pool);
    ASSERT_GE(dir.fd, 0);
    ASSERT_TRUE(pool.Give(path, dir));
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(slots_));
  EXPECT_TRUE(std::filesystem::is_empty(root_));
}

}  // namespace
}  // namespace gyre::agent
