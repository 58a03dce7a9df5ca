#ifndef GYRE_SERVICES_ORCHESTRATOR_ENGINE_RECOVERY_H_
#define GYRE_SERVICES_ORCHESTRATOR_ENGINE_RECOVERY_H_

#include <cstdint>
#include <memory>
#include <optional>
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

  // One shard of `count` (ShardOfExecution), for a snapshot of that shard.
  struct ShardScope {
    uint32_t shard = 0;
    uint32_t count = 1;
  };

  // Fills `snapshot` (on an arena) with the whole state. Definitions are
  // lent, not copied: `lent` keeps them alive as long as the snapshot.
  // With `shard`, only that shard's executions and their evaluators'
  // pending child starts (children start in their parent's shard, so they
  // never cross one); no workflow definitions (a stream every owner reads)
  // and no global tasks (deduplication is per engine: a task that waited
  // for another execution's global run runs itself at the new owner).
  void Snapshot(gyre::v1::EngineSnapshot& snapshot,
                std::vector<std::shared_ptr<const gyre::v1::WorkflowDefinition>>* lent,
                std::optional<ShardScope> shard = std::nullopt) const;
  // Restores a snapshot into an empty engine; retries keep their due times.
  // With `into_live`, a one-shard snapshot (as Snapshot makes with a shard)
  // into a live engine: its executions join those there.
  absl::Status Restore(gyre::v1::EngineSnapshot snapshot, Outbox& out, bool into_live = false);

  // Replay is over: children decided but never started are started, leases
  // in flight stay with their agents for a lease timeout (KeepRecoveredLease)
  // and attempts with no agent go back to the queue. Counts both. Only the
  // executions from index `first` on (a shard just adopted: those it added)
  // and their children.
  void SettleInFlight(absl::Time now, Outbox& out, int64_t* kept, int64_t* requeued,
                      uint32_t first = 0);

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
