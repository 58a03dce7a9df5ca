#ifndef GYRE_SERVICES_ORCHESTRATOR_SHARD_HANDOVER_H_
#define GYRE_SERVICES_ORCHESTRATOR_SHARD_HANDOVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/evaluator_decisions.h"
#include "services/orchestrator/event_publisher.h"
#include "services/orchestrator/event_subscription.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/task_state_machine.h"

namespace gyre::orchestrator {

// The engine's side of moving a shard between orchestrators (issue 21):
// dropping a released shard's executions from the live engine, and keeping
// watchers of all executions out of an adopted shard's replay. Adoption
// itself is restart recovery (EngineRecovery) run on one shard's history.
// Owns: what "dropped" means for an execution. Must not touch: the store,
// the shard set (ShardOwnership), agents' streams (a released attempt keeps
// running on its agent, which reports it to the new owner).
// Not thread-safe: used under the engine lock.
class ShardHandover {
 public:
  ShardHandover(ExecutionTable& executions, TaskStateMachine& machine, EventPublisher& publisher,
                EvaluatorDecisions& evaluators)
      : executions_(executions),
        machine_(machine),
        publisher_(publisher),
        evaluators_(evaluators) {}

  // Drops every execution of `shard` (of `shard_count`); `moved` is what
  // their watchers end with and is logged with them. Global identities
  // their unfinished tasks own are given up first (waiters that stay here
  // are woken into `out`: one runs it). Returns how many.
  int64_t Release(uint32_t shard, uint32_t shard_count, const absl::Status& moved, Outbox& out);
  // Drops the executions from index `first` on (an adoption that failed
  // part way: nothing of it is kept).
  void DropFrom(uint32_t first, const absl::Status& why);

  // Watchers of all executions, set aside while a shard's history replays
  // (its events were shown by the shard's previous owner) and given back
  // after.
  void MuteWatchers() { muted_ = publisher_.TakeWatchAll(); }
  void UnmuteWatchers() { publisher_.RestoreWatchAll(std::move(muted_)); }

 private:
  // The execution leaves the engine: its leases are given back (without a
  // cancel), its ready entries and retry timers go stale (generation), its
  // counts leave the gauges, its watchers end with `why`, and it can no
  // longer be found. Its slot stays, emptied: execution indexes never
  // change (ready queues, leases and timers hold them).
  void Drop(ExecutionEntry& exec, const absl::Status& why);

  ExecutionTable& executions_;
  TaskStateMachine& machine_;
  EventPublisher& publisher_;
  EvaluatorDecisions& evaluators_;
  std::vector<std::shared_ptr<EventSubscription>> muted_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SHARD_HANDOVER_H_
