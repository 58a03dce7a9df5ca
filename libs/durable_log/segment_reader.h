#ifndef GYRE_LIBS_DURABLE_LOG_SEGMENT_READER_H_
#define GYRE_LIBS_DURABLE_LOG_SEGMENT_READER_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "libs/durable_log/record_frame.h"

namespace gyre::durable_log {

// Walks the record frames of one segment's bytes in order, stopping at the
// end of the data or at the first frame that does not decode; the caller
// decides whether that frame is a torn tail or corruption. The payloads are
// views into the bytes given. Not thread-safe (one reader per instance).
class SegmentReader {
 public:
  // With `verify_checksum` false, frames are only delimited (for skipping
  // records known to be good).
  explicit SegmentReader(absl::string_view data, bool verify_checksum = true)
      : data_(data), verify_checksum_(verify_checksum) {}

  // From the next record on, verify checksums or only delimit frames.
  void set_verify_checksum(bool verify) { verify_checksum_ = verify; }

  // Sets `*payload` to the next record and returns true, or returns false at
  // the end of the data or at a bad frame (see state()).
  bool Next(absl::string_view* payload);

  // Whether the record Next() returned last is followed by more of its batch.
  bool continues() const { return continues_; }
  // Offset and ordinal just past the last record that ended a batch: where a
  // log whose last batch is cut short has to be truncated.
  size_t batch_end_offset() const { return batch_end_offset_; }
  uint64_t batch_end_records() const { return batch_end_records_; }

  // Offset of the next frame; after Next() returned false, of the bad frame
  // (or the end of the data).
  size_t offset() const { return offset_; }
  // Whether Next() stopped at a clean end of the data.
  bool at_end() const { return offset_ == data_.size(); }
  // Why Next() last returned false (kValid at a clean end).
  FrameState state() const { return state_; }
  // The frame length read at offset(), when it could be read (0 otherwise).
  size_t bad_frame_bytes() const { return bad_frame_bytes_; }

 private:
  absl::string_view data_;
  bool verify_checksum_;
  size_t offset_ = 0;
  FrameState state_ = FrameState::kValid;
  size_t bad_frame_bytes_ = 0;
  bool continues_ = false;
  uint64_t records_ = 0;
  size_t batch_end_offset_ = 0;
  uint64_t batch_end_records_ = 0;
};

}  // namespace gyre::durable_log

#endif  // GYRE_LIBS_DURABLE_LOG_SEGMENT_READER_H_
