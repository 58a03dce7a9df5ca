#include "libs/durable_log/event_log.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace gyre::durable_log {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  EventLogTest() {
    char dir[] = "/tmp/gyre_event_log_XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/events.log";
  }
  ~EventLogTest() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> Reopen(EventLog::RecoveryInfo* info = nullptr) {
    std::vector<std::string> seen;
    auto log = EventLog::Open(
        path_, {},
        [&](absl::string_view record) {
          seen.emplace_back(record);
          return absl::OkStatus();
        },
        info);
    EXPECT_TRUE(log.ok()) << log.status();
    return seen;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(EventLogTest, AppendedRecordsReplayInOrderAfterReopen) {
  {
    auto log = EventLog::Open(path_, {}, [](absl::string_view) { return absl::OkStatus(); });
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append({"one", "two"}).ok());
    ASSERT_TRUE((*log)->Append({std::string(100000, 'x'), ""}).ok());
  }
  const std::vector<std::string> seen = Reopen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], "one");
  EXPECT_EQ(seen[2].size(), 100000u);
  EXPECT_EQ(seen[3], "");
}

TEST_F(EventLogTest, ConcurrentAppendersShareSyncs) {
  auto log = EventLog::Open(path_, {}, [](absl::string_view) { return absl::OkStatus(); });
  ASSERT_TRUE(log.ok());
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) ASSERT_TRUE((*log)->Append({absl::StrCat(t, ":", i)}).ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ((*log)->appended(), 1600u);
  EXPECT_LT((*log)->syncs(), 1600u) << "group commit should batch concurrent appends";
  log->reset();
  EXPECT_EQ(Reopen().size(), 1600u);
}

TEST_F(EventLogTest, TornTailIsCutAtTheLastWholeRecord) {
  {
    auto log = EventLog::Open(path_, {}, [](absl::string_view) { return absl::OkStatus(); });
    ASSERT_TRUE((*log)->Append({"kept-1", "kept-2"}).ok());
  }
  std::ofstream(path_, std::ios::app) << std::string("\x40\x00\x00\x00garbage", 11);
  EventLog::RecoveryInfo info;
  const std::vector<std::string> seen = Reopen(&info);
  EXPECT_EQ(seen, (std::vector<std::string>{"kept-1", "kept-2"}));
  EXPECT_EQ(info.truncated_bytes, 11u);
  // New appends continue after the cut.
  {
    auto log = EventLog::Open(path_, {}, [](absl::string_view) { return absl::OkStatus(); });
    ASSERT_TRUE((*log)->Append({"after"}).ok());
  }
  EXPECT_EQ(Reopen().back(), "after");
}

TEST_F(EventLogTest, ApplyErrorNamesTheRecord) {
  {
    auto log = EventLog::Open(path_, {}, [](absl::string_view) { return absl::OkStatus(); });
    ASSERT_TRUE((*log)->Append({"good", "bad"}).ok());
  }
  auto log = EventLog::Open(path_, {}, [](absl::string_view record) {
    return record == "bad" ? absl::DataLossError("cannot decode") : absl::OkStatus();
  });
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().message(), path_ + ": record 2 at offset 12: cannot decode");
}

TEST_F(EventLogTest, UnwritableDirectoryIsAClearError) {
  auto log = EventLog::Open("/proc/gyre/events.log", {},
                            [](absl::string_view) { return absl::OkStatus(); });
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("/proc/gyre"), std::string::npos) << log.status();
}

TEST_F(EventLogTest, AcknowledgedRecordsSurviveSigkill) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  if (child == 0) {
    close(pipe_fds[0]);
    auto log = EventLog::Open(path_, {}, [](absl::string_view) { return absl::OkStatus(); });
    for (int i = 0;; ++i) {
      if (!(*log)->Append({absl::StrCat("record-", i)}).ok()) _exit(1);
      const std::string line = absl::StrCat(i, "\n");
      if (write(pipe_fds[1], line.data(), line.size()) < 0) _exit(1);
    }
  }
  close(pipe_fds[1]);
  absl::SleepFor(absl::Milliseconds(300));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  std::string acknowledged;
  char buffer[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;)
    acknowledged.append(buffer, n);
  close(pipe_fds[0]);
  int last = -1;
  for (absl::string_view line : absl::StrSplit(acknowledged, '\n')) {
    if (!line.empty()) {
      ASSERT_TRUE(absl::SimpleAtoi(line, &last));
    }
  }
  ASSERT_GE(last, 0) << "the child acknowledged nothing";
  const std::vector<std::string> seen = Reopen();
  ASSERT_GT(seen.size(), static_cast<size_t>(last)) << "an acknowledged record was lost";
  for (int i = 0; i <= last; ++i)
    EXPECT_EQ(seen[static_cast<size_t>(i)], absl::StrCat("record-", i));
}

}  // namespace
}  // namespace gyre::durable_log
