#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_STATE_MACHINE_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_STATE_MACHINE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gyre/v1/execution.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "libs/workflow/context_keys.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/event_publisher.h"
#include "services/orchestrator/execution_entry.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/global_task_table.h"
#include "services/orchestrator/queue_table.h"

namespace gyre::orchestrator {

// The life of tasks and executions: every state change, with its counts,
// its place in the history and its event; readiness along the DAG's edges
// (outputs passed on), skipping dependants, retries with backoff, attempts
// leased, started, lost and failed before they ran, cancel and resume, and
// the execution's state rolled up from its tasks'. Records what it changes
// beyond a result (an attempt started or lost, a retry due) in the journal.
// Must not touch: dispatch (which agent gets what), results' contents,
// evaluator decisions, agents beyond the lease bookkeeping — those sit
// above it and call it; it calls nothing above itself, and what it cannot
// do under the lock (timers, log lines) it leaves in the Outbox.
// Not thread-safe: used under the engine lock.
class TaskStateMachine {
 public:
  TaskStateMachine(ExecutionTable& executions, QueueTable& queues, AgentManager& agents,
                   GlobalTaskTable& globals, EventPublisher& publisher, EngineJournal& journal,
                   EngineMetrics& metrics)
      : executions_(executions),
        queues_(queues),
        agents_(agents),
        globals_(globals),
        publisher_(publisher),
        journal_(journal),
        metrics_(metrics) {}

  // Builds the execution `record` starts (ExecutionTable::Build), emits its
  // EXECUTION_CREATED event and makes its root tasks ready.
  ExecutionEntry& CreateExecution(const gyre::v1::ExecutionStarted& record,
                                  std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
                                  std::shared_ptr<const workflow::DeclaredContext> declared,
                                  Outbox& out);

  // A task state change: counted, appended to the history, published.
  void SetTaskState(ExecutionEntry& exec, uint32_t task, gyre::v1::TaskState state);
  // The bookkeeping of a state change (counts by state, queue depth)
  // without its event (restoring a snapshot).
  void CountTaskState(ExecutionEntry& exec, uint32_t task, gyre::v1::TaskState state);
  // READY (with what its parents passed on), or settled or parked by its
  // global identity.
  void MakeReady(ExecutionEntry& exec, uint32_t task, Outbox& out);
  // Puts a READY task in its queue, or parks it while the execution is paused.
  void QueueReady(ExecutionEntry& exec, uint32_t task);
  void SkipDependants(ExecutionEntry& exec, uint32_t task, absl::string_view reason);
  void CompleteTask(ExecutionEntry& exec, uint32_t task, Outbox& out);
  // The current attempt failed: retried after its backoff while retries are
  // left, else `final_state` and its dependants skipped.
  void FailOrRetry(ExecutionEntry& exec, uint32_t task, gyre::v1::TaskState final_state,
                   Outbox& out);
  // The PENDING task's retry falls due after `delay` (Outbox::retries).
  void ScheduleRetry(ExecutionEntry& exec, uint32_t task, absl::Duration delay, Outbox& out);
  // The retry of a PENDING task is due: READY again, recorded.
  void RetryDue(ExecutionEntry& exec, uint32_t task, Outbox& out);
  void UpdateExecutionState(ExecutionEntry& exec, Outbox& out);
  void SetExecutionState(ExecutionEntry& exec, gyre::v1::ExecutionState state, Outbox& out);
  // Records an execution-level event (kept whole) and publishes it.
  void Emit(ExecutionEntry& exec, gyre::v1::Event event);

  // A new attempt of the task, leased to `agent_id` (its fencing token).
  void Lease(ExecutionEntry& exec, uint32_t task, const std::string& agent_id, int64_t attempt);
  // The task's lease ends: the agent's resources and the queue's running
  // count given back.
  void ReleaseLease(ExecutionEntry& exec, uint32_t task);
  // The agent reported attempt `attempt` of the task running: TASK_RUNNING,
  // recorded. False (nothing changes) for an attempt not current or not
  // leased.
  bool StartAttempt(ExecutionEntry& exec, uint32_t task, int64_t attempt);
  // The current attempt of a leased task ended without a result: marked
  // ATTEMPT_LOST with `error`, its lease released, the task re-queued when
  // it was still to run; recorded (AttemptLost), so that a restart shows the
  // same outcome and never gives the task back to the lost agent.
  void LoseAttempt(ExecutionEntry& exec, uint32_t task, std::string error, Outbox& out);
  // Attempt `attempt`, leased to `agent_id`, failed before it was sent
  // (`error`); not retried. Recorded (AttemptNotStarted).
  void FailNotStarted(ExecutionEntry& exec, uint32_t task, const std::string& agent_id,
                      int64_t attempt, std::string error, Outbox& out);

  // New priority for `task` (a task not yet leased: a leased or running
  // one keeps its place, a later attempt takes the new one). A READY task is
  // queued again at its new priority (its old queue entry goes stale).
  void SetPriority(ExecutionEntry& exec, uint32_t task, int32_t priority);
  // New priority for every task of `exec` not yet leased, and the
  // execution's own.
  void SetPriority(ExecutionEntry& exec, int32_t priority);

  // Cancels every task not ended (telling agents to stop running ones).
  void Cancel(ExecutionEntry& exec, absl::string_view reason, Outbox& out);
  // Back from PAUSED: its parked tasks queued again.
  void Resume(ExecutionEntry& exec, Outbox& out);

  // `exec` leaves this engine (its shard moved) while its task may own a
  // global identity others wait for: the identity is given up as a failed
  // run gives it up, so a waiter that stays here runs it itself.
  void AbandonGlobal(ExecutionEntry& exec, uint32_t task, Outbox& out);

 private:
  // Returns true when the task was settled or parked by its global identity
  // (already produced, or being produced by another execution).
  bool ResolveGlobal(ExecutionEntry& exec, uint32_t task, Outbox& out);
  // The owner of a global identity ended: share its result, or hand the
  // identity to a waiter when it did not succeed.
  void SettleGlobal(ExecutionEntry& exec, uint32_t task, bool succeeded, Outbox& out);
  void Requeue(ExecutionEntry& exec, uint32_t task, absl::string_view why, Outbox& out);

  ExecutionTable& executions_;
  QueueTable& queues_;
  AgentManager& agents_;
  GlobalTaskTable& globals_;
  EventPublisher& publisher_;
  EngineJournal& journal_;
  EngineMetrics& metrics_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_STATE_MACHINE_H_
