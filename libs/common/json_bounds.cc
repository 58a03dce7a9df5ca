#include "libs/common/json_bounds.h"

#include "absl/strings/str_cat.h"

namespace gyre {

absl::Status CheckJsonBounds(absl::string_view json, size_t max_bytes, int max_depth,
                             absl::string_view what) {
  if (json.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", json.size(), " bytes; at most ", max_bytes, " are accepted"));
  }
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, '"' included, does not end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": JSON nested deeper than ",
                                                         max_depth, " levels (at byte ", i, ")"));
        }
        break;
      case ']':
      case '}':
        --depth;  // unbalanced input is the parser's to report
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace gyre
