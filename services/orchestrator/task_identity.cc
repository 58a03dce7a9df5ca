#include "services/orchestrator/task_identity.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/str_format.h"

namespace gyre::orchestrator {
namespace {

// FNV-1a over `data`, continuing from `hash`.
uint64_t Fnv1a(absl::string_view data, uint64_t hash) {
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

std::string TaskIdentity(const gyre::v1::TaskSpec& spec,
                         const std::map<std::string, std::string>& context) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  // Length-prefix every piece so ("ab","c") and ("a","bc") differ.
  for (const auto& [key, value] : context) {
    absl::StrAppendFormat(&bytes, "|%d:%s=%d:%s", key.size(), key, value.size(), value);
  }
  // Two independent 64-bit lanes (different offset bases) make 128 bits.
  const uint64_t high = Fnv1a(bytes, 0xcbf29ce484222325ULL);
  const uint64_t low = Fnv1a(bytes, 0x84222325cbf29ce4ULL ^ 0x5bd1e995ULL);
  return absl::StrFormat("%016x%016x", high, low);
}

}  // namespace gyre::orchestrator
