#include "libs/durable_log/event_log.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/durable_log/test_log_dir.h"

namespace gyre::durable_log {
namespace {

using ::gyre::durable_log::testing::AppendBytes;
using ::gyre::durable_log::testing::CrashImage;
using ::gyre::durable_log::testing::FileSizeOf;
using ::gyre::durable_log::testing::FlipByte;
using ::gyre::durable_log::testing::ReplayAll;
using ::gyre::durable_log::testing::SegmentPaths;
using ::gyre::durable_log::testing::TestLogDir;
using ::gyre::durable_log::testing::TestOptions;
using Records = std::vector<std::pair<uint64_t, std::string>>;

std::unique_ptr<EventLog> OpenOrDie(const std::string& dir, const EventLog::Options& options,
                                    EventLog::RecoveryInfo* info = nullptr) {
  absl::StatusOr<std::unique_ptr<EventLog>> log = EventLog::Open(dir, options, info);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? *std::move(log) : nullptr;
}

TEST(EventLogTest, RecordsGetConsecutiveIndexesKeptAcrossReopen) {
  TestLogDir dir;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(*log->AppendBatch({"one", "two"}), 1u);
    EXPECT_EQ(*log->Append(std::string(100000, 'x')), 3u);
    EXPECT_EQ(*log->Append(""), 4u);
    EXPECT_EQ(log->last_durable_index(), 4u);
  }
  EventLog::RecoveryInfo info;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions(), &info);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(info.replay_from, 1u);
  EXPECT_EQ(info.next_index, 5u);
  EXPECT_EQ(info.records, 4u);
  const Records records = ReplayAll(*log, 1);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0], (std::pair<uint64_t, std::string>{1, "one"}));
  EXPECT_EQ(records[2].second.size(), 100000u);
  EXPECT_EQ(records[3], (std::pair<uint64_t, std::string>{4, ""}));
  EXPECT_EQ(ReplayAll(*log, 3).front().first, 3u);
  EXPECT_EQ(*log->Append("five"), 5u);
}

std::atomic<int> observed_syncs{0};
std::atomic<bool> observed_negative{false};

TEST(EventLogTest, SyncObserverSeesEveryFsyncedGroupCommitAndNothingWithoutFsync) {
  SetSyncObserver([](double seconds) {
    if (seconds < 0) observed_negative = true;
    ++observed_syncs;
  });
  {
    TestLogDir dir;
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions(/*fsync=*/true));
    ASSERT_TRUE(log->Append("a").ok());
    ASSERT_TRUE(log->Append("b").ok());
    EXPECT_EQ(observed_syncs.load(), static_cast<int>(log->stats().syncs));
    EXPECT_GE(observed_syncs.load(), 2);
  }
  observed_syncs = 0;
  {
    TestLogDir dir;
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions(/*fsync=*/false));
    ASSERT_TRUE(log->Append("c").ok());
  }
  SetSyncObserver(nullptr);
  EXPECT_EQ(observed_syncs.load(), 0);
  EXPECT_FALSE(observed_negative.load());
}

TEST(EventLogTest, ConcurrentAppendersShareGroupCommits) {
  TestLogDir dir;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions(/*fsync=*/true));
  ASSERT_NE(log, nullptr);
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) ASSERT_TRUE(log->Append(absl::StrCat(t, ":", i)).ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  const EventLog::Stats stats = log->stats();
  EXPECT_EQ(stats.records_appended, 1600u);
  EXPECT_LT(stats.syncs, 1600u) << "group commit should batch concurrent appends";
  EXPECT_EQ(stats.syncs, stats.group_commits);
  EXPECT_EQ(ReplayAll(*log, 1).size(), 1600u);
}

TEST(EventLogTest, AsyncCompletionsRunInIndexOrder) {
  TestLogDir dir;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  std::vector<uint64_t> completed;  // only touched on the writer thread
  absl::Notification all_done;
  for (int i = 0; i < 500; ++i) {
    log->AppendAsync({absl::StrCat(i), "second"}, [&, i](absl::StatusOr<uint64_t> first) {
      ASSERT_TRUE(first.ok()) << first.status();
      completed.push_back(*first);
      if (i == 499) all_done.Notify();
    });
  }
  all_done.WaitForNotification();
  ASSERT_EQ(completed.size(), 500u);
  for (size_t i = 0; i < completed.size(); ++i) EXPECT_EQ(completed[i], 1 + 2 * i);
}

