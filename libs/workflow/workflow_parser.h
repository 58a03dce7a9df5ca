#ifndef GYRE_LIBS_WORKFLOW_WORKFLOW_PARSER_H_
#define GYRE_LIBS_WORKFLOW_WORKFLOW_PARSER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/workflow/workflow_graph.h"

namespace gyre::workflow {

// Parses a workflow written in YAML:
//
//   name: etl                      # required: [a-z0-9][a-z0-9-]*, up to 63
//   description: Nightly ETL       # optional
//   context: {REGION: eu}          # default context (values are strings)
//   context_passthrough: false     # see below; leave it off
//   default_queue: default         # queue of tasks that name none
//   tasks:
//     - id: extract                # required, unique: [A-Za-z0-9_.-]{1,128}
//       description: ...           # rich text, for humans and LLM evaluators
//       command: [python3, extract.py, "--region=${REGION}"]  # argv, no shell
//       # or: command: "echo $REGION" with shell: true (values via environment)
//       # or: builtin: noop | sleep (with duration: 2s)
//       env: {KEY: value}
//       depends_on: [a, b]         # or one id; may name a task-library task
//       queue: gpu                 # worker type
//       labels: {department: ai-research}
//       agent_selector: {gpu: a100}
//       resources: {cpu: 2, memory: 4Gi, gpu: 1}  # memory: bytes, Ki/Mi/Gi/Ti, K/M/G/T
//       timeout: 10m
//       retries: 3                 # or {count, initial_backoff, max_backoff, multiplier, jitter}
//       priority: 50               # 0..100
//       global: false
//       evaluator: false
//       outputs: [ORDERS, CUSTOMERS]  # context keys it writes to $GYRE_OUTPUT
//                                  # (an evaluator: its decision's context)
//
// Context is declared: the keys under `context:` and every task's `outputs:`
// are the only names that may enter an execution's context (from a start
// request or `gyre run --set`, a task's $GYRE_OUTPUT, an evaluator's
// decision) and the only ones that reach tasks' environments. An undeclared
// key is refused where it enters: the start fails with INVALID_ARGUMENT, the
// task or evaluator that wrote it fails. Any context value can still be
// expanded as ${VAR} in a task's command or env. `context_passthrough: true`
// brings back the open rule (any plain variable name, the loader and shell
// variables still refused) for a workflow whose every client and task is
// trusted: any of them may then set HOME, PAGER, GIT_SSH_COMMAND... for the
// tasks that follow. Env keys are non-empty, without '=' or NUL.
//
// A bad definition is rejected whole, with one line saying where and why:
//   etl.yaml:14:7: task "load": unknown dependency "extrct" (did you mean "extract"?)
//   etl.yaml:3:5: unknown key "depnds_on" (did you mean "depends_on"?)
// `source` names the text in messages (usually the file name).
//
// With a `library` (the orchestrator's task library, see LoadTaskLibrary), a
// dependency may name a library task: it is pulled in with what it depends
// on (IncludeLibraryTasks in task_library.h), as the orchestrator does.
// Without one, such a dependency is unknown.
//
// The text is bounded before it is loaded (CheckYaml with
// kWorkflowYamlLimits: 16 MiB, 1,500,000 nodes, 64 levels, no key twice in a
// mapping), and the task count is checked against `limits` before any task
// is converted.
absl::StatusOr<gyre::v1::WorkflowDefinition> ParseWorkflowYaml(
    absl::string_view yaml, absl::string_view source,
    const gyre::v1::WorkflowDefinition* library = nullptr, const WorkflowSizeLimits& limits = {});

// Reads and parses a workflow file; NotFound names an unreadable file.
absl::StatusOr<gyre::v1::WorkflowDefinition> LoadWorkflowFile(
    const std::string& path, const gyre::v1::WorkflowDefinition* library = nullptr);

// Loads a task library: every *.yaml / *.yml file in `dir` holds
//   context: {REGION: eu}   # optional: what outcomes may be given (merged)
//   tasks:
//     - id: ...        # the task format above
// Dependencies may name tasks of any file. The library is returned as one
// definition named "workflows/task-library", validated as a whole (unique
// ids across files, known dependencies, no cycle). Outcome scheduling picks
// targets from it and pulls in their dependencies.
absl::StatusOr<gyre::v1::WorkflowDefinition> LoadTaskLibrary(const std::string& dir);

}  // namespace gyre::workflow

#endif  // GYRE_LIBS_WORKFLOW_WORKFLOW_PARSER_H_
