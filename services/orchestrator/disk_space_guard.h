#ifndef GYRE_SERVICES_ORCHESTRATOR_DISK_SPACE_GUARD_H_
#define GYRE_SERVICES_ORCHESTRATOR_DISK_SPACE_GUARD_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace gyre::orchestrator {

// Keeps a full data directory from stopping the orchestrator: below
// `min_free_bytes` free, new work (workflows, executions) is refused with
// RESOURCE_EXHAUSTED while reads, results and running executions go on
// writing into the reserve; once space is freed, new work is accepted
// again. Without it, the store's first failed append (ENOSPC) would be
// fatal for every execution (fail-stop). Checked with statvfs at most
// every 100 ms, off the engine lock. Thread-safe.
class DiskSpaceGuard {
 public:
  DiskSpaceGuard(std::string dir, uint64_t min_free_bytes)
      : dir_(std::move(dir)), min_free_bytes_(min_free_bytes) {}

  // OK, or ResourceExhausted naming the directory, what is free and the
  // limit. A failed statvfs lets the work through (the store reports a real
  // write failure itself).
  absl::Status CheckRoomForNewWork();

 private:
  const std::string dir_;
  const uint64_t min_free_bytes_;
  std::atomic<int64_t> next_check_ns_{0};
  std::atomic<uint64_t> free_bytes_{UINT64_MAX};
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_DISK_SPACE_GUARD_H_
