#ifndef GYRE_LIBS_COMMON_JSON_BOUNDS_H_
#define GYRE_LIBS_COMMON_JSON_BOUNDS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre {

// Checks, in one linear pass and without parsing, that `json` is at most
// `max_bytes` long and nests arrays and objects at most `max_depth` deep
// (brackets inside strings do not count). Run it before handing JSON from a
// task or a client to protobuf's JSON parser, whose cost grows with the
// square of the nesting depth. InvalidArgument starts with `what` and says
// which bound was passed; malformed JSON within the bounds passes, for the
// parser to describe.
absl::Status CheckJsonBounds(absl::string_view json, size_t max_bytes, int max_depth,
                             absl::string_view what);

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_JSON_BOUNDS_H_
