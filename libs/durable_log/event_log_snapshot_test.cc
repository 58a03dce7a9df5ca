#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/durable_log/event_log.h"
#include "libs/durable_log/test_log_dir.h"

namespace gyre::durable_log {
namespace {

using ::gyre::durable_log::testing::AppendBytes;
using ::gyre::durable_log::testing::CrashImage;
using ::gyre::durable_log::testing::FileSizeOf;
using ::gyre::durable_log::testing::FlipByte;
using ::gyre::durable_log::testing::ReplayAll;
using ::gyre::durable_log::testing::SegmentPaths;
using ::gyre::durable_log::testing::SnapshotPaths;
using ::gyre::durable_log::testing::TestLogDir;
using ::gyre::durable_log::testing::TestOptions;

// Appends `count` records of 1,000 bytes ("<index>:...") and returns the log.
void AppendNumbered(EventLog& log, int count) {
  for (int i = 0; i < count; ++i) {
    const uint64_t index = log.next_index();
    std::string record = absl::StrCat(index, ":");
    record.resize(1000, '.');
    ASSERT_EQ(*log.Append(record), index);
  }
}

TEST(EventLogSnapshotTest, OpenHandsBackTheSnapshotAndReplaysOnlyWhatFollows) {
  TestLogDir dir;
  {
    auto log = EventLog::Open(dir.log_dir(), TestOptions());
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 100);
    ASSERT_TRUE((*log)->WriteSnapshot(100, "state after 100").ok());
    AppendNumbered(**log, 5);
  }
  EventLog::RecoveryInfo info;
  auto log = EventLog::Open(dir.log_dir(), TestOptions(), &info);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE(info.snapshot.has_value());
  EXPECT_EQ(info.snapshot->index, 100u);
  EXPECT_EQ(info.snapshot->state, "state after 100");
  EXPECT_EQ(info.replay_from, 101u);
  EXPECT_EQ(info.next_index, 106u);
  EXPECT_EQ(info.records, 5u);
  const auto records = ReplayAll(**log, info.replay_from);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records.front().first, 101u);
  EXPECT_EQ(records.front().second.substr(0, 4), "101:");
}

TEST(EventLogSnapshotTest, PreallocatedZerosBeforeTheSnapshotIndexAreNotRecords) {
  TestLogDir dir;
  std::string image;
  {
    auto log = EventLog::Open(dir.log_dir(), TestOptions());
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 10);
    ASSERT_TRUE((*log)->WriteSnapshot(10, "state after 10").ok());
    image = CrashImage(dir, "crashed");
  }
  // With fsync off, a power cut can lose records a snapshot covers: the
  // segment then holds 5 records and reserved zeros where 6..10 were.
  // Records before the snapshot index are not checksummed, and the zeros
  // must still not read as records.
  const std::string segment = SegmentPaths(image).front();
  constexpr uint64_t kFiveRecords = uint64_t{5} * 1008;
  testing::WriteBytesAt(segment, kFiveRecords,
                        std::string(FileSizeOf(segment) - kFiveRecords, '\0'));
  EventLog::RecoveryInfo info;
  auto log = EventLog::Open(image, TestOptions(), &info);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(info.replay_from, 11u);
  EXPECT_EQ(info.next_index, 11u);
  EXPECT_EQ(info.records, 0u);
  ASSERT_EQ(info.warnings.size(), 1u);
  EXPECT_NE(info.warnings[0].find("the log ended at record 5, before snapshot 10"),
            std::string::npos)
      << info.warnings[0];
  EXPECT_EQ(*(*log)->Append("next"), 11u);
}

