#ifndef GYRE_LIBS_WORKFLOW_CONTEXT_KEYS_H_
#define GYRE_LIBS_WORKFLOW_CONTEXT_KEYS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "libs/common/limits.h"

namespace gyre::workflow {

// Context values reach tasks as environment variables, and a context comes
// from whoever starts an execution, from what tasks write to $GYRE_OUTPUT
// and from evaluators' decisions (perhaps a language model's) — not only
// from the workflow's author. So a context key must be a plain environment
// variable name that neither Gyre sets itself (GYRE_*) nor changes what code
// a task's programs load or run: the dynamic loader's LD_* and the like,
// shell start-up and parsing variables, interpreters' module paths and
// options, PATH. A workflow that needs one of those sets it in a task's
// `env`, which may expand ${VAR} from the context: its author opts in.
// The sizes are Gyre's documented limits (libs/common/limits.h).
inline constexpr size_t kMaxContextEntries = limits::kMaxContextEntries;
inline constexpr size_t kMaxContextValueBytes = limits::kMaxContextValueBytes;
inline constexpr size_t kMaxContextTotalBytes = limits::kMaxContextTotalBytes;

// InvalidArgument saying what is wrong with `key` as a context key, e.g.
//   context key "LD_PRELOAD" is refused: it changes what code programs load
//   or run; set it in a task's env if the workflow needs it
absl::Status ValidateContextKey(absl::string_view key);

// ValidateContextKey, and a value within kMaxContextValueBytes.
absl::Status ValidateContextEntry(absl::string_view key, absl::string_view value);

// Every entry of a map of string to string (a proto map or a std::map), at
// most kMaxContextEntries of them and kMaxContextTotalBytes in all.
template <typename Map>
absl::Status ValidateContextMap(const Map& context);

// --- Implementation details ---

absl::Status TooManyContextEntries(size_t entries);
absl::Status ContextTooLarge(size_t bytes);

// The bytes of a context's keys and values together (what its total limit
// counts).
template <typename Map>
size_t ContextBytes(const Map& context) {
  size_t bytes = 0;
  for (const auto& [key, value] : context) bytes += key.size() + value.size();
  return bytes;
}

template <typename Map>
absl::Status ValidateContextMap(const Map& context) {
  if (context.size() > kMaxContextEntries) return TooManyContextEntries(context.size());
  size_t bytes = 0;
  for (const auto& [key, value] : context) {
    if (absl::Status status = ValidateContextEntry(key, value); !status.ok()) return status;
    bytes += key.size() + value.size();
  }
  if (bytes > kMaxContextTotalBytes) return ContextTooLarge(bytes);
  return absl::OkStatus();
}

}  // namespace gyre::workflow

#endif  // GYRE_LIBS_WORKFLOW_CONTEXT_KEYS_H_