TEST(EventLogTest, AwaitDurableWaitsForAnAsyncAppend) {
  TestLogDir dir;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions(/*fsync=*/true));
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 100; ++i) log->AppendAsync({"r"}, [](absl::StatusOr<uint64_t>) {});
  ASSERT_TRUE(log->AwaitDurable(100).ok());
  EXPECT_GE(log->last_durable_index(), 100u);
  EXPECT_EQ(log->AwaitDurable(101).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EventLogTest, SegmentsRotateAndReplayAcrossThem) {
  TestLogDir dir;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 300; ++i) ASSERT_TRUE(log->Append(std::string(1000, 'a' + i % 26)).ok());
    EXPECT_GE(log->stats().segments_created, 3u);
  }
  EXPECT_GE(SegmentPaths(dir.log_dir()).size(), 4u);
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  const Records records = ReplayAll(*log, 1);
  ASSERT_EQ(records.size(), 300u);
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].first, i + 1);
    EXPECT_EQ(records[i].second, std::string(1000, 'a' + (i + 1) % 26));
  }
}

TEST(EventLogTest, BadAppendsFailClearlyAndChangeNothing) {
  TestLogDir dir;
  EventLog::Options options = TestOptions();
  options.max_record_bytes = 10;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), options);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->AppendBatch({}).status().message(), "cannot append an empty batch");
  EXPECT_EQ(log->AppendBatch({"ok", std::string(11, 'x')}).status().message(),
            "record of 11 bytes exceeds max_record_bytes (10)");
  EXPECT_EQ(*log->Append("fine"), 1u);
  ASSERT_TRUE(log->Close().ok());
  EXPECT_EQ(log->Append("late").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EventLogTest, BadOptionsAndPathsAreClearErrors) {
  TestLogDir dir;
  EventLog::Options options = TestOptions();
  options.segment_bytes = 100;
  EXPECT_EQ(EventLog::Open(dir.log_dir(), options).status().message(),
            "segment_bytes must be at least 4096, got 100");
  absl::Status status = EventLog::Open("/proc/gyre/log", TestOptions()).status();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/proc/gyre"), std::string::npos) << status;
  options = TestOptions();
  options.create_if_missing = false;
  EXPECT_EQ(EventLog::Open(dir.log_dir(), options).status().code(), absl::StatusCode::kNotFound);
}

TEST(EventLogTest, ASecondOpenOfTheSameDirectoryIsRefused) {
  TestLogDir dir;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  absl::Status second = EventLog::Open(dir.log_dir(), TestOptions()).status();
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.message().find(dir.log_dir()), std::string::npos) << second;
}

TEST(EventLogTest, TornTailIsCutAndAppendsContinueAfterIt) {
  TestLogDir dir;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->AppendBatch({"kept-1", "kept-2"}).ok());
  }
  const std::string segment = SegmentPaths(dir.log_dir()).back();
  AppendBytes(segment, std::string("\x40\x00\x00\x00garbage", 11));
  EventLog::RecoveryInfo info;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions(), &info);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(info.truncated_bytes, 11u);
    ASSERT_EQ(info.warnings.size(), 1u);
    EXPECT_NE(info.warnings[0].find("cut a torn tail of 11 bytes"), std::string::npos)
        << info.warnings[0];
    EXPECT_EQ(*log->Append("after"), 3u);
  }
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(ReplayAll(*log, 1), (Records{{1, "kept-1"}, {2, "kept-2"}, {3, "after"}}));
}

TEST(EventLogTest, ABatchCutInTwoByACrashIsDroppedWhole) {
  TestLogDir dir;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->Append("single").ok());
    ASSERT_TRUE(log->AppendBatch({"batch-a", "batch-b"}).ok());
  }
  // Cut inside the second record of the batch: the first one is whole but
  // must not be replayed without its sibling.
  const std::string segment = SegmentPaths(dir.log_dir()).back();
  testing::TruncateFile(segment, FileSizeOf(segment) - 3);
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(ReplayAll(*log, 1), (Records{{1, "single"}}));
  EXPECT_EQ(log->next_index(), 2u);
}

TEST(EventLogTest, CorruptionBeforeTheTailIsDataLossNamingFileAndOffset) {
  TestLogDir dir;
  EventLog::Options options = TestOptions();
  options.max_batch_bytes = 4096;  // the torn-tail window
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), options);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(log->Append(std::string(1000, 'r')).ok());
  }
  const std::vector<std::string> segments = SegmentPaths(dir.log_dir());
  FlipByte(segments.back(), 20);  // inside the first record of the last segment
  absl::Status status = EventLog::Open(dir.log_dir(), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find(segments.back() + " at offset 0"), std::string::npos) << status;
  // Nothing was repaired: the file is as it was.
  EXPECT_EQ(SegmentPaths(dir.log_dir()), segments);
}

