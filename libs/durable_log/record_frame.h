#ifndef GYRE_LIBS_DURABLE_LOG_RECORD_FRAME_H_
#define GYRE_LIBS_DURABLE_LOG_RECORD_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

// How one record is laid out in a segment file:
//
//   [u32 length word, little endian][u32 CRC-32][payload bytes]
//
// The length word holds the payload length in its low 30 bits and, in bit 31,
// "continues": set on every record of an AppendBatch but the last, so that
// recovery can drop a batch that a crash cut in two (batches are atomic).
// The CRC (zlib's CRC-32) covers the four length bytes and then the payload,
// so a frame of zeros (a file extended by a crash before its data reached the
// disk) never checks out as an empty record. A record's index is not stored:
// it is the segment's first index (in the file name) plus the frame's ordinal.
// Stateless and thread-safe.
namespace gyre::durable_log {

inline constexpr size_t kRecordHeaderBytes = 8;
// The largest payload the format allows; EventLog::Options may set less.
inline constexpr uint32_t kMaxRecordPayloadBytes = (1u << 30) - 1;

// Appends the frame of `payload` to `out`; `continues` marks a record that is
// not the last of its batch.
void AppendRecordFrame(absl::string_view payload, bool continues, std::string* out);

enum class FrameState {
  kValid,
  kIncomplete,        // the header or the payload runs past the end of the data
  kBadLength,         // the length word is impossible (> kMaxRecordPayloadBytes)
  kChecksumMismatch,  // a whole frame whose CRC does not match
};

absl::string_view FrameStateName(FrameState state);

struct DecodedFrame {
  FrameState state = FrameState::kIncomplete;
  absl::string_view payload;  // valid only when state == kValid
  bool continues = false;     // not the last record of its batch
  size_t frame_bytes = 0;     // header + payload, when the length was readable
};

// Decodes the frame at the start of `data`. With `verify_checksum` false the
// CRC is not computed (to skip records cheaply that were verified before).
DecodedFrame DecodeRecordFrame(absl::string_view data, bool verify_checksum = true);

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_RECORD_FRAME_H_
