// What the engine takes from a result's output_json ($GYRE_OUTPUT, or an
// evaluator's stdout), parsed before the engine lock is taken: the JSON is a
// task's, up to 1 MiB, and parsing it must not hold up every other request.
#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_OUTPUT_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_OUTPUT_H_

#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "gyre/v1/execution.pb.h"
#include "gyre/v1/state_record.pb.h"

namespace gyre::orchestrator {

// Both readings of one output: whether its task is an evaluator is known
// only under the engine lock, and parsing is what must happen outside it.
struct ParsedOutput {
  // As a task's outputs: its keys and values (strings as they are, other
  // values as their JSON text), or, when `outputs_error` is set, why the
  // output fails the task.
  std::map<std::string, std::string> outputs;
  std::string outputs_error;
  // Whether outputs_error fails the task without its retries (decided
  // under the engine lock, or read back from the record).
  bool outputs_error_final = false;
  // As an evaluator's decision, or, when `decision_error` is set, why it
  // fails the evaluator.
  gyre::v1::EvaluatorDecision decision;
  std::string decision_error;
  // Read back from a TaskResultRecorded that kept the verdict: the errors
  // above are the ones given when the result was accepted, and a decision
  // without one passed every check then.
  bool recorded = false;
};

// Parses a result's output_json for a live result, with today's rules: at
// most kMaxOutputJsonBytes, nested at most kMaxOutputJsonDepth deep (checked
// in one pass before protobuf's parser sees it), keys allowed as context
// keys, a decision of the documented shape. Empty JSON: no outputs, and the
// decision error is left for the engine (only an evaluator needs one).
ParsedOutput ParseTaskOutput(const std::string& json);

// For replaying a TaskResultRecorded: the verdict it recorded when it has
// one; else (a record written before verdicts were kept) output_json parsed
// again within the same bounds, but keys unchecked and the decision read as
// protobuf's parser read it then, so the replay rebuilds the state that
// record made.
ParsedOutput RecordedOutput(const gyre::v1::TaskResultRecorded& record);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_OUTPUT_H_
