#ifndef GYRE_LIBS_DURABLE_LOG_LOG_RECOVERY_H_
#define GYRE_LIBS_DURABLE_LOG_LOG_RECOVERY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/durable_log/segment_info.h"
#include "libs/durable_log/snapshot_store.h"

namespace gyre::durable_log {

// What RecoverLog() found and repaired in a log directory.
struct RecoveredLog {
  std::vector<SegmentInfo> segments;  // verified, in index order
  std::optional<Snapshot> snapshot;   // newest snapshot that verified
  uint64_t replay_from = 1;           // first index the snapshot does not cover
  uint64_t next_index = 1;            // index the next appended record gets
  uint64_t truncated_bytes = 0;       // torn tail cut from the last segment
  std::vector<std::string> warnings;  // what was repaired, for the operator
};

struct RecoveryPolicy {
  bool sync = true;
  // The longest write the writer issues (one group commit). A bad record in
  // the last segment within this many bytes of its end can be a write that a
  // crash cut short; farther back it is corruption of acknowledged records.
  uint64_t torn_tail_window_bytes = 1 << 20;
};

// Reads and verifies every segment and picks the newest valid snapshot, then
// repairs what a crash can leave behind: a torn tail of the last segment is
// cut off, a half-written snapshot ("*.tmp") is deleted and a corrupt
// snapshot that an older one (or the log itself) can stand in for is renamed
// to "*.corrupt". Everything else - a bad record in a sealed segment or deep
// in the last one, a missing segment, a corrupt snapshot whose records are
// gone from the log - is kDataLoss naming the file and offset, and nothing is
// changed. Must not run while the log is open for appends.
absl::StatusOr<RecoveredLog> RecoverLog(const std::string& dir, const SnapshotStore& snapshots,
                                        const RecoveryPolicy& policy);

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_LOG_RECOVERY_H_
