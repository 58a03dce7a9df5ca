#ifndef GYRE_LIBS_WORKFLOW_WORKFLOW_GRAPH_H_
#define GYRE_LIBS_WORKFLOW_WORKFLOW_GRAPH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gyre/v1/execution.pb.h"
#include "gyre/v1/workflow.pb.h"

namespace gyre::workflow {

// Checks what the engine relies on before accepting a definition from the
// API: a valid name, unique task ids, one of command/builtin per task, every
// dependency known, no cycle (the message prints the cycle path), values in
// range. Errors are InvalidArgument naming the task and the problem, e.g.
//   task "load": unknown dependency "extrct" (did you mean "extract"?)
absl::Status ValidateWorkflowGraph(const gyre::v1::WorkflowDefinition& definition);

// Outcome scheduling within one definition: returns a definition holding
// only `targets` and their transitive dependencies (all tasks when targets
// is empty), in the original order. InvalidArgument names unknown targets.
absl::StatusOr<std::shared_ptr<const gyre::v1::WorkflowDefinition>> SelectTargets(
    std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
    const std::vector<std::string>& targets);

// Parses an evaluator's JSON output into a decision (see EvaluatorDecision
// in execution.proto). InvalidArgument says what is malformed.
absl::StatusOr<gyre::v1::EvaluatorDecision> ParseEvaluatorDecision(const std::string& json);

// Checks the context a decision adds and gives the workflows it starts, as
// any context is checked (context_keys.h): an evaluator's output may come
// from a language model. InvalidArgument starts "evaluator output: ".
absl::Status ValidateDecisionContexts(const gyre::v1::EvaluatorDecision& decision);

}  // namespace gyre::workflow

#endif  // GYRE_LIBS_WORKFLOW_WORKFLOW_GRAPH_H_
