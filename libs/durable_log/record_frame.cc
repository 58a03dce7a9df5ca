#include "libs/durable_log/record_frame.h"

#include <zlib.h>

namespace gyre::durable_log {
namespace {

constexpr uint32_t kContinuesBit = 1u << 31;
constexpr uint32_t kLengthMask = (1u << 30) - 1;

void PutU32(uint32_t value, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

uint32_t GetU32(const char* in) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    value |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return value;
}

uint32_t FrameChecksum(const char* length_bytes, absl::string_view payload) {
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(length_bytes), 4);
  // zlib takes a uInt length; payloads are at most 1 GiB, so one call does.
  crc =
      crc32(crc, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size()));
  return static_cast<uint32_t>(crc);
}

}  // namespace

void AppendRecordFrame(absl::string_view payload, bool continues, std::string* out) {
  char header[kRecordHeaderBytes];
  PutU32(static_cast<uint32_t>(payload.size()) | (continues ? kContinuesBit : 0), header);
  PutU32(FrameChecksum(header, payload), header + 4);
  out->append(header, kRecordHeaderBytes);
  out->append(payload.data(), payload.size());
}

absl::string_view FrameStateName(FrameState state) {
  switch (state) {
    case FrameState::kValid:
      return "valid";
    case FrameState::kIncomplete:
      return "incomplete record";
    case FrameState::kBadLength:
      return "impossible record length";
    case FrameState::kChecksumMismatch:
      return "checksum mismatch";
  }
  return "unknown";
}

DecodedFrame DecodeRecordFrame(absl::string_view data, bool verify_checksum) {
  DecodedFrame frame;
  if (data.size() < kRecordHeaderBytes) return frame;  // kIncomplete
  const uint32_t word = GetU32(data.data());
  const uint32_t length = word & kLengthMask;
  if (length > kMaxRecordPayloadBytes || (word & ~(kLengthMask | kContinuesBit)) != 0) {
    frame.state = FrameState::kBadLength;
    return frame;
  }
  frame.frame_bytes = kRecordHeaderBytes + length;
  if (data.size() < frame.frame_bytes) return frame;  // kIncomplete
  // Eight zero bytes are never a frame (an empty record's checksum is not
  // zero) but the space the writer preallocates: caught even when
  // checksums are not verified.
  if (word == 0 && GetU32(data.data() + 4) == 0) {
    frame.state = FrameState::kChecksumMismatch;
    return frame;
  }
  const absl::string_view payload = data.substr(kRecordHeaderBytes, length);
  if (verify_checksum && FrameChecksum(data.data(), payload) != GetU32(data.data() + 4)) {
    frame.state = FrameState::kChecksumMismatch;
    return frame;
  }
  frame.state = FrameState::kValid;
  frame.payload = payload;
  frame.continues = (word & kContinuesBit) != 0;
  return frame;
}

}  // namespace gyre::durable_log
