#ifndef GYRE_LIBS_WORKFLOW_WORKFLOW_GRAPH_H_
#define GYRE_LIBS_WORKFLOW_WORKFLOW_GRAPH_H_

#include <google/protobuf/struct.pb.h>

#include <cstdint>
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
//
// `limits` bounds the graph's size (the orchestrator's config may raise
// them: `max_workflow_tasks`, `max_workflow_edges`); over them the error
// names the limit, before any per-task work is done.
struct WorkflowSizeLimits {
  int64_t max_tasks = 100'000;
  // Dependencies, counted over all tasks (`depends_on` entries).
  int64_t max_edges = 1'000'000;
};
absl::Status ValidateWorkflowGraph(const gyre::v1::WorkflowDefinition& definition,
                                   const WorkflowSizeLimits& limits = {});

// Outcome scheduling within one definition: returns a definition holding
// only `targets` and their transitive dependencies (all tasks when targets
// is empty), in the original order. InvalidArgument names unknown targets.
absl::StatusOr<std::shared_ptr<const gyre::v1::WorkflowDefinition>> SelectTargets(
    std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
    const std::vector<std::string>& targets);

// Bounds on what a task writes to $GYRE_OUTPUT (or an evaluator prints):
// the agent sends at most this many bytes, and the orchestrator refuses more.
inline constexpr size_t kMaxOutputJsonBytes = 1 << 20;
// Nesting depth of that JSON. Outputs become flat context values and a
// decision is 4 levels deep, so 32 leaves room for structured values while
// keeping protobuf's JSON parser, whose cost grows with the square of the
// depth, cheap: 200 KB of "[[[[..." took minutes, and checking the depth
// first takes one pass.
inline constexpr int kMaxOutputJsonDepth = 32;
// A decision's task ids and workflow names: 1 to this many bytes (task ids
// are at most 128, "workflows/{w}/versions/{v}" less).
inline constexpr size_t kMaxDecisionNameBytes = 128;
// Entries of a decision's "run" and of its "skip".
inline constexpr size_t kMaxDecisionTasks = 10000;
// Entries of a decision's "start" (an execution starts at most
// kMaxChildrenPerExecution children in all, see the engine).
inline constexpr size_t kMaxDecisionStarts = 100;

// Parses an evaluator's JSON output into a decision (see EvaluatorDecision
// in execution.proto and docs/workflows.md), in time linear in its size:
// the documented shape only, within the bounds above. InvalidArgument
// starts "evaluator output: " and says what is malformed: unknown keys,
// wrong types ({"run": [["deploy"]]}), over-long names.
absl::StatusOr<gyre::v1::EvaluatorDecision> ParseEvaluatorDecision(const std::string& json);

// The same checks, on JSON already parsed (and bounded) into an object.
absl::StatusOr<gyre::v1::EvaluatorDecision> EvaluatorDecisionFromJson(
    const google::protobuf::Struct& object);

// Checks the context a decision adds and gives the workflows it starts, as
// any context is checked (context_keys.h): an evaluator's output may come
// from a language model. InvalidArgument starts "evaluator output: ".
absl::Status ValidateDecisionContexts(const gyre::v1::EvaluatorDecision& decision);

}  // namespace gyre::workflow

#endif  // GYRE_LIBS_WORKFLOW_WORKFLOW_GRAPH_H_
