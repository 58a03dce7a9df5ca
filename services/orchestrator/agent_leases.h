#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_LEASES_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_LEASES_H_

#include <cstdint>

#include "absl/time/time.h"
#include "gyre/v1/agent_service.pb.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/task_state_machine.h"

namespace gyre::orchestrator {

// The leases agents hold, kept true to what the agents say. Owns: what a
// registration, a heartbeat, a missed lease timeout or a restart means for
// an agent's leases — kept, lost (re-queued as a new attempt), or an
// attempt the agent runs without a lease told to stop. Level-triggered:
// what an agent reports running is the truth. Must not touch: dispatch (the
// engine dispatches after a change), results.
// Not thread-safe: used under the engine lock.
class AgentLeases {
 public:
  AgentLeases(ExecutionTable& executions, QueueTable& queues, AgentManager& agents,
              TaskStateMachine& machine, EngineMetrics& metrics, absl::Duration lease_timeout,
              absl::Duration heartbeat_interval)
      : executions_(executions),
        queues_(queues),
        agents_(agents),
        machine_(machine),
        metrics_(metrics),
        lease_timeout_(lease_timeout),
        heartbeat_interval_(heartbeat_interval) {}

  // `agent` (re)registered listing `registration.running()` at `now`: the
  // leases it no longer reports were lost with its old session; attempts it
  // reports that are not its live leases are told to stop; the resources of
  // the leases it keeps stay reserved (and only those).
  void OnRegister(AgentEntry& agent, const gyre::v1::Register& registration, bool reconnected,
                  absl::Time now, Outbox& out);
  // A heartbeat: a lease the agent has held for two heartbeat intervals yet
  // does not report (lost on its side) would otherwise wait, for as long as
  // the agent lives, for a result that never comes: it is lost and
  // re-queued. Returns whether any was.
  bool Reconcile(AgentEntry& agent, const gyre::v1::Heartbeat& heartbeat, absl::Time now,
                 Outbox& out);
  // Whether `ref` is the current attempt of a task leased to `agent` that is
  // still to run (not cancelled meanwhile).
  bool HoldsLiveLease(const AgentEntry& agent, const gyre::v1::AttemptRef& ref);
  // The agent missed the lease timeout: its leases are lost, and it is told
  // to go if it still has a stream.
  void DeclareDead(AgentEntry& agent, Outbox& out);
  // After a restart, a lease that was in flight stays with its agent, which
  // may still be running the attempt (or hold its result, not yet durable
  // at the crash): as for an agent whose stream broke, it has the lease
  // timeout to register again and keep what it reports.
  void KeepRecoveredLease(ExecutionEntry& exec, uint32_t task, absl::Time now);
  // When recovery finished: only for a lease timeout after it may an agent
  // report an attempt newer than any recorded.
  void set_recovered_at(absl::Time when) { recovered_at_ = when; }

 private:
  // `ref`, reported running by an agent that holds no lease for it, is
  // being cancelled; if it is the next attempt of a task waiting to run,
  // reported soon after a restart, its number is taken so that it is never
  // leased a second time (see the definition for the exact rule). The taking
  // is in memory (and in the next snapshot), not logged: lost in another
  // crash, it is taken again when the agent, still stopping that attempt,
  // reports it.
  void SkipUnrecordedAttempt(const AgentEntry& agent, const gyre::v1::AttemptRef& ref,
                             absl::Time now);

  ExecutionTable& executions_;
  QueueTable& queues_;
  AgentManager& agents_;
  TaskStateMachine& machine_;
  EngineMetrics& metrics_;
  const absl::Duration lease_timeout_;
  const absl::Duration heartbeat_interval_;
  absl::Time recovered_at_ = absl::InfinitePast();
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_LEASES_H_
