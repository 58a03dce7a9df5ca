#ifndef GYRE_LIBS_WORKFLOW_CONTEXT_KEYS_H_
#define GYRE_LIBS_WORKFLOW_CONTEXT_KEYS_H_

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gyre/v1/workflow.pb.h"
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

// The context names a workflow declares: the keys of its `context:`
// defaults and every task's `outputs` (for an evaluator, the keys its
// decision may set). Context reaches a task's environment only under these
// names, and only these may enter an execution's context from a start
// request, a task's $GYRE_OUTPUT or a decision — unless the workflow sets
// context_passthrough, the old open rule (any key ValidateContextKey
// accepts), which trusts every client and task of the workflow. Whatever
// the rule, every context value stays usable in ${VAR} expansion of a
// task's command and env: there the author names it. Immutable once built.
class DeclaredContext {
 public:
  explicit DeclaredContext(const gyre::v1::WorkflowDefinition& definition);
  // The old open rule whatever the definition says (an execution started
  // before context had to be declared keeps the rules it began with).
  static std::shared_ptr<const DeclaredContext> Open();

  bool passthrough() const { return passthrough_; }
  // Whether `key` may be in the context and reach tasks' environments.
  bool Declares(absl::string_view key) const { return passthrough_ || names_.contains(key); }

 private:
  bool passthrough_ = false;
  absl::flat_hash_set<std::string> names_;
};

// InvalidArgument for the first key of a start request's `context` that
// `declared` (the started workflow, named `workflow`) does not declare and,
// for a child execution, `parent_declared` (its parent's workflow, or null)
// does not either, e.g.
//   context key FOO is not declared by workflow etl; declare it under
//   `context:` (or as a task's `outputs:`)
template <typename Map>
absl::Status CheckStartContextDeclared(const Map& context, const DeclaredContext& declared,
                                       absl::string_view workflow,
                                       const DeclaredContext* parent_declared = nullptr);

// InvalidArgument for the first key of what task `spec` passes downstream
// (`what`: "$GYRE_OUTPUT" or "evaluator output") that is not among its
// `outputs`; nothing when the workflow sets context_passthrough.
template <typename Map>
absl::Status CheckOutputsDeclared(const gyre::v1::TaskSpec& spec, const Map& outputs,
                                  bool passthrough, absl::string_view what);

// --- Implementation details ---

absl::Status UndeclaredStartKey(absl::string_view key, absl::string_view workflow);
absl::Status UndeclaredOutputKey(const gyre::v1::TaskSpec& spec, absl::string_view key,
                                 absl::string_view what);

template <typename Map>
absl::Status CheckStartContextDeclared(const Map& context, const DeclaredContext& declared,
                                       absl::string_view workflow,
                                       const DeclaredContext* parent_declared) {
  for (const auto& [key, value] : context) {
    if (declared.Declares(key)) continue;
    if (parent_declared != nullptr && parent_declared->Declares(key)) continue;
    return UndeclaredStartKey(key, workflow);
  }
  return absl::OkStatus();
}

template <typename Map>
absl::Status CheckOutputsDeclared(const gyre::v1::TaskSpec& spec, const Map& outputs,
                                  bool passthrough, absl::string_view what) {
  if (passthrough) return absl::OkStatus();
  for (const auto& [key, value] : outputs) {
    if (std::find(spec.outputs().begin(), spec.outputs().end(), key) == spec.outputs().end()) {
      return UndeclaredOutputKey(spec, key, what);
    }
  }
  return absl::OkStatus();
}

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
