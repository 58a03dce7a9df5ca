#include "libs/durable_log/segment_info.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace gyre::durable_log {
namespace {

constexpr absl::string_view kPrefix = "segment-";
constexpr absl::string_view kSuffix = ".log";
constexpr size_t kDigits = 20;

}  // namespace

std::string SegmentFileName(uint64_t first_index) {
  return absl::StrFormat("%s%020d%s", kPrefix, first_index, kSuffix);
}

std::optional<uint64_t> ParseSegmentFileName(absl::string_view name) {
  if (name.size() != kPrefix.size() + kDigits + kSuffix.size() ||
      !absl::StartsWith(name, kPrefix) || !absl::EndsWith(name, kSuffix)) {
    return std::nullopt;
  }
  const absl::string_view digits = name.substr(kPrefix.size(), kDigits);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  uint64_t index = 0;
  if (!absl::SimpleAtoi(digits, &index) || index == 0) return std::nullopt;
  return index;
}

}  // namespace gyre::durable_log
