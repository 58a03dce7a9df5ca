#include "cmd/gyre/terminal_text.h"

#include "absl/strings/str_format.h"

namespace gyre::cli {

namespace {

// The length of the valid UTF-8 sequence at the start of `text` (whose first
// byte is >= 0x80), or 0 when it is none.
size_t Utf8SequenceLength(absl::string_view text) {
  const auto lead = static_cast<unsigned char>(text[0]);
  size_t length = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[i]);
    if (next < 0x80 || next > 0xbf) return 0;
  }
  return length;
}

}  // namespace

std::string TerminalSafe(absl::string_view text) {
  std::string safe;
  safe.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      if (byte == '\n') {
        safe += "\\n";
      } else if (byte == '\t') {
        safe += "\\t";
      } else if (byte < 0x20 || byte == 0x7f) {
        absl::StrAppendFormat(&safe, "\\x%02x", byte);
      } else {
        safe += text[i];
      }
      ++i;
      continue;
    }
    const size_t length = Utf8SequenceLength(text.substr(i));
    if (length == 0) {
      // Not UTF-8: a raw byte, which a terminal not in UTF-8 mode may read
      // as a C1 control (0x9b is a CSI).
      absl::StrAppendFormat(&safe, "\\x%02x", byte);
      ++i;
    } else if (length == 2 && byte == 0xc2 && static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      // U+0080..U+009F: the C1 controls, encoded.
      absl::StrAppendFormat(&safe, "\\u%04x", static_cast<unsigned char>(text[i + 1]));
      i += 2;
    } else {
      safe.append(text.data() + i, length);
      i += length;
    }
  }
  return safe;
}

}  // namespace gyre::cli
