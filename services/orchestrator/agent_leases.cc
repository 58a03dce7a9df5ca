#include "services/orchestrator/agent_leases.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

void AgentLeases::OnRegister(AgentEntry& agent, const v1::Register& registration, bool reconnected,
                             absl::Time now, Outbox& out) {
  // The registration offered its whole resources: what its leases hold is
  // reserved again first, so that a lease lost below gives back only what
  // it held (given back on top of the whole offer, it let the agent be
  // given more than it has).
  for (const auto& lease : agent.leases) {
    v1::Resources scratch;
    AgentManager::Reserve(
        agent,
        AgentManager::LeaseNeed(agent, executions_.at(lease.first).tasks[lease.second], scratch));
  }
  if (reconnected) {
    // Leases the agent no longer reports were lost with the old session.
    // What it runs for another orchestrator counts: a lease adopted with
    // that orchestrator's shard is still running (not lost, not re-run).
    absl::flat_hash_set<std::string> still_running;
    for (const auto* refs : {&registration.running(), &registration.running_elsewhere()}) {
      for (const v1::AttemptRef& ref : *refs) {
        still_running.insert(absl::StrCat(ref.execution(), "/", ref.task_id(), "#", ref.attempt()));
      }
    }
    std::vector<std::pair<uint32_t, uint32_t>> lost;
    for (const auto& lease : agent.leases) {
      const ExecutionEntry& exec = executions_.at(lease.first);
      const TaskEntry& task = exec.tasks[lease.second];
      if (!still_running.contains(
              absl::StrCat(exec.name(), "/", task.spec->id(), "#", task.attempt))) {
        lost.push_back(lease);
      }
    }
    for (const auto& [exec_index, task] : lost) {
      machine_.LoseAttempt(executions_.at(exec_index), task,
                           absl::StrCat("agent ", agent.id, " came back without it"), out);
    }
  }
  // Attempts it reports that are not its live leases (any more): re-queued
  // while it was away, never known (it was declared dead), or cancelled
  // while no cancel could reach it. Another attempt may be running
  // elsewhere; this one must stop.
  for (const v1::AttemptRef& ref : registration.running()) {
    if (HoldsLiveLease(agent, ref)) continue;
    agent.channel->Send(CancelMessage(ref));
    SkipUnrecordedAttempt(agent, ref, now);
  }
}

bool AgentLeases::Reconcile(AgentEntry& agent, const v1::Heartbeat& heartbeat, absl::Time now,
                            Outbox& out) {
  if (agent.leases.empty()) return false;
  absl::flat_hash_set<std::pair<uint32_t, uint32_t>> reported;
  for (const v1::AttemptRef& ref : heartbeat.running()) {
    const TaskLocation found = executions_.FindTask(ref);
    if (found && found.entry().attempt == ref.attempt()) {
      reported.insert({found.execution->index, found.task});
    }
  }
  // A lease younger than this may be on its way to the agent still.
  const absl::Time settled = now - 2 * heartbeat_interval_;
  std::vector<std::pair<uint32_t, uint32_t>> gone;
  for (const auto& lease : agent.leases) {
    const TaskEntry& task = executions_.at(lease.first).tasks[lease.second];
    if (!reported.contains(lease) && task.lease_time < settled) gone.push_back(lease);
  }
  if (gone.empty()) return false;
  out.Log(logging::Level::kWarn, "leases the agent no longer reports running were re-queued",
          {{"agent", agent.id}, {"requeued", static_cast<int64_t>(gone.size())}});
  for (const auto& [exec_index, index] : gone) {
    machine_.LoseAttempt(executions_.at(exec_index), index,
                         absl::StrCat("agent ", agent.id, " no longer reports it running"), out);
  }
  return true;
}

bool AgentLeases::HoldsLiveLease(const AgentEntry& agent, const v1::AttemptRef& ref) {
  const TaskLocation found = executions_.FindTask(ref);
  if (!found || !agent.leases.contains({found.execution->index, found.task})) return false;
  const TaskEntry& task = found.entry();
  return task.attempt == ref.attempt() &&
         (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING);
}

void AgentLeases::SkipUnrecordedAttempt(const AgentEntry& agent, const v1::AttemptRef& ref,
                                        absl::Time now) {
  const TaskLocation found = executions_.FindTask(ref);
  if (!found) return;
  TaskEntry& task = found.entry();
  // An attempt newer than any recorded was leased just before a crash, its
  // lease not yet durable. Its number must not be handed out again: the
  // same agent would get a second attempt it cannot tell from the first
  // (one key, one working directory) while the first is still stopping.
  // That is the only case: the very next number, of a task waiting to run
  // on a queue this agent serves, reported within a lease timeout of the
  // restart. Anything else an agent claims it was never leased, and it is
  // only told to cancel (an agent must not be able to move another's task
  // to any attempt number it likes).
  if (ref.attempt() != task.attempt + 1 || task.state != v1::TASK_READY ||
      now - recovered_at_ > lease_timeout_ || !agent.serves(task.queue)) {
    return;
  }
  task.attempt = ref.attempt();
  AttemptRecord& record = task.attempts.emplace_back();
  record.attempt = ref.attempt();
  record.agent = agent.id;
  record.outcome = v1::ATTEMPT_LOST;
  record.error =
      "leased just before the orchestrator restarted, the lease not yet recorded; "
      "stopped when its agent reported it";
  record.end_time = absl::ToUnixNanos(now);
  metrics_.CountOutcome(v1::ATTEMPT_LOST);
}

void AgentLeases::DeclareDead(AgentEntry& agent, Outbox& out) {
  out.Log(logging::Level::kWarn, "agent declared dead: no message within the lease timeout",
          {{"agent", agent.id},
           {"lease_timeout_seconds", absl::ToDoubleSeconds(lease_timeout_)},
           {"requeued", static_cast<int64_t>(agent.leases.size())}});
  const std::vector<std::pair<uint32_t, uint32_t>> leases(agent.leases.begin(), agent.leases.end());
  for (const auto& [exec_index, task] : leases) {
    machine_.LoseAttempt(executions_.at(exec_index), task,
                         absl::StrCat("agent ", agent.id, " missed heartbeats"), out);
  }
  if (agent.channel != nullptr) {
    v1::OrchestratorMessage shutdown;
    shutdown.mutable_shutdown()->set_reason("declared dead after missing heartbeats");
    agent.channel->Send(std::move(shutdown));
  }
}

void AgentLeases::KeepRecoveredLease(ExecutionEntry& exec, uint32_t index, absl::Time now) {
  const TaskEntry& task = exec.tasks[index];
  // Known only by its leases until it registers again: no channel, so
  // nothing is dispatched to it, and the lease timeout counts from now.
  AgentEntry& agent = agents_.KnownByLease(task.agent, now);
  // An agent registered already (a shard adopted from another orchestrator
  // while the agent is connected here too) will not register again to
  // reserve what its leases hold: reserved now.
  if (agent.channel != nullptr) {
    v1::Resources scratch;
    AgentManager::Reserve(agent, AgentManager::LeaseNeed(agent, task, scratch));
  }
  agent.leases.insert({exec.index, index});
  queues_.at(task.queue).running++;
}

}  // namespace gyre::orchestrator
