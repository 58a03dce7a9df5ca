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

// Appends the spec's deterministic serialization to `bytes`.
void AppendSpec(const gyre::v1::TaskSpec& spec, std::string* bytes) {
  google::protobuf::io::StringOutputStream stream(bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  spec.SerializeToCodedStream(&coded);
}

// Two independent 64-bit lanes (different offset bases) make 128 bits.
std::string HashOf(absl::string_view bytes) {
  const uint64_t high = Fnv1a(bytes, 0xcbf29ce484222325ULL);
  const uint64_t low = Fnv1a(bytes, 0x84222325cbf29ce4ULL ^ 0x5bd1e995ULL);
  return absl::StrFormat("%016x%016x", high, low);
}

}  // namespace

std::string TaskIdentity(const gyre::v1::TaskSpec& spec,
                         const std::map<std::string, std::string>& context) {
  std::string bytes;
  AppendSpec(spec, &bytes);
  // Length-prefix every piece so ("ab","c") and ("a","bc") differ.
  for (const auto& [key, value] : context) {
    absl::StrAppendFormat(&bytes, "|%d:%s=%d:%s", key.size(), key, value.size(), value);
  }
  return HashOf(bytes);
}

std::string PredictionIdentity(absl::string_view workflow, const gyre::v1::TaskSpec& spec,
                               absl::Span<const std::pair<std::string, double>> context_values) {
  // Prefixed so that it can never equal a global task's TaskIdentity.
  std::string bytes = absl::StrFormat("predict|%d:%s|", workflow.size(), workflow);
  AppendSpec(spec, &bytes);
  for (const auto& [key, value] : context_values) {
    // %a: the exact double, so equal values hash equal and no two differ.
    absl::StrAppendFormat(&bytes, "|%d:%s=%a", key.size(), key, value);
  }
  return HashOf(bytes);
}

}  // namespace gyre::orchestrator
