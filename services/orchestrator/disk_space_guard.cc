#include "services/orchestrator/disk_space_guard.h"

#include <sys/statvfs.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gyre::orchestrator {

absl::Status DiskSpaceGuard::CheckRoomForNewWork() {
  if (min_free_bytes_ == 0) return absl::OkStatus();
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t due = next_check_ns_.load(std::memory_order_relaxed);
  // One caller refreshes; the others use the last figure.
  if (now >= due && next_check_ns_.compare_exchange_strong(due, now + 100'000'000)) {
    struct statvfs info {};
    free_bytes_.store(statvfs(dir_.c_str(), &info) == 0
                          ? static_cast<uint64_t>(info.f_bavail) * info.f_frsize
                          : UINT64_MAX,
                      std::memory_order_relaxed);
  }
  const uint64_t free_bytes = free_bytes_.load(std::memory_order_relaxed);
  if (free_bytes >= min_free_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "data_dir ", dir_, " is nearly full: ", free_bytes,
      " bytes free, below min_free_disk_bytes (", min_free_bytes_,
      "); new workflows and executions are refused until space is freed (running executions "
      "continue, reads are served)"));
}

}  // namespace gyre::orchestrator
