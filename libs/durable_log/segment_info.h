#ifndef GYRE_LIBS_DURABLE_LOG_SEGMENT_INFO_H_
#define GYRE_LIBS_DURABLE_LOG_SEGMENT_INFO_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace gyre::durable_log {

// One segment file of the log: "segment-<first index, 20 digits>.log" holding
// the records first_index .. first_index + records - 1 in its first `bytes`
// bytes. A plain value; whoever holds it guards it.
struct SegmentInfo {
  uint64_t first_index = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  std::string path;

  // One past the last record's index.
  uint64_t end_index() const { return first_index + records; }
};

// "segment-00000000000000000001.log" for first index 1. Zero-padded so that
// names sort in index order.
std::string SegmentFileName(uint64_t first_index);

// The first index named by a segment file name, or nullopt for other files.
std::optional<uint64_t> ParseSegmentFileName(absl::string_view name);

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_SEGMENT_INFO_H_