TEST(EventLogTest, PreallocatedZerosAfterACrashAreDroppedSilently) {
  TestLogDir dir;
  std::string image;
  uint64_t written = 0;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->AppendBatch({"one", "two"}).ok());
    ASSERT_TRUE(log->Append("three").ok());
    image = CrashImage(dir, "crashed");
  }
  // Closed cleanly, the original ends at its last record; the crash image
  // still has the space reserved ahead of it.
  const std::string original = SegmentPaths(dir.log_dir()).back();
  written = FileSizeOf(original);
  const std::string crashed = SegmentPaths(image).back();
  ASSERT_GT(FileSizeOf(crashed), written);

  EventLog::RecoveryInfo info;
  std::unique_ptr<EventLog> log = OpenOrDie(image, TestOptions(), &info);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(info.truncated_bytes, 0u);
  EXPECT_TRUE(info.warnings.empty()) << info.warnings[0];
  EXPECT_EQ(FileSizeOf(crashed), written);  // the zeros are gone
  EXPECT_EQ(*log->Append("four"), 4u);
  log.reset();
  log = OpenOrDie(image, TestOptions());
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(ReplayAll(*log, 1), (Records{{1, "one"}, {2, "two"}, {3, "three"}, {4, "four"}}));
}

TEST(EventLogTest, ATornWriteBeforePreallocatedZerosIsCutAndReported) {
  TestLogDir dir;
  std::string image;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->AppendBatch({"kept-1", "kept-2"}).ok());
    image = CrashImage(dir, "crashed");
  }
  const uint64_t written = FileSizeOf(SegmentPaths(dir.log_dir()).back());
  const std::string crashed = SegmentPaths(image).back();
  // Half a frame landed in the reserved space before the crash.
  testing::WriteBytesAt(crashed, written, std::string("\x40\x00\x00\x00garbage", 11));
  EventLog::RecoveryInfo info;
  std::unique_ptr<EventLog> log = OpenOrDie(image, TestOptions(), &info);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(info.truncated_bytes, 11u);
  ASSERT_EQ(info.warnings.size(), 1u);
  EXPECT_NE(info.warnings[0].find("cut a torn tail of 11 bytes"), std::string::npos)
      << info.warnings[0];
  EXPECT_EQ(FileSizeOf(crashed), written);
  EXPECT_EQ(ReplayAll(*log, 1), (Records{{1, "kept-1"}, {2, "kept-2"}}));
}

TEST(EventLogTest, CorruptionFarBeforePreallocatedZerosIsStillDataLoss) {
  TestLogDir dir;
  EventLog::Options options = TestOptions();
  options.max_batch_bytes = 4096;  // the torn-tail window
  std::string image;
  {
    std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), options);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(log->Append(std::string(1000, 'r')).ok());
    image = CrashImage(dir, "crashed");
  }
  const std::string crashed = SegmentPaths(image).back();
  FlipByte(crashed, 20);
  absl::Status status = EventLog::Open(image, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("bytes before the end of its records"), std::string::npos)
      << status;
}

TEST(EventLogTest, SealedSegmentsEndAtTheirLastRecord) {
  TestLogDir dir;
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  // 64 KiB segments: about six of them.
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(log->Append(std::string(1000, 's')).ok());
  const std::vector<std::string> segments = SegmentPaths(dir.log_dir());
  ASSERT_GT(segments.size(), 2u);
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    std::ifstream file(segments[i], std::ios::binary);
    file.seekg(-1, std::ios::end);
    EXPECT_EQ(file.get(), 's') << segments[i] << " ends in preallocated space";
  }
}

TEST(EventLogTest, AcknowledgedRecordsSurviveSigkill) {
  TestLogDir dir;
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  if (child == 0) {
    close(pipe_fds[0]);
    absl::StatusOr<std::unique_ptr<EventLog>> log =
        EventLog::Open(dir.log_dir(), TestOptions(/*fsync=*/true));
    if (!log.ok()) _exit(1);
    for (int i = 0;; ++i) {
      if (!(*log)->Append(absl::StrCat("record-", i)).ok()) _exit(1);
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
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) {
    acknowledged.append(buffer, n);
  }
  close(pipe_fds[0]);
  int last = -1;
  for (absl::string_view line : absl::StrSplit(acknowledged, '\n')) {
    if (!line.empty()) {
      ASSERT_TRUE(absl::SimpleAtoi(line, &last));
    }
  }
  ASSERT_GE(last, 0) << "the child acknowledged nothing";
  std::unique_ptr<EventLog> log = OpenOrDie(dir.log_dir(), TestOptions());
  ASSERT_NE(log, nullptr);
  const Records records = ReplayAll(*log, 1);
  ASSERT_GT(records.size(), static_cast<size_t>(last)) << "an acknowledged record was lost";
  for (int i = 0; i <= last; ++i) {
    EXPECT_EQ(records[static_cast<size_t>(i)].second, absl::StrCat("record-", i));
  }
}

}  // namespace
}  // namespace gyre::durable_log