TEST(EventLogSnapshotTest, RecordsASnapshotCoversAreNotReadBack) {
  TestLogDir dir;
  {
    auto log = EventLog::Open(dir.log_dir(), TestOptions());
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 20);
    ASSERT_TRUE((*log)->WriteSnapshot(10, "state after 10").ok());
  }
  // A payload byte of record 2: recovery does not need the record, so it
  // does not spend time verifying it either.
  FlipByte(SegmentPaths(dir.log_dir()).front(), 1008 + 20);
  EventLog::RecoveryInfo info;
  auto log = EventLog::Open(dir.log_dir(), TestOptions(), &info);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(info.replay_from, 11u);
  EXPECT_EQ(info.next_index, 21u);
  const auto records = ReplayAll(**log, info.replay_from);
  ASSERT_EQ(records.size(), 10u);
  EXPECT_EQ(records.front().second.substr(0, 3), "11:");
  // Without the snapshot the same byte is data loss.
  log->reset();
  std::filesystem::remove(SnapshotPaths(dir.log_dir()).back());
  EXPECT_EQ(EventLog::Open(dir.log_dir(), TestOptions()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(EventLogSnapshotTest, SegmentsCoveredByTheOldestKeptSnapshotAreDeleted) {
  TestLogDir dir;
  auto log = EventLog::Open(dir.log_dir(), TestOptions());  // 64 KiB segments
  ASSERT_TRUE(log.ok()) << log.status();
  AppendNumbered(**log, 300);
  const size_t segments_before = SegmentPaths(dir.log_dir()).size();
  ASSERT_GE(segments_before, 4u);
  ASSERT_TRUE((*log)->WriteSnapshot(150, "s150").ok());
  // Two snapshots are kept by default: with one, nothing can go yet.
  EXPECT_EQ(SegmentPaths(dir.log_dir()).size(), segments_before);
  ASSERT_TRUE((*log)->WriteSnapshot(300, "s300").ok());
  EXPECT_LT(SegmentPaths(dir.log_dir()).size(), segments_before);
  EXPECT_GT((*log)->stats().segments_deleted, 0u);
  EXPECT_EQ(SnapshotPaths(dir.log_dir()).size(), 2u);
  // What the older snapshot does not cover is still there to replay.
  EXPECT_EQ(ReplayAll(**log, 151).size(), 150u);
  const absl::Status compacted =
      (*log)->Replay(1, [](uint64_t, absl::string_view) { return absl::OkStatus(); });
  EXPECT_EQ(compacted.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(compacted.message().find("older records are in a snapshot"), std::string::npos)
      << compacted;
  // A third snapshot retires the first one.
  AppendNumbered(**log, 10);
  ASSERT_TRUE((*log)->WriteSnapshot(310, "s310").ok());
  const std::vector<std::string> snapshots = SnapshotPaths(dir.log_dir());
  ASSERT_EQ(snapshots.size(), 2u);
  EXPECT_NE(snapshots[0].find("00000000000000000300"), std::string::npos) << snapshots[0];
}

TEST(EventLogSnapshotTest, SnapshotsMustCoverDurableRecordsAndMoveForward) {
  TestLogDir dir;
  auto log = EventLog::Open(dir.log_dir(), TestOptions());
  ASSERT_TRUE(log.ok()) << log.status();
  AppendNumbered(**log, 3);
  EXPECT_EQ((*log)->WriteSnapshot(4, "x").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*log)->WriteSnapshot(0, "x").code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE((*log)->WriteSnapshot(2, "x").ok());
  EXPECT_EQ((*log)->WriteSnapshot(2, "y").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EventLogSnapshotTest, ACorruptNewestSnapshotFallsBackToTheOlderOne) {
  TestLogDir dir;
  {
    auto log = EventLog::Open(dir.log_dir(), TestOptions());
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 20);
    ASSERT_TRUE((*log)->WriteSnapshot(10, "s10").ok());
    ASSERT_TRUE((*log)->WriteSnapshot(20, "s20").ok());
    AppendNumbered(**log, 2);
  }
  const std::string newest = SnapshotPaths(dir.log_dir()).back();
  FlipByte(newest, FileSizeOf(newest) - 1);
  EventLog::RecoveryInfo info;
  auto log = EventLog::Open(dir.log_dir(), TestOptions(), &info);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE(info.snapshot.has_value());
  EXPECT_EQ(info.snapshot->state, "s10");
  EXPECT_EQ(ReplayAll(**log, info.replay_from).size(), 12u);
  ASSERT_EQ(info.warnings.size(), 1u);
  EXPECT_NE(info.warnings[0].find("checksum mismatch"), std::string::npos) << info.warnings[0];
  EXPECT_TRUE(std::filesystem::exists(newest + ".corrupt"));
}

TEST(EventLogSnapshotTest, ACorruptSnapshotWithNothingToFallBackOnIsDataLoss) {
  TestLogDir dir;
  EventLog::Options options = TestOptions();
  options.retain_snapshots = 1;
  {
    auto log = EventLog::Open(dir.log_dir(), options);
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 300);
    ASSERT_TRUE((*log)->WriteSnapshot(300, "all").ok());
  }
  const std::string snapshot = SnapshotPaths(dir.log_dir()).back();
  FlipByte(snapshot, 30);
  const absl::Status status = EventLog::Open(dir.log_dir(), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find(snapshot), std::string::npos) << status;
  // Refusing to open changed nothing.
  EXPECT_TRUE(std::filesystem::exists(snapshot));
}

TEST(EventLogSnapshotTest, AnUnfinishedSnapshotLeftByACrashIsDeleted) {
  TestLogDir dir;
  {
    auto log = EventLog::Open(dir.log_dir(), TestOptions());
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 3);
  }
  AppendBytes(dir.log_dir() + "/snapshot-00000000000000000003.tmp", "half a snapsh");
  EventLog::RecoveryInfo info;
  auto log = EventLog::Open(dir.log_dir(), TestOptions(), &info);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_FALSE(info.snapshot.has_value());
  EXPECT_EQ(info.records, 3u);
  ASSERT_EQ(info.warnings.size(), 1u);
  EXPECT_NE(info.warnings[0].find("deleted unfinished snapshot"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.log_dir() + "/snapshot-00000000000000000003.tmp"));
}

TEST(EventLogSnapshotTest, AMissingSegmentIsDataLoss) {
  TestLogDir dir;
  {
    auto log = EventLog::Open(dir.log_dir(), TestOptions());
    ASSERT_TRUE(log.ok()) << log.status();
    AppendNumbered(**log, 300);
  }
  const std::vector<std::string> segments = SegmentPaths(dir.log_dir());
  ASSERT_GE(segments.size(), 3u);
  std::filesystem::remove(segments[1]);
  const absl::Status status = EventLog::Open(dir.log_dir(), TestOptions()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("segments do not line up"), std::string::npos) << status;
}

}  // namespace
}  // namespace gyre::durable_log
