#ifndef GYRE_LIBS_WFCOMMONS_WFCOMMONS_IMPORT_H_
#define GYRE_LIBS_WFCOMMONS_WFCOMMONS_IMPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::wfcommons {

// How a WfCommons trace becomes a Gyre workflow.
struct ImportOptions {
  // Each task sleeps for its recorded runtime times this factor (0.01 turns
  // a 100 s task into 1 s). Must be >= 0.
  double time_scale = 1.0;
  // Workflow name; empty derives it from the trace's name.
  std::string workflow_name;
  // Queue (worker type) of every task.
  std::string queue = "default";
};

// Facts about a converted trace, for the CLI's summary line.
struct ImportSummary {
  int tasks = 0;
  int edges = 0;
  double recorded_runtime_seconds = 0;  // sum over tasks, unscaled
};

// Converts a WfCommons WfFormat trace (schema 1.4/1.5 JSON: workflow.
// specification.tasks with parents, workflow.execution.tasks with
// runtimeInSeconds, avgCPU, memoryInBytes, command) into Gyre workflow YAML
// whose tasks are `builtin: sleep` for their recorded runtime times the
// scale, keep the DAG, and carry the recorded command as their description
// and CPU/memory as resources; a task with input files gets their total
// size and count as the numeric values `input_bytes` and `input_count` of
// its env (the context values the orchestrator forwards to the predictor).
// Errors (InvalidArgument) say which task or field is wrong.
absl::StatusOr<std::string> ConvertWfCommonsTrace(absl::string_view trace_json,
                                                  const ImportOptions& options,
                                                  ImportSummary* summary = nullptr);

}  // namespace gyre::wfcommons

#endif  // GYRE_LIBS_WFCOMMONS_WFCOMMONS_IMPORT_H_
