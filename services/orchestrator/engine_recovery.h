#ifndef GYRE_SERVICES_ORCHESTRATOR_ENGINE_RECOVERY_H_
#define GYRE_SERVICES_ORCHESTRATOR_ENGINE_RECOVERY_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "gyre/v1/state_record.pb.h"
#include "services/orchestrator/agent_leases.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/evaluator_decisions.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/global_task_table.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/result_recorder.h"
#include "services/orchestrator/task_state_machine.h"
#include "services/orchestrator/workflow_registry.h"

namespace gyre::orchestrator {

// The engine's state rebuilt from what the store kept (event sourcing):
// a snapshot restored, the records after it applied through the same
// components that made them live, and what was in flight at the crash
// settled. Also the whole state to a snapshot (engine_snapshot.cc).
// Owns: the meaning of each StateRecord kind on replay and of each
// snapshot field. Must not touch: the store (the engine loads it and hands
// records over), the clock (the journal carries each record's time).
// Not thread-safe: used under the engine lock.
class EngineRecovery {
 public:
  EngineRecovery(WorkflowRegistry& workflows, ExecutionTable& executions, QueueTable& queues,
                 GlobalTaskTable& globals, TaskStateMachine& machine, ResultRecorder& results,
                 EvaluatorDecisions& evaluators, AgentLeases& leases, EngineJournal& journal)
      : workflows_(workflows),
        executions_(executions),
        queues_(queues),
        globals_(globals),
        machine_(machine),
        results_(results),
        evaluators_(evaluators),
        leases_(leases),
        journal_(journal) {}

  // Applies one replayed record (journal().now() is its time).
  absl::Status ApplyRecord(const gyre::v1::StateRecord& record, Outbox& out);

  // Fills `snapshot` (on an arena) with the whole state. Definitions are
  // lent, not copied: `lent` keeps them alive as long as the snapshot.
  void Snapshot(gyre::v1::EngineSnapshot& snapshot,
                std::vector<std::shared_ptr<const gyre::v1::WorkflowDefinition>>* lent) const;
  // Restores a snapshot into an empty engine; retries keep their due times.
  absl::Status Restore(gyre::v1::EngineSnapshot snapshot, Outbox& out);

  // Replay is over: children decided but never started are started, leases
  // in flight stay with their agents for a lease timeout (KeepRecoveredLease)
  // and attempts with no agent go back to the queue. Counts both.
  void SettleInFlight(absl::Time now, Outbox& out, int64_t* kept, int64_t* requeued);

 private:
  WorkflowRegistry& workflows_;
  ExecutionTable& executions_;
  QueueTable& queues_;
  GlobalTaskTable& globals_;
  TaskStateMachine& machine_;
  ResultRecorder& results_;
  EvaluatorDecisions& evaluators_;
  AgentLeases& leases_;
  EngineJournal& journal_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ENGINE_RECOVERY_H_
