#include "libs/durable_log/segment_reader.h"

namespace gyre::durable_log {

bool SegmentReader::Next(absl::string_view* payload) {
  if (offset_ == data_.size()) {
    state_ = FrameState::kValid;
    return false;
  }
  const DecodedFrame frame = DecodeRecordFrame(data_.substr(offset_), verify_checksum_);
  state_ = frame.state;
  if (frame.state != FrameState::kValid) {
    bad_frame_bytes_ = frame.frame_bytes;
    return false;
  }
  *payload = frame.payload;
  offset_ += frame.frame_bytes;
  ++records_;
  continues_ = frame.continues;
  if (!continues_) {
    batch_end_offset_ = offset_;
    batch_end_records_ = records_;
  }
  return true;
}

}  // namespace gyre::durable_log
