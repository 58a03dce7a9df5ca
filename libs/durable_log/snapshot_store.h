#ifndef GYRE_LIBS_DURABLE_LOG_SNAPSHOT_STORE_H_
#define GYRE_LIBS_DURABLE_LOG_SNAPSHOT_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::durable_log {

// The caller's state after applying every record up to and including
// `index`, as opaque bytes.
struct Snapshot {
  uint64_t index = 0;
  std::string state;
};

// Snapshot files in a log directory, "snapshot-<index, 20 digits>":
//
//   ["GYRESNP1"][u64 index][u64 state length][u32 CRC-32 of all before][state]
//
// (integers little endian). A snapshot is written to "<name>.tmp", synced,
// renamed into place and the directory synced, so a crash leaves either the
// whole snapshot or none. A snapshot found corrupt is renamed to
// "<name>.corrupt" (kept for inspection, ignored from then on).
//
// Stateless apart from the directory name; its methods may be called from
// any thread, but the owner (EventLog) serializes those that change files.
class SnapshotStore {
 public:
  SnapshotStore(std::string dir, bool sync) : dir_(std::move(dir)), sync_(sync) {}

  // Writes the snapshot for `index` atomically.
  absl::Status Write(uint64_t index, absl::string_view state) const;

  // Reads and verifies one snapshot; kDataLoss names the file and the fault.
  absl::StatusOr<Snapshot> Load(uint64_t index) const;

  // Indexes of the snapshot files present, ascending.
  absl::StatusOr<std::vector<uint64_t>> List() const;

  // Deletes a snapshot file (the directory is not synced: callers batch).
  absl::Status Remove(uint64_t index) const;

  // Renames a corrupt snapshot to "<name>.corrupt" and syncs the directory.
  absl::Status Quarantine(uint64_t index) const;

  // Deletes "*.tmp" files left by a crash mid-write; names them in `removed`.
  absl::Status RemoveTemporaryFiles(std::vector<std::string>* removed) const;

  std::string PathFor(uint64_t index) const;

 private:
  const std::string dir_;
  const bool sync_;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_SNAPSHOT_STORE_H_
