// A task's $GYRE_OUTPUT and an evaluator's decision as the orchestrator
// parses them (services/orchestrator/task_output.cc, ParseEvaluatorDecision)
// on arbitrary bytes: outputs or an error, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "libs/workflow/workflow_graph.h"
#include "services/orchestrator/task_output.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  (void)gyre::orchestrator::ParseTaskOutput(json);
  (void)gyre::workflow::ParseEvaluatorDecision(json);
  gyre::v1::TaskResultRecorded record;
  record.mutable_result()->set_output_json(json);
  (void)gyre::orchestrator::RecordedOutput(record);
  return 0;
}
