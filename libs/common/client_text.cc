#include "libs/common/client_text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gyre {

std::string QuoteClientText(absl::string_view text) {
  absl::string_view shown = text.substr(0, kMaxQuotedBytes);
  if (shown.size() < text.size()) {
    // Back up over continuation bytes (10xxxxxx) so a character is never
    // split: the rest of the message stays valid UTF-8.
    size_t end = shown.size();
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    shown = text.substr(0, end);
  }
  std::string quoted = "\"";
  quoted.reserve(shown.size() + 24);
  for (const char c : shown) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\t':
        quoted += "\\t";
        break;
      case '\r':
        quoted += "\\r";
        break;
      default:
        // C0 controls and DEL: a terminal would act on them.
        if (byte < 0x20 || byte == 0x7F) {
          absl::StrAppendFormat(&quoted, "\\x%02x", byte);
        } else {
          quoted += c;
        }
    }
  }
  if (shown.size() < text.size()) {
    absl::StrAppend(&quoted, "...\" (", text.size(), " bytes)");
  } else {
    quoted += '"';
  }
  return quoted;
}

}  // namespace gyre
