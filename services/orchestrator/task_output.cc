#include "services/orchestrator/task_output.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "libs/common/json_bounds.h"
#include "libs/workflow/context_keys.h"
#include "libs/workflow/workflow_graph.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

// The parser's message goes on to draw the spot over further lines.
std::string FirstLine(const google::protobuf::util::Status& status) {
  const std::string message = status.message().as_string();
  return message.substr(0, message.find('\n'));
}

// Flattens the object into context values: strings as they are, anything
// else as its JSON text.
void Flatten(const google::protobuf::Struct& object, std::map<std::string, std::string>* outputs) {
  for (const auto& [key, value] : object.fields()) {
    if (value.has_string_value()) {
      (*outputs)[key] = value.string_value();
    } else {
      std::string text;
      (void)google::protobuf::util::MessageToJsonString(value, &text);
      (*outputs)[key] = text;
    }
  }
}

}  // namespace

ParsedOutput ParseTaskOutput(const std::string& json) {
  ParsedOutput parsed;
  if (json.empty()) return parsed;
  if (absl::Status bounds = CheckJsonBounds(json, workflow::kMaxOutputJsonBytes,
                                            workflow::kMaxOutputJsonDepth, "$GYRE_OUTPUT");
      !bounds.ok()) {
    parsed.outputs_error = std::string(bounds.message());
    parsed.decision_error =
        absl::StrCat("evaluator output", bounds.message().substr(sizeof("$GYRE_OUTPUT") - 1));
    return parsed;
  }
  google::protobuf::Struct object;
  if (const auto status = google::protobuf::util::JsonStringToMessage(json, &object);
      !status.ok()) {
    parsed.outputs_error = absl::StrCat("$GYRE_OUTPUT is not a JSON object: ", FirstLine(status));
    parsed.decision_error = absl::StrCat(
        "evaluator output is not a JSON object (expected a decision: {\"run\": [...], \"skip\": "
        "[...], \"start\": [{\"workflow\": ..., \"context\": {...}}], \"context\": {...}}): ",
        FirstLine(status));
    return parsed;
  }
  Flatten(object, &parsed.outputs);
  if (absl::Status keys = workflow::ValidateContextMap(parsed.outputs); !keys.ok()) {
    parsed.outputs_error = absl::StrCat("$GYRE_OUTPUT: ", keys.message());
    parsed.outputs.clear();
  }
  absl::StatusOr<v1::EvaluatorDecision> decision = workflow::EvaluatorDecisionFromJson(object);
  if (decision.ok()) {
    absl::Status contexts = workflow::ValidateDecisionContexts(*decision);
    if (contexts.ok()) {
      parsed.decision = *std::move(decision);
    } else {
      parsed.decision_error = std::string(contexts.message());
    }
  } else {
    parsed.decision_error = std::string(decision.status().message());
  }
  return parsed;
}

ParsedOutput RecordedOutput(const v1::TaskResultRecorded& record) {
  ParsedOutput parsed;
  if (record.output_parsed()) {
    parsed.recorded = true;
    parsed.outputs.insert(record.outputs().begin(), record.outputs().end());
    parsed.decision = record.decision();
    parsed.outputs_error = record.output_error();
    parsed.outputs_error_final = record.output_error_final();
    parsed.decision_error = record.output_error();
    return parsed;
  }
  const std::string& json = record.result().output_json();
  if (json.empty()) return parsed;
  // Still bounded: a record from before the bound must not stall recovery.
  if (absl::Status bounds = CheckJsonBounds(json, workflow::kMaxOutputJsonBytes,
                                            workflow::kMaxOutputJsonDepth, "$GYRE_OUTPUT");
      !bounds.ok()) {
    parsed.outputs_error = parsed.decision_error = std::string(bounds.message());
    return parsed;
  }
  google::protobuf::Struct object;
  if (const auto status = google::protobuf::util::JsonStringToMessage(json, &object); status.ok()) {
    Flatten(object, &parsed.outputs);
  } else {
    parsed.outputs_error = absl::StrCat("$GYRE_OUTPUT is not a JSON object: ", FirstLine(status));
  }
  if (const auto status = google::protobuf::util::JsonStringToMessage(json, &parsed.decision);
      !status.ok()) {
    parsed.decision_error =
        absl::StrCat("evaluator output is not a valid decision: ", FirstLine(status));
  }
  return parsed;
}

}  // namespace gyre::orchestrator
