#include "services/orchestrator/task_environment.h"

#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
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

absl::Status CheckExecSize(const gyre::v1::TaskAssignment& assignment, size_t* bytes) {
  // As execve counts: each string with its NUL, plus a pointer to it; a
  // shell command runs as /bin/sh -c SCRIPT.
  size_t total = assignment.shell() ? sizeof("/bin/sh") + sizeof("-c") + 2 * sizeof(char*) : 0;
  size_t longest = 0;
  std::string longest_name;  // set only when one string is over the limit
  for (const std::string& word : assignment.command()) {
    total += word.size() + 1 + sizeof(char*);
    if (word.size() + 1 > longest) {
      longest = word.size() + 1;
      if (longest > limits::kMaxExecStringBytes) longest_name = "a command line argument";
    }
  }
  for (const auto& [key, value] : assignment.env()) {
    const size_t entry = key.size() + value.size() + 2;  // KEY=value and NUL
    total += entry + sizeof(char*);
    if (entry > longest) {
      longest = entry;
      if (longest > limits::kMaxExecStringBytes) {
        longest_name = absl::StrCat("environment variable ", key);
      }
    }
  }
  total += 2 * sizeof(char*);  // the arrays' terminating null pointers
  *bytes = total;
  const std::string& task = assignment.ref().task_id();
  if (longest > limits::kMaxExecStringBytes) {
    return absl::InvalidArgumentError(absl::StrCat("task \"", task, "\" cannot run: ", longest_name,
                                                   " is ", longest, " bytes; Linux passes at most ",
                                                   limits::kMaxExecStringBytes,
                                                   " per string (MAX_ARG_STRLEN)"));
  }
  if (total > limits::kMaxTaskExecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("task \"", task,
                     "\" cannot run: its command line and environment (the context, with "
                     "what upstream tasks passed on) take ",
                     total, " bytes; a task may use at most ", limits::kMaxTaskExecBytes,
                     " (Linux's ARG_MAX is 2 MiB)"));
  }
  return absl::OkStatus();
}

}  // namespace gyre::orchestrator
