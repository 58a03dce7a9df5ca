#ifndef GYRE_LIBS_DURABLE_LOG_TEST_LOG_DIR_H_
#define GYRE_LIBS_DURABLE_LOG_TEST_LOG_DIR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "libs/durable_log/event_log.h"

// Test helpers for the durable log: a scratch directory and byte-level
// surgery on its files. Not thread-safe; tests only.
namespace gyre::durable_log::testing {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TestLogDir {
 public:
  TestLogDir();
  ~TestLogDir();
  TestLogDir(const TestLogDir&) = delete;
  TestLogDir& operator=(const TestLogDir&) = delete;

  const std::string& path() const { return path_; }
  // The log's directory inside it (not created: EventLog::Open does that).
  std::string log_dir() const { return path_ + "/log"; }

 private:
  std::string path_;
};

// Every record from `from_index` on, as (index, payload); fails the test on
// a replay error.
std::vector<std::pair<uint64_t, std::string>> ReplayAll(const EventLog& log, uint64_t from_index);

// Segment file paths of `dir`, in index order.
std::vector<std::string> SegmentPaths(const std::string& dir);
// Snapshot file paths of `dir` ("snapshot-<index>", no suffix), in order.
std::vector<std::string> SnapshotPaths(const std::string& dir);

uint64_t FileSizeOf(const std::string& path);
void FlipByte(const std::string& path, uint64_t offset);
void TruncateFile(const std::string& path, uint64_t size);
void AppendBytes(const std::string& path, const std::string& bytes);
// Overwrites bytes at `offset` (inside the file).
void WriteBytesAt(const std::string& path, uint64_t offset, const std::string& bytes);

// Copies the log directory of `dir` (without its lock) to `dir`/`name`:
// what a crash leaves behind when taken while the log is open.
std::string CrashImage(const TestLogDir& dir, const std::string& name);

// Options for a fast test log: fsync off unless asked, small segments.
EventLog::Options TestOptions(bool fsync = false);

}  // namespace gyre::durable_log::testing

#endif  // GYRE_LIBS_DURABLE_LOG_TEST_LOG_DIR_H_
