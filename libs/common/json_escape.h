#ifndef GYRE_LIBS_COMMON_JSON_ESCAPE_H_
#define GYRE_LIBS_COMMON_JSON_ESCAPE_H_

#include <string>
#include "absl/strings/string_view.h"

namespace gyre {

// Appends `value` to `out` as a JSON string literal, quotes included.
// Control characters and invalid UTF-8 bytes are escaped, so any input
// yields valid JSON (log lines must never break a log shipper's parser).
void AppendJsonString(absl::string_view value, std::string* out);

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_JSON_ESCAPE_H_
