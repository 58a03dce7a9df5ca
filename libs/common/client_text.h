#ifndef GYRE_LIBS_COMMON_CLIENT_TEXT_H_
#define GYRE_LIBS_COMMON_CLIENT_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace gyre {

// Bytes of a client's string that a status message quotes. gRPC carries a
// status message in a response header, and clients refuse headers over a
// few KiB: quoting a 100 KB name whole turns NOT_FOUND into a transport error.
inline constexpr size_t kMaxQuotedBytes = 128;

// Quotes a string a client (or a task) chose, for an error message:
// "name" with control characters, '"' and '\' escaped (\n, \t, \xNN), and at
// most kMaxQuotedBytes bytes of it, cut on a UTF-8 character boundary; a cut
// string ends `..."` followed by ` (N bytes)`.
std::string QuoteClientText(absl::string_view text);

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_CLIENT_TEXT_H_
