#include "libs/durable_log/test_log_dir.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gyre::durable_log::testing {
namespace {

std::vector<std::string> PathsWithPrefix(const std::string& dir, const std::string& prefix,
                                         bool plain_only) {
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, prefix)) continue;
    if (plain_only && name.find('.') != std::string::npos) continue;
    paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace

TestLogDir::TestLogDir() {
  char pattern[] = "/tmp/gyre_durable_log_XXXXXX";
  const char* made = mkdtemp(pattern);
  EXPECT_NE(made, nullptr) << "mkdtemp failed";
  path_ = made == nullptr ? "/tmp/gyre_durable_log_fallback" : made;
}

TestLogDir::~TestLogDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::vector<std::pair<uint64_t, std::string>> ReplayAll(const EventLog& log, uint64_t from_index) {
  std::vector<std::pair<uint64_t, std::string>> records;
  const absl::Status status = log.Replay(from_index, [&](uint64_t index, absl::string_view record) {
    records.emplace_back(index, std::string(record));
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;
  return records;
}

std::vector<std::string> SegmentPaths(const std::string& dir) {
  return PathsWithPrefix(dir, "segment-", false);
}

std::vector<std::string> SnapshotPaths(const std::string& dir) {
  return PathsWithPrefix(dir, "snapshot-", true);
}

uint64_t FileSizeOf(const std::string& path) { return std::filesystem::file_size(path); }

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5A);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&byte, 1);
}

void TruncateFile(const std::string& path, uint64_t size) {
  std::filesystem::resize_file(path, size);
}

void AppendBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::app | std::ios::binary);
  file << bytes;
}

void WriteBytesAt(const std::string& path, uint64_t offset, const std::string& bytes) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string CrashImage(const TestLogDir& dir, const std::string& name) {
  std::string copy = dir.path() + "/" + name;
  std::filesystem::copy(dir.log_dir(), copy);
  std::filesystem::remove(copy + "/LOCK");
  return copy;
}

EventLog::Options TestOptions(bool fsync) {
  EventLog::Options options;
  options.fsync = fsync;
  options.segment_bytes = 64 << 10;
  options.max_batch_bytes = 16 << 10;
  return options;
}

}  // namespace gyre::durable_log::testing
