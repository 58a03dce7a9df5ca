#ifndef GYRE_SERVICES_ORCHESTRATOR_RESULT_RECORDER_H_
#define GYRE_SERVICES_ORCHESTRATOR_RESULT_RECORDER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/attempt_observation.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/evaluator_decisions.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/task_cost_meter.h"
#include "services/orchestrator/task_output.h"
#include "services/orchestrator/task_state_machine.h"

namespace gyre::orchestrator {

// Results of attempts. Owns: fencing (only the current lease holder's
// result for the current attempt counts, once), what a result makes of its
// task (succeeded with its outputs, retried, failed, an evaluator's
// decision applied), recording the accepted ones in one append per message
// and acknowledging every one once durable. Must not touch: dispatch (the
// engine dispatches after), agents' registration.
// Not thread-safe: used under the engine lock, except the static helpers.
class ResultRecorder {
 public:
  // `cost` (optional, not owned) prices each attempt that reports a result.
  ResultRecorder(ExecutionTable& executions, TaskStateMachine& machine,
                 EvaluatorDecisions& evaluators, EngineJournal& journal, EngineMetrics& metrics,
                 TaskCostMeter* cost = nullptr)
      : executions_(executions),
        machine_(machine),
        evaluators_(evaluators),
        journal_(journal),
        metrics_(metrics),
        cost_(cost) {}

  // No state. `message` cut to what the orchestrator keeps of a result
  // (libs/common/limits.h), or nothing when it is within them: tails and
  // the error are cut, an output larger than a task may pass on fails the
  // attempt, so that a result always fits one log record.
  static std::optional<gyre::v1::AgentMessage> CapOversized(const gyre::v1::AgentMessage& message);

  // Applies the results of one agent message in order, persists the
  // accepted ones in one append and acknowledges all of them in one message
  // once durable (stale ones too, so the agent forgets them). `parsed` holds
  // each result's output_json as ParseTaskOutput read it (outside the
  // lock), one per result, or is empty when every output is.
  void RecordResults(AgentEntry& agent, absl::Span<const gyre::v1::TaskResult* const> results,
                     absl::Span<ParsedOutput> parsed, Outbox& out);
  // Returns whether the result was accepted (current lease) or rejected.
  // `parsed` is its output, already parsed; `record`, when not null, gets
  // what was made of it (outputs, decision, or why refused) so that a
  // replay need not parse or check it again.
  bool HandleResult(const std::string& agent_id, const gyre::v1::TaskResult& result,
                    ParsedOutput& parsed, gyre::v1::TaskResultRecorded* record, Outbox& out);

  // Where accepted results' observations go once durable (the predictor
  // link); null (the default) takes none, at no cost. Not owned; must
  // outlive the store's completions.
  void set_observation_sink(ObservationSink* sink) { sink_ = sink; }

 private:
  ExecutionTable& executions_;
  TaskStateMachine& machine_;
  EvaluatorDecisions& evaluators_;
  EngineJournal& journal_;
  EngineMetrics& metrics_;
  TaskCostMeter* cost_;
  // RecordResults' records, kept for their capacity.
  std::vector<gyre::v1::StateRecord> scratch_;
  ObservationSink* sink_ = nullptr;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_RESULT_RECORDER_H_
