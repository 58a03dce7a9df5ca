#ifndef GYRE_LIBS_COMMON_VARIABLE_EXPANSION_H_
#define GYRE_LIBS_COMMON_VARIABLE_EXPANSION_H_

#include <functional>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace gyre {

// Looks a variable up by name; nullopt when it is not defined.
using VariableLookup = std::function<std::optional<std::string>(absl::string_view name)>;

// Expands `${NAME}` references in `text` using `lookup`. `$${` is an escape
// for a literal `${`. A lone `$` not followed by `{` is kept as is.
// Errors (InvalidArgument) name the variable: undefined variable, empty or
// malformed name, unterminated reference. Names are [A-Za-z_][A-Za-z0-9_.-]*.
absl::StatusOr<std::string> ExpandVariables(absl::string_view text, const VariableLookup& lookup);

// A lookup over the process environment (getenv).
VariableLookup EnvironmentLookup();

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_VARIABLE_EXPANSION_H_
