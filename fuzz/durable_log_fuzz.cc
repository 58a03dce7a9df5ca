// The durable log's recovery on arbitrary bytes on disk: the input is
// written as a segment file or a snapshot file (its first byte chooses)
// of an empty log directory, which is then opened and replayed. Open must
// return a log or an error (kDataLoss naming the file and offset), never
// crash, and a log it opens must replay.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "libs/durable_log/event_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    char name[] = "/tmp/gyre_log_fuzz_XXXXXX";
    if (mkdtemp(name) == nullptr) abort();
    return std::string(name);
  }();
  if (size == 0) return 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::filesystem::remove_all(entry.path(), error);
  }
  // Names as the log writes them (segment_info.cc, snapshot_store.cc).
  const std::string file =
      (data[0] & 1) != 0 ? "snapshot-00000000000000000001" : "segment-00000000000000000001.log";
  std::ofstream(dir + "/" + file, std::ios::binary)
      .write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  gyre::durable_log::EventLog::Options options;
  options.fsync = false;
  options.preallocate_bytes = 0;
  gyre::durable_log::EventLog::RecoveryInfo recovery;
  auto log = gyre::durable_log::EventLog::Open(dir, options, &recovery);
  if (!log.ok()) return 0;
  uint64_t records = 0;
  const absl::Status replayed =
      (*log)->Replay(recovery.replay_from, [&records](uint64_t, absl::string_view) {
        ++records;
        return absl::OkStatus();
      });
  // What Open verified must replay.
  if (!replayed.ok() && recovery.records > 0) abort();
  return 0;
}
