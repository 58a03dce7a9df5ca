#include "libs/workflow/context_keys.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace gyre::workflow {
namespace {

// Names (exact) and prefixes that make a program load or run other code,
// or find its commands elsewhere.
constexpr absl::string_view kRefusedNames[] = {
    // where commands are found
    "PATH",
    // the C library's loadable modules and tunables
    "GCONV_PATH", "GLIBC_TUNABLES",
    // shells: start-up files, options, prompts run with -x, word splitting
    "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS",
    // interpreters' module paths and options
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYLIB",
    "RUBYOPT", "NODE_OPTIONS", "NODE_PATH", "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS"};
constexpr absl::string_view kRefusedPrefixes[] = {"LD_"};  // the dynamic loader

bool IsEnvironmentName(absl::string_view key) {
  return !key.empty() && key.size() <= 128 && (absl::ascii_isalpha(key[0]) || key[0] == '_') &&
         std::all_of(key.begin(), key.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

bool ChangesWhatRuns(absl::string_view key) {
  return std::find(std::begin(kRefusedNames), std::end(kRefusedNames), key) !=
             std::end(kRefusedNames) ||
         std::any_of(std::begin(kRefusedPrefixes), std::end(kRefusedPrefixes),
                     [key](absl::string_view prefix) { return absl::StartsWith(key, prefix); });
}

}  // namespace

absl::Status ValidateContextKey(absl::string_view key) {
  if (!IsEnvironmentName(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("context key \"", key,
                     "\" is not a valid environment variable name "
                     "([A-Za-z_][A-Za-z0-9_]*, up to 128 characters)"));
  }
  if (absl::StartsWith(key, "GYRE_")) {
    return absl::InvalidArgumentError(
        absl::StrCat("context key \"", key, "\" is reserved: Gyre sets GYRE_* variables itself"));
  }
  if (ChangesWhatRuns(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("context key \"", key,
                     "\" is refused: it changes what code programs load or run; set it in a "
                     "task's env if the workflow needs it"));
  }
  return absl::OkStatus();
}

absl::Status ValidateContextEntry(absl::string_view key, absl::string_view value) {
  if (absl::Status status = ValidateContextKey(key); !status.ok()) return status;
  if (value.size() > kMaxContextValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("context value of \"", key, "\" is ",
                                                   value.size(), " bytes; at most ",
                                                   kMaxContextValueBytes));
  }
  return absl::OkStatus();
}

absl::Status TooManyContextEntries(size_t entries) {
  return absl::InvalidArgumentError(
      absl::StrCat("context has ", entries, " entries; at most ", kMaxContextEntries));
}

absl::Status ContextTooLarge(size_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat(
      "context has ", bytes, " bytes of keys and values; at most ", kMaxContextTotalBytes,
      " (it reaches every task as its environment, which Linux bounds)"));
}

DeclaredContext::DeclaredContext(const gyre::v1::WorkflowDefinition& definition)
    : passthrough_(definition.context_passthrough()) {
  if (passthrough_) return;
  for (const auto& [key, value] : definition.default_context()) names_.insert(key);
  for (const gyre::v1::TaskSpec& task : definition.tasks()) {
    names_.insert(task.outputs().begin(), task.outputs().end());
  }
}

std::shared_ptr<const DeclaredContext> DeclaredContext::Open() {
  gyre::v1::WorkflowDefinition open;
  open.set_context_passthrough(true);
  return std::make_shared<const DeclaredContext>(open);
}

absl::Status UndeclaredStartKey(absl::string_view key, absl::string_view workflow) {
  absl::ConsumePrefix(&workflow, "workflows/");
  // Bounded: the key comes from the client.
  return absl::InvalidArgumentError(
      absl::StrCat("context key ", key.substr(0, 128), " is not declared by workflow ", workflow,
                   "; declare it under `context:` (or as a task's `outputs:`)"));
}

absl::Status UndeclaredOutputKey(const gyre::v1::TaskSpec& spec, absl::string_view key,
                                 absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": key \"", key.substr(0, 128), "\" is not among the outputs task \"",
                   spec.id(), "\" declares (outputs: [", absl::StrJoin(spec.outputs(), ", "),
                   "]); list it under the task's `outputs:` to pass it on"));
}

}  // namespace gyre::workflow
