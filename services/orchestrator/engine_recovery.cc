#include "services/orchestrator/engine_recovery.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/orchestrator/task_output.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// The task a record names; DataLoss naming `what` when the history does not
// know it (a record of a newer or another Gyre, or a damaged log).
absl::StatusOr<TaskLocation> RecordedTask(ExecutionTable& executions,
                                          const std::string& execution_id,
                                          const std::string& task_id, absl::string_view what) {
  ExecutionEntry* exec = executions.Find(execution_id);
  if (exec == nullptr) return absl::DataLossError(absl::StrCat(what, " of an unknown execution"));
  auto task = exec->task_index.find(task_id);
  if (task == exec->task_index.end()) {
    return absl::DataLossError(absl::StrCat(what, " of an unknown task"));
  }
  return TaskLocation{exec, task->second};
}

}  // namespace

absl::Status EngineRecovery::ApplyRecord(const v1::StateRecord& record, Outbox& out) {
  switch (record.kind_case()) {
    case v1::StateRecord::kWorkflowStored: {
      workflows_.Restore(
          std::make_shared<const v1::WorkflowDefinition>(record.workflow_stored().definition()));
      return absl::OkStatus();
    }
    case v1::StateRecord::kWorkflowDeleted:
      workflows_.Remove(record.workflow_deleted().name());
      return absl::OkStatus();
    case v1::StateRecord::kExecutionStarted: {
      const v1::ExecutionStarted& started = record.execution_started();
      ExecutionEntry& exec = machine_.CreateExecution(
          started, std::make_shared<const v1::WorkflowDefinition>(started.definition()), nullptr,
          out);
      evaluators_.ChildStarted(started.request_id());
      machine_.UpdateExecutionState(exec, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kTaskLeased: {
      const v1::TaskLeased& leased = record.task_leased();
      absl::StatusOr<TaskLocation> found =
          RecordedTask(executions_, leased.execution_id(), leased.task_id(), "lease");
      if (!found.ok()) return found.status();
      ExecutionEntry& exec = *found->execution;
      machine_.Lease(exec, found->task, leased.agent_id(), leased.attempt());
      machine_.SetTaskState(exec, found->task, v1::TASK_LEASED);
      machine_.UpdateExecutionState(exec, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kTaskResult: {
      ParsedOutput parsed = RecordedOutput(record.task_result());
      results_.HandleResult(record.task_result().agent_id(), record.task_result().result(), parsed,
                            nullptr, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kExecutionControl: {
      const v1::ExecutionControl& control = record.execution_control();
      ExecutionEntry* exec = executions_.Find(control.execution_id());
      if (exec == nullptr) return absl::DataLossError("control of an unknown execution");
      if (control.action() == v1::ExecutionControl::CANCEL) {
        machine_.Cancel(*exec, control.reason(), out);
      }
      if (control.action() == v1::ExecutionControl::PAUSE) {
        machine_.SetExecutionState(*exec, v1::EXECUTION_PAUSED, out);
      }
      if (control.action() == v1::ExecutionControl::RESUME) machine_.Resume(*exec, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kAttemptStarted: {
      const v1::AttemptStarted& started = record.attempt_started();
      absl::StatusOr<TaskLocation> found =
          RecordedTask(executions_, started.execution_id(), started.task_id(), "start");
      if (!found.ok()) return found.status();
      machine_.StartAttempt(*found->execution, found->task, started.attempt());
      return absl::OkStatus();
    }
    case v1::StateRecord::kAttemptLost: {
      const v1::AttemptLost& lost = record.attempt_lost();
      absl::StatusOr<TaskLocation> found =
          RecordedTask(executions_, lost.execution_id(), lost.task_id(), "lost attempt");
      if (!found.ok()) return found.status();
      const TaskEntry& entry = found->entry();
      if (entry.attempt == lost.attempt() && !entry.attempts.empty()) {
        machine_.LoseAttempt(*found->execution, found->task, lost.error(), out);
      }
      return absl::OkStatus();
    }
    case v1::StateRecord::kTaskRetryDue: {
      const v1::TaskRetryDue& due = record.task_retry_due();
      absl::StatusOr<TaskLocation> found =
          RecordedTask(executions_, due.execution_id(), due.task_id(), "retry");
      if (!found.ok()) return found.status();
      const TaskEntry& entry = found->entry();
      if (entry.state == v1::TASK_PENDING && entry.attempt == due.attempt()) {
        machine_.RetryDue(*found->execution, found->task, out);
      }
      return absl::OkStatus();
    }
    case v1::StateRecord::kAttemptNotStarted: {
      const v1::AttemptNotStarted& failed = record.attempt_not_started();
      absl::StatusOr<TaskLocation> found =
          RecordedTask(executions_, failed.execution_id(), failed.task_id(), "attempt");
      if (!found.ok()) return found.status();
      machine_.Lease(*found->execution, found->task, failed.agent_id(), failed.attempt());
      machine_.FailNotStarted(*found->execution, found->task, failed.agent_id(), failed.attempt(),
                              failed.error(), out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kPriorityChanged: {
      const v1::PriorityChanged& changed = record.priority_changed();
      if (changed.task_id().empty()) {
        ExecutionEntry* exec = executions_.Find(changed.execution_id());
        if (exec == nullptr) return absl::DataLossError("priority of an unknown execution");
        machine_.SetPriority(*exec, changed.priority());
        return absl::OkStatus();
      }
      absl::StatusOr<TaskLocation> found =
          RecordedTask(executions_, changed.execution_id(), changed.task_id(), "priority");
      if (!found.ok()) return found.status();
      machine_.SetPriority(*found->execution, found->task, changed.priority());
      return absl::OkStatus();
    }
    case v1::StateRecord::kExecutionsExpired:
      // Forgotten as live (an id already gone is skipped: replay is idempotent).
      for (const std::string& id : record.executions_expired().execution_ids()) {
        executions_.Forget(id);
      }
      return absl::OkStatus();
    case v1::StateRecord::kTaskLogsExpired:
      for (const std::string& id : record.task_logs_expired().execution_ids()) {
        executions_.DropLogs(id, journal_.now());
      }
      return absl::OkStatus();
    default:
      return absl::DataLossError("state record of an unknown kind (written by a newer Gyre?)");
  }
}

void EngineRecovery::SettleInFlight(absl::Time now, Outbox& out, int64_t* kept, int64_t* requeued,
                                    uint32_t first) {
  // Children an evaluator started whose start never reached the log.
  for (const auto& [request_id, child] : evaluators_.pending_children()) {
    if (first > 0) {
      const ExecutionEntry* parent = executions_.Find(child.parent());
      if (parent == nullptr || parent->index < first) continue;
    }
    out.child_starts.push_back(child);
  }
  for (uint32_t e = first; e < executions_.size(); ++e) {
    ExecutionEntry* exec = executions_.Get(e);
    if (exec == nullptr || exec->final() || exec->released) continue;
    for (uint32_t i = 0; i < exec->tasks.size(); ++i) {
      TaskEntry& task = exec->tasks[i];
      if (task.state != v1::TASK_LEASED && task.state != v1::TASK_RUNNING) continue;
      if (!task.agent.empty()) {
        leases_.KeepRecoveredLease(*exec, i, now);
        ++*kept;
        continue;
      }
      machine_.LoseAttempt(*exec, i, "the orchestrator restarted during the attempt", out);
      ++*requeued;
    }
  }
}

}  // namespace gyre::orchestrator
