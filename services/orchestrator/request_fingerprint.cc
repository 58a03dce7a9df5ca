#include "services/orchestrator/request_fingerprint.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>

namespace gyre::orchestrator {

namespace {

// Feeds what protobuf serializes through a 64-bit FNV-1a hash, a buffer at
// a time, so that fingerprinting a large request allocates nothing. FNV-1a
// is stable across processes and builds, as a recorded fingerprint must be.
class HashingOutputStream : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  bool Next(void** data, int* size) override {
    Absorb(handed_);
    *data = buffer_;
    *size = sizeof(buffer_);
    handed_ = sizeof(buffer_);
    return true;
  }
  void BackUp(int count) override { handed_ -= count; }
  int64_t ByteCount() const override { return bytes_ + handed_; }
  uint64_t Finish() {
    Absorb(handed_);
    handed_ = 0;
    return hash_;
  }

 private:
  void Absorb(int size) {
    for (int i = 0; i < size; ++i) {
      hash_ = (hash_ ^ static_cast<unsigned char>(buffer_[i])) * 0x100000001b3ULL;
    }
    bytes_ += size;
  }

  char buffer_[8192];
  int handed_ = 0;
  int64_t bytes_ = 0;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace

uint64_t RequestFingerprint(const google::protobuf::Message& request) {
  HashingOutputStream hashing;
  {
    google::protobuf::io::CodedOutputStream coded(&hashing);
    coded.SetSerializationDeterministic(true);
    request.SerializePartialToCodedStream(&coded);
  }
  const uint64_t fingerprint = hashing.Finish();
  return fingerprint == 0 ? 1 : fingerprint;
}

}  // namespace gyre::orchestrator
