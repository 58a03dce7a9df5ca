#include "cmd/gyre/terminal_text.h"

#include "absl/strings/str_format.h"

namespace gyre::cli {

std::string TerminalSafe(absl::string_view text) {
  std::string safe;
  safe.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '\n') {
      safe += "\\n";
    } else if (byte == '\t') {
      safe += "\\t";
    } else if (byte == '\\') {
      safe += "\\\\";  // so that an escape shown is never one the text spelled
    } else if (byte < 0x20 || byte == 0x7f || (byte >= 0x80 && byte <= 0x9f)) {
      // Raw C1 bytes are read as controls by terminals not in UTF-8 mode.
      absl::StrAppendFormat(&safe, "\\x%02x", byte);
    } else if (byte == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      // U+0080..U+009F, the C1 controls in UTF-8 (U+009B is a CSI).
      absl::StrAppendFormat(&safe, "\\u%04x", static_cast<unsigned char>(text[++i]));
    } else {
      safe += text[i];
    }
  }
  return safe;
}

}  // namespace gyre::cli
