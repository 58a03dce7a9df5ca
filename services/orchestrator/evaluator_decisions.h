#ifndef GYRE_SERVICES_ORCHESTRATOR_EVALUATOR_DECISIONS_H_
#define GYRE_SERVICES_ORCHESTRATOR_EVALUATOR_DECISIONS_H_

#include <cstdint>
#include <map>
#include <string>

#include "gyre/v1/orchestrator_service.pb.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/task_output.h"
#include "services/orchestrator/task_state_machine.h"
#include "services/orchestrator/workflow_registry.h"

namespace gyre::orchestrator {

// What an evaluator task's decision does: run or skip tasks downstream of
// it, pass context on, start child workflows. Owns: checking a decision
// (downstream only, declared context, the children's depth and count
// limits, stored workflows only), applying it, and the children decided
// but not yet started (kept until their own start is recorded, so that a
// crash in between does not lose them). Must not touch: how a result is
// fenced or recorded (the result recorder calls this for an evaluator's
// successful attempt). Not thread-safe: used under the engine lock.
class EvaluatorDecisions {
 public:
  // Evaluators' child workflows: at most this deep (a child is at depth 1,
  // its children at 2...) and at most this many started from one execution,
  // so an evaluator that starts its own workflow stops instead of
  // multiplying (one that started itself twice reached 703 executions).
  static constexpr int kMaxChildDepth = 8;
  static constexpr uint32_t kMaxChildrenPerExecution = 100;

  EvaluatorDecisions(ExecutionTable& executions, const WorkflowRegistry& workflows,
                     TaskStateMachine& machine, EngineJournal& journal)
      : executions_(executions), workflows_(workflows), machine_(machine), journal_(journal) {}

  // The evaluator task `task` succeeded with `parsed` (its output, parsed
  // off the lock, or read back from its record): applies the decision, or
  // fails the evaluator. Returns why the decision fails it (empty: applied).
  std::string Apply(ExecutionEntry& exec, uint32_t task, bool empty_output, ParsedOutput& parsed,
                    Outbox& out);

  // A child's own start was recorded (or failed for good): no longer pending.
  void ChildStarted(const std::string& request_id) { pending_children_.erase(request_id); }
  // Children decided whose start has not been recorded (a restart starts them).
  const std::map<std::string, gyre::v1::StartExecutionRequest>& pending_children() const {
    return pending_children_;
  }
  void RestorePendingChild(const gyre::v1::StartExecutionRequest& child) {
    pending_children_[child.request_id()] = child;
  }

 private:
  // Why `decision` may not start its children from `exec` (empty: it may).
  std::string CheckChildStarts(const ExecutionEntry& exec,
                               const gyre::v1::EvaluatorDecision& decision);

  ExecutionTable& executions_;
  const WorkflowRegistry& workflows_;
  TaskStateMachine& machine_;
  EngineJournal& journal_;
  std::map<std::string, gyre::v1::StartExecutionRequest> pending_children_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EVALUATOR_DECISIONS_H_
