#include "services/orchestrator/task_environment.h"

#include "absl/strings/str_cat.h"
#include "libs/common/variable_expansion.h"

namespace gyre::orchestrator {

absl::Status BuildTaskEnvironment(const gyre::v1::TaskSpec& spec,
                                  const std::map<std::string, std::string>& context,
                                  const ExecutionBuiltins& builtins, int64_t attempt,
                                  const workflow::DeclaredContext* declared,
                                  gyre::v1::TaskAssignment* assignment) {
  const std::string attempt_text = absl::StrCat(attempt);
  const VariableLookup lookup = [&](absl::string_view name) -> std::optional<std::string> {
    if (name == "DATE") return builtins.date;
    if (name == "DATETIME") return builtins.datetime;
    if (name == "EXECUTION_ID") return builtins.execution_id;
    if (name == "WORKFLOW") return builtins.workflow;
    if (name == "ATTEMPT") return attempt_text;
    auto it = context.find(std::string(name));
    if (it == context.end()) return std::nullopt;
    return it->second;
  };
  auto fail = [&](const absl::Status& status, absl::string_view where) {
    return absl::InvalidArgumentError(
        absl::StrCat("task \"", spec.id(), "\": ", where, ": ", status.message()));
  };

  assignment->clear_command();
  for (const std::string& word : spec.command()) {
    if (spec.shell()) {
      assignment->add_command(word);
      continue;
    }
    absl::StatusOr<std::string> expanded = ExpandVariables(word, lookup);
    if (!expanded.ok()) return fail(expanded.status(), "command");
    assignment->add_command(*std::move(expanded));
  }
  assignment->set_shell(spec.shell());

  auto& env = *assignment->mutable_env();
  env.clear();
  for (const auto& [key, value] : context) {
    if (declared == nullptr || declared->Declares(key)) env[key] = value;
  }
  for (const auto& [key, value] : spec.env()) {
    absl::StatusOr<std::string> expanded = ExpandVariables(value, lookup);
    if (!expanded.ok()) return fail(expanded.status(), absl::StrCat("env ", key));
    env[key] = *std::move(expanded);
  }
  env["GYRE_EXECUTION_ID"] = builtins.execution_id;
  env["GYRE_WORKFLOW"] = builtins.workflow;
  env["GYRE_TASK_ID"] = spec.id();
  env["GYRE_ATTEMPT"] = attempt_text;
  env["GYRE_DATE"] = builtins.date;
  env["GYRE_DATETIME"] = builtins.datetime;
  return absl::OkStatus();
}

}  // namespace gyre::orchestrator
