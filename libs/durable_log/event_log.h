#ifndef GYRE_LIBS_DURABLE_LOG_EVENT_LOG_H_
#define GYRE_LIBS_DURABLE_LOG_EVENT_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace gyre::durable_log {

// An append-only log of opaque records in one file, with group commit: any
// number of threads append; one writer thread writes everything queued with
// a single write(2) and a single fdatasync(2), then completes all of those
// appends. An append is acknowledged only once it is durable, so a record
// whose completion reported OK survives SIGKILL and power loss.
//
// Framing: [u32 payload length][u32 CRC-32 of payload][payload], little
// endian. On open, a torn or corrupt tail (a crash mid-write) is cut off at
// the last whole record; the amount cut is reported.
//
// Fail-stop: after a write or sync error every later append fails, so the
// log never has a hole. Thread-safe.
class EventLog {
 public:
  struct Options {
    bool fsync = true;  // fdatasync each batch; off only for tests/benchmarks
  };

  // What Open() found.
  struct RecoveryInfo {
    uint64_t records = 0;
    uint64_t truncated_bytes = 0;  // torn tail removed
  };

  using Completion = std::function<void(absl::Status)>;

  // Opens (creating if needed) the log at `path` and replays every record
  // through `apply` in order before returning; `apply` errors abort the open.
  static absl::StatusOr<std::unique_ptr<EventLog>> Open(
      const std::string& path, Options options,
      const std::function<absl::Status(absl::string_view record)>& apply,
      RecoveryInfo* info = nullptr);

  // Completes pending appends (or fails them if the log failed) and stops.
  ~EventLog();

  // Queues records; `done` runs on the writer thread once they are durable
  // (or with the error that prevented it). Never blocks on I/O.
  void AppendAsync(std::vector<std::string> records, Completion done);
  // Appends and waits until durable.
  absl::Status Append(std::vector<std::string> records);

  // Counters for tests and benchmarks.
  uint64_t syncs() const;
  uint64_t appended() const;

 private:
  struct Pending {
    std::vector<std::string> records;
    Completion done;
  };

  EventLog(int fd, std::string path, Options options);
  void WriterLoop();

  const int fd_;
  const std::string path_;
  const Options options_;
  mutable absl::Mutex mutex_;
  std::vector<Pending> queue_ ABSL_GUARDED_BY(mutex_);
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  uint64_t syncs_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t appended_ ABSL_GUARDED_BY(mutex_) = 0;
  std::thread writer_;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_EVENT_LOG_H_
