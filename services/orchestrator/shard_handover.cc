#include "services/orchestrator/shard_handover.h"

#include "services/orchestrator/shard_map.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

int64_t ShardHandover::Release(uint32_t shard, uint32_t shard_count, const absl::Status& moved,
                               Outbox& out) {
  // Before any is dropped: a waiter in this shard woken by it is dropped
  // with the rest below.
  for (const auto& exec : executions_.all()) {
    if (exec == nullptr || exec->released || ShardOfExecution(exec->id, shard_count) != shard) {
      continue;
    }
    for (uint32_t i = 0; i < exec->tasks.size(); ++i) machine_.AbandonGlobal(*exec, i, out);
  }
  int64_t dropped = 0;
  for (const auto& exec : executions_.all()) {
    if (exec == nullptr || exec->released || ShardOfExecution(exec->id, shard_count) != shard) {
      continue;
    }
    Drop(*exec, moved);
    dropped++;
  }
  return dropped;
}

void ShardHandover::DropFrom(uint32_t first, const absl::Status& why) {
  for (uint32_t i = first; i < executions_.size(); ++i) {
    ExecutionEntry* exec = executions_.Get(i);
    if (exec != nullptr && !exec->released) Drop(*exec, why);
  }
}

void ShardHandover::Drop(ExecutionEntry& exec, const absl::Status& why) {
  publisher_.End(exec, why);
  for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
    TaskEntry& task = exec.tasks[i];
    if (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING) {
      machine_.ReleaseLease(exec, i);
    }
    // Ready entries, scheduler batches and retry timers of the task check
    // its generation and state; both say "gone" from now on.
    task.generation++;
    machine_.CountTaskState(exec, i, v1::TASK_STATE_UNSPECIFIED);
    task.details.reset();
    task.attempts = {};
    task.dependants = {};
    task.parents = {};
    task.reason = {};
  }
  // Children its evaluators decided and did not start yet: the new owner
  // starts them (they replay with the parent's records).
  std::vector<std::string> children;
  for (const auto& [request_id, child] : evaluators_.pending_children()) {
    if (child.parent() == exec.name()) children.push_back(request_id);
  }
  for (const std::string& request_id : children) evaluators_.ChildStarted(request_id);
  exec.parked = {};
  exec.events = {};
  exec.event_reasons = {};
  exec.whole_events = {};
  exec.context = {};
  executions_.Release(exec);
}

}  // namespace gyre::orchestrator
