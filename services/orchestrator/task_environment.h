#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_ENVIRONMENT_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_ENVIRONMENT_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/workflow/context_keys.h"

namespace gyre::orchestrator {

// Values fixed once when an execution is scheduled, so every task of the
// execution sees the same DATE even across midnight.
struct ExecutionBuiltins {
  std::string execution_id;  // "executions/..." id part
  std::string workflow;      // workflow short name
  std::string date;          // YYYY-MM-DD (UTC)
  std::string datetime;      // YYYY-MM-DDTHH:MM:SSZ (UTC)
};

// Fills the command and environment of `assignment` for one attempt:
//  - argv elements expand ${VAR} (context values and the built-ins DATE,
//    DATETIME, EXECUTION_ID, WORKFLOW, ATTEMPT); $${ is a literal ${;
//  - shell scripts are passed through unexpanded: the shell reads values
//    from the environment, so a context value can never inject code;
//  - the environment is the context under the names `declared` declares
//    (all of it when null), then the task's env (expanded), then
//    GYRE_EXECUTION_ID, GYRE_WORKFLOW, GYRE_TASK_ID, GYRE_ATTEMPT, GYRE_DATE,
//    GYRE_DATETIME. Every context value expands in command and env, declared
//    or not: there the workflow's author names it.
// An undefined variable is InvalidArgument naming the task and variable; the
// task then fails without running.
absl::Status BuildTaskEnvironment(const gyre::v1::TaskSpec& spec,
                                  const std::map<std::string, std::string>& context,
                                  const ExecutionBuiltins& builtins, int64_t attempt,
                                  const workflow::DeclaredContext* declared,
                                  gyre::v1::TaskAssignment* assignment);

// Checks that `assignment`'s command line and environment can be passed to
// execve: each string within Linux's MAX_ARG_STRLEN and all of them, with
// their pointers, within the exec budget (libs/common/limits.h, under
// ARG_MAX) — the context and upstream tasks' outputs can make them larger
// than anything checked at submission. Sets `*bytes` to that total (also a
// cheap estimate of the assignment's size on the wire). InvalidArgument
// naming the task and sizes when over.
absl::Status CheckExecSize(const gyre::v1::TaskAssignment& assignment, size_t* bytes);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_ENVIRONMENT_H_
