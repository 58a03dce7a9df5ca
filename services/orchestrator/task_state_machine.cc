#include "services/orchestrator/task_state_machine.h"

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/retry_backoff.h"
#include "services/orchestrator/task_identity.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// A retry's jitter seed: the attempt's identity (FNV-1a), stable across
// processes, unlike absl::Hash.
uint64_t RetrySeed(absl::string_view execution, absl::string_view task, int64_t attempt) {
  uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](absl::string_view bytes) {
    for (const char c : bytes) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ull;
    }
  };
  mix(execution);
  mix("/");
  mix(task);
  mix(absl::StrCat("#", attempt));
  return hash;
}

std::string TaskRunName(const ExecutionEntry& exec, const TaskEntry& task) {
  return absl::StrCat(exec.name(), "/tasks/", task.spec->id());
}

}  // namespace

ExecutionEntry& TaskStateMachine::CreateExecution(
    const v1::ExecutionStarted& record, std::shared_ptr<const v1::WorkflowDefinition> definition,
    std::shared_ptr<const workflow::DeclaredContext> declared, Outbox& out) {
  ExecutionEntry& exec =
      executions_.Build(record, std::move(definition), std::move(declared), queues_);
  v1::Event created;
  created.set_type(v1::Event::EXECUTION_CREATED);
  Emit(exec, std::move(created));
  for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
    if (exec.tasks[i].unmet_dependencies == 0) MakeReady(exec, i, out);
  }
  return exec;
}

void TaskStateMachine::SetTaskState(ExecutionEntry& exec, uint32_t index, v1::TaskState state) {
  TaskEntry& task = exec.tasks[index];
  if (task.state == state) return;
  CountTaskState(exec, index, state);

  const auto index_in_history = static_cast<uint32_t>(exec.events.size());
  exec.events.push_back(
      StoredEvent{absl::ToUnixNanos(journal_.now()), index, static_cast<uint8_t>(state), 0,
                  static_cast<uint16_t>(std::min<size_t>(task.attempts.size(), UINT16_MAX))});
  if (!task.reason.empty()) exec.event_reasons[index_in_history] = task.reason;
  publisher_.Publish(exec, index_in_history, /*closing=*/false);
}

void TaskStateMachine::CountTaskState(ExecutionEntry& exec, uint32_t index, v1::TaskState state) {
  TaskEntry& task = exec.tasks[index];
  auto counter = [&exec](v1::TaskState s) -> int32_t* {
    switch (s) {
      case v1::TASK_PENDING:
        return &exec.pending;
      case v1::TASK_READY:
        return &exec.ready;
      case v1::TASK_LEASED:
      case v1::TASK_RUNNING:
        return &exec.running;
      case v1::TASK_SUCCEEDED:
        return &exec.succeeded;
      case v1::TASK_FAILED:
      case v1::TASK_TIMED_OUT:
        return &exec.failed;
      case v1::TASK_SKIPPED:
        return &exec.skipped;
      case v1::TASK_CANCELLED:
        return &exec.cancelled;
      default:
        return nullptr;
    }
  };
  Queue& queue = queues_.at(task.queue);
  if (task.state == v1::TASK_READY) queue.queued--;
  if (state == v1::TASK_READY) queue.queued++;
  if (int32_t* from = counter(task.state)) --*from;
  if (int32_t* to = counter(state)) ++*to;
  task.state = state;
}

void TaskStateMachine::MakeReady(ExecutionEntry& exec, uint32_t index, Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  // Outputs flow along edges: a task sees what its ancestors wrote.
  for (uint32_t parent : task.parents) {
    const TaskEntry& from = exec.tasks[parent];
    const TaskDetails& passed = from.details_or_empty();
    if (passed.inherited.empty() && passed.outputs.empty()) continue;
    std::map<std::string, std::string>& inherited = task.mutable_details().inherited;
    for (const auto& [key, value] : passed.inherited) inherited[key] = value;
    for (const auto& [key, value] : passed.outputs) inherited[key] = value;
  }
  if (task.spec->global() && ResolveGlobal(exec, index, out)) return;
  task.ready_time = journal_.now();
  task.generation++;
  SetTaskState(exec, index, v1::TASK_READY);
  QueueReady(exec, index);
}

void TaskStateMachine::QueueReady(ExecutionEntry& exec, uint32_t index) {
  const TaskEntry& task = exec.tasks[index];
  if (exec.state == v1::EXECUTION_PAUSED) {
    exec.parked.push_back(index);
  } else {
    queues_.at(task.queue).ready.Push({exec.index, index, task.priority, task.generation});
  }
}

bool TaskStateMachine::ResolveGlobal(ExecutionEntry& exec, uint32_t index, Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  std::map<std::string, std::string> context = exec.context;
  TaskDetails& details = task.mutable_details();
  for (const auto& [key, value] : details.inherited) context[key] = value;
  details.identity = TaskIdentity(*task.spec, context);
  const GlobalTask* global = nullptr;
  switch (globals_.Claim(details.identity, TaskRunName(exec, task), exec.index, index, &global)) {
    case GlobalTaskTable::Verdict::kRun:
      return false;  // this execution runs it
    case GlobalTaskTable::Verdict::kSatisfied:
      details.outputs = global->outputs;
      details.satisfied_by = global->owner;
      task.reason = absl::StrCat("satisfied by global task ", global->owner);
      CompleteTask(exec, index, out);
      UpdateExecutionState(exec, out);
      return true;
    case GlobalTaskTable::Verdict::kWait:
      task.reason = absl::StrCat("waiting for global task ", global->owner);
      return true;
  }
  return false;
}

void TaskStateMachine::SettleGlobal(ExecutionEntry& exec, uint32_t index, bool succeeded,
                                    Outbox& out) {
  const TaskEntry& task = exec.tasks[index];
  const TaskDetails& details = task.details_or_empty();
  for (const auto& [exec_index, waiter] :
       globals_.Settle(details.identity, TaskRunName(exec, task), succeeded, details.outputs)) {
    ExecutionEntry* other = executions_.Get(exec_index);  // null: forgotten by retention
    // Released: its shard moved away (its new owner runs the task).
    if (other == nullptr || other->released || other->final() ||
        other->tasks[waiter].state != v1::TASK_PENDING) {
      continue;
    }
    MakeReady(*other, waiter, out);
    UpdateExecutionState(*other, out);
  }
}

void TaskStateMachine::AbandonGlobal(ExecutionEntry& exec, uint32_t index, Outbox& out) {
  const TaskEntry& task = exec.tasks[index];
  if (!task.spec->global() || IsTerminal(task.state)) return;
  SettleGlobal(exec, index, /*succeeded=*/false, out);
}

void TaskStateMachine::SkipDependants(ExecutionEntry& exec, uint32_t index,
                                      absl::string_view reason) {
  std::vector<uint32_t> stack(exec.tasks[index].dependants);
  while (!stack.empty()) {
    const uint32_t next = stack.back();
    stack.pop_back();
    TaskEntry& task = exec.tasks[next];
    if (task.state != v1::TASK_PENDING) continue;
    task.reason = std::string(reason);
    task.generation++;
    SetTaskState(exec, next, v1::TASK_SKIPPED);
    stack.insert(stack.end(), task.dependants.begin(), task.dependants.end());
  }
}

void TaskStateMachine::CompleteTask(ExecutionEntry& exec, uint32_t index, Outbox& out) {
  SetTaskState(exec, index, v1::TASK_SUCCEEDED);
  if (exec.tasks[index].spec->global()) SettleGlobal(exec, index, /*succeeded=*/true, out);
  for (uint32_t dependant : exec.tasks[index].dependants) {
    TaskEntry& next = exec.tasks[dependant];
    if (next.unmet_dependencies > 0) next.unmet_dependencies--;
    if (next.unmet_dependencies == 0 && next.state == v1::TASK_PENDING &&
        exec.state != v1::EXECUTION_CANCELLED) {
      MakeReady(exec, dependant, out);
    }
  }
}

void TaskStateMachine::FailOrRetry(ExecutionEntry& exec, uint32_t index, v1::TaskState final_state,
                                   Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  const v1::RetryPolicy& retry = task.spec->retry();
  if (task.retries_used < retry.max_retries() && exec.state != v1::EXECUTION_CANCELLED) {
    task.retries_used++;
    RetryBackoffPolicy policy;
    if (retry.has_initial_backoff()) policy.initial = FromProto(retry.initial_backoff());
    if (retry.has_max_backoff()) policy.max = FromProto(retry.max_backoff());
    if (retry.multiplier() >= 1) policy.multiplier = retry.multiplier();
    if (retry.jitter() > 0) policy.jitter = retry.jitter();
    // Jitter drawn from the attempt's own seed: replay computes the same
    // delay (and the same reason, which watchers saw).
    std::mt19937_64 random(RetrySeed(exec.id, task.spec->id(), task.attempt));
    const absl::Duration delay = RetryDelay(policy, task.attempt + 1, random);
    // Why the attempt failed comes first: the retry's reason is what a
    // watcher sees of the failure.
    const std::string& error = task.attempts.empty() ? "" : task.attempts.back().error;
    task.reason = absl::StrCat(error, error.empty() ? "" : "; ", "retry ", task.retries_used,
                               " of ", retry.max_retries(), " in ",
                               absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1))));
    task.generation++;
    if (logging::Enabled(logging::Level::kDebug) && !journal_.replaying()) {
      out.Log(logging::Level::kDebug, "retry scheduled",
              {{"execution", exec.name()},
               {"task", task.spec->id()},
               {"failed_attempt", task.attempt},
               {"delay_seconds", absl::ToDoubleSeconds(delay)},
               {"error", error}});
    }
    SetTaskState(exec, index, v1::TASK_PENDING);
    ScheduleRetry(exec, index, delay, out);
    return;
  }
  task.reason = task.attempts.empty() || task.attempts.back().error.empty()
                    ? "failed"
                    : task.attempts.back().error;
  SetTaskState(exec, index, final_state);
  if (task.spec->global()) SettleGlobal(exec, index, /*succeeded=*/false, out);
  SkipDependants(exec, index, absl::StrCat("dependency \"", task.spec->id(), "\" failed"));
}

void TaskStateMachine::ScheduleRetry(ExecutionEntry& exec, uint32_t index, absl::Duration delay,
                                     Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  // Until it is ready again, ready_time is when the retry is due (kept in
  // snapshots, so that a restart keeps the backoff). In replay it counts
  // from the failure's record, so the timer waits only what is left.
  task.ready_time = journal_.now() + delay;
  out.retries.push_back({exec.index, index, task.generation, task.ready_time});
}

void TaskStateMachine::RetryDue(ExecutionEntry& exec, uint32_t index, Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  task.reason.clear();
  MakeReady(exec, index, out);
  v1::StateRecord record;
  v1::TaskRetryDue& due = *record.mutable_task_retry_due();
  due.set_execution_id(exec.id);
  due.set_task_id(task.spec->id());
  due.set_attempt(task.attempt);
  journal_.Persist(record);
}

void TaskStateMachine::Requeue(ExecutionEntry& exec, uint32_t index, absl::string_view why,
                               Outbox& out) {
  if (exec.final()) return;
  // Says which attempt and agent, so a follower sees the loss where it is.
  exec.tasks[index].reason = absl::StrCat("re-queued: its agent was lost (attempt ",
                                          exec.tasks[index].attempt, ": ", why, ")");
  MakeReady(exec, index, out);
}

void TaskStateMachine::UpdateExecutionState(ExecutionEntry& exec, Outbox& out) {
  if (exec.final()) return;
  if (exec.pending + exec.ready + exec.running == 0) {
    exec.end_time = journal_.now();
    if (exec.failed > 0) {
      exec.reason = absl::StrCat(exec.failed, " task(s) failed");
      SetExecutionState(exec, v1::EXECUTION_FAILED, out);
    } else {
      SetExecutionState(exec, v1::EXECUTION_SUCCEEDED, out);
    }
    return;
  }
  if (exec.state == v1::EXECUTION_PENDING && exec.running > 0) {
    exec.start_time = journal_.now();
    SetExecutionState(exec, v1::EXECUTION_RUNNING, out);
  }
}

void TaskStateMachine::SetExecutionState(ExecutionEntry& exec, v1::ExecutionState state,
                                         Outbox& out) {
  if (exec.state == state) return;
  executions_.CountState(exec, exec.state, state);
  exec.state = state;
  if (exec.final() && exec.end_time == absl::InfinitePast()) exec.end_time = journal_.now();
  if (exec.final()) executions_.Ended(exec);
  v1::Event event;
  event.set_type(v1::Event::EXECUTION_STATE_CHANGED);
  Emit(exec, std::move(event));
  if (exec.final()) {
    out.ended.push_back({exec.name(), state, exec.succeeded, exec.failed, exec.skipped});
    // Replay rebuilds executions that ended before: counted once, live.
    if (!journal_.replaying()) {
      metrics_.ObserveExecutionDuration(absl::ToDoubleSeconds(exec.end_time - exec.create_time));
    }
  }
}

void TaskStateMachine::Emit(ExecutionEntry& exec, v1::Event event) {
  const auto index = static_cast<uint32_t>(exec.events.size());
  const absl::Time now = journal_.now();
  event.set_execution(exec.name());
  event.set_sequence(static_cast<int64_t>(index) + 1);
  *event.mutable_time() = ToProto(now);
  *event.mutable_execution_snapshot() = ExecutionProto(exec);
  const bool closing = exec.final() && event.type() == v1::Event::EXECUTION_STATE_CHANGED;
  exec.events.push_back(StoredEvent{absl::ToUnixNanos(now)});
  exec.whole_events.emplace(index, std::move(event));
  publisher_.Publish(exec, index, closing);
}

void TaskStateMachine::Lease(ExecutionEntry& exec, uint32_t index, const std::string& agent_id,
                             int64_t attempt) {
  TaskEntry& task = exec.tasks[index];
  // Queued entries and pending retry timers of this task go stale.
  task.generation++;
  task.attempt = attempt;
  task.agent = agent_id;
  task.lease_time = journal_.now();
  // Why it waited ("re-queued: ...") no longer applies; its event keeps it.
  task.reason.clear();
  AttemptRecord& record = task.attempts.emplace_back();
  record.attempt = attempt;
  record.agent = agent_id;
  record.lease_time = absl::ToUnixNanos(task.lease_time);
}

void TaskStateMachine::ReleaseLease(ExecutionEntry& exec, uint32_t index) {
  TaskEntry& task = exec.tasks[index];
  AgentEntry* agent = agents_.Find(task.agent);
  if (agent != nullptr && agent->leases.erase({exec.index, index}) > 0) {
    v1::Resources scratch;
    AgentManager::Unreserve(*agent, AgentManager::LeaseNeed(*agent, task, scratch));
    queues_.at(task.queue).running--;
  }
  task.agent.clear();
}

bool TaskStateMachine::StartAttempt(ExecutionEntry& exec, uint32_t index, int64_t attempt) {
  TaskEntry& task = exec.tasks[index];
  if (task.attempt != attempt || task.state != v1::TASK_LEASED || task.attempts.empty()) {
    return false;
  }
  task.attempts.back().start_time = absl::ToUnixNanos(journal_.now());
  SetTaskState(exec, index, v1::TASK_RUNNING);
  // Not waited for: the next group commit takes it along; a stream shows
  // the RUNNING event only once it is durable (AwaitDurable).
  v1::StateRecord record;
  v1::AttemptStarted& started = *record.mutable_attempt_started();
  started.set_execution_id(exec.id);
  started.set_task_id(task.spec->id());
  started.set_attempt(attempt);
  journal_.Persist(record);
  return true;
}

void TaskStateMachine::LoseAttempt(ExecutionEntry& exec, uint32_t index, std::string error,
                                   Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  v1::StateRecord record;
  v1::AttemptLost& lost = *record.mutable_attempt_lost();
  lost.set_execution_id(exec.id);
  lost.set_task_id(task.spec->id());
  lost.set_attempt(task.attempt);
  lost.set_error(error);
  if (!task.attempts.empty()) {
    AttemptRecord& attempt = task.attempts.back();
    attempt.outcome = v1::ATTEMPT_LOST;
    attempt.error = std::move(error);
    attempt.end_time = absl::ToUnixNanos(journal_.now());
  }
  metrics_.CountOutcome(v1::ATTEMPT_LOST);
  if (logging::Enabled(logging::Level::kDebug) && !journal_.replaying()) {
    out.Log(logging::Level::kDebug, "attempt lost",
            {{"execution", exec.name()},
             {"task", task.spec->id()},
             {"attempt", task.attempt},
             {"agent", task.agent},
             {"why", lost.error()}});
  }
  ReleaseLease(exec, index);
  if (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING) {
    Requeue(exec, index, lost.error(), out);
  }
  // Recorded after its events, before any lease of the task again.
  journal_.Persist(record);
}

void TaskStateMachine::FailNotStarted(ExecutionEntry& exec, uint32_t index,
                                      const std::string& agent_id, int64_t attempt,
                                      std::string error, Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  v1::StateRecord record;
  v1::AttemptNotStarted& failed = *record.mutable_attempt_not_started();
  failed.set_execution_id(exec.id);
  failed.set_task_id(task.spec->id());
  failed.set_attempt(attempt);
  failed.set_agent_id(agent_id);
  failed.set_error(error);
  AttemptRecord& last = task.attempts.back();
  last.outcome = v1::ATTEMPT_FAILED;
  last.error = std::move(error);
  // Expanding it again would fail the same way: not retried.
  task.retries_used = task.spec->retry().max_retries();
  FailOrRetry(exec, index, v1::TASK_FAILED, out);
  UpdateExecutionState(exec, out);
  journal_.Persist(record);
}

void TaskStateMachine::SetPriority(ExecutionEntry& exec, uint32_t index, int32_t priority) {
  TaskEntry& task = exec.tasks[index];
  task.priority = static_cast<uint8_t>(std::clamp(priority, 0, 100));
  // While paused, a READY task's queue entry may be parked on its way out:
  // its priority is read again when it is queued on resume. A second entry
  // of the same generation would let one dispatch lease it twice.
  if (task.state != v1::TASK_READY || exec.state == v1::EXECUTION_PAUSED) return;
  task.generation++;
  QueueReady(exec, index);
}

void TaskStateMachine::SetPriority(ExecutionEntry& exec, int32_t priority) {
  exec.priority = priority;
  for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
    const v1::TaskState state = exec.tasks[i].state;
    if (state == v1::TASK_PENDING || state == v1::TASK_READY) SetPriority(exec, i, priority);
  }
}

void TaskStateMachine::Cancel(ExecutionEntry& exec, absl::string_view reason, Outbox& out) {
  exec.reason = reason.empty() ? "cancelled by a client" : std::string(reason);
  for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
    TaskEntry& task = exec.tasks[i];
    if (IsTerminal(task.state)) continue;
    if (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING) {
      AgentEntry* agent = agents_.Find(task.agent);
      if (agent != nullptr && agent->channel != nullptr) {
        v1::AttemptRef ref;
        ref.set_execution(exec.name());
        ref.set_task_id(task.spec->id());
        ref.set_attempt(task.attempt);
        agent->channel->Send(CancelMessage(std::move(ref)));
      }
    }
    task.generation++;
    task.reason = "execution cancelled";
    SetTaskState(exec, i, v1::TASK_CANCELLED);
    if (task.spec->global()) SettleGlobal(exec, i, /*succeeded=*/false, out);
  }
  SetExecutionState(exec, v1::EXECUTION_CANCELLED, out);
}

void TaskStateMachine::Resume(ExecutionEntry& exec, Outbox& out) {
  // Back to what its tasks say: an execution paused before any task ran is
  // PENDING again (RUNNING would claim a start that never happened, with no
  // start_time); UpdateExecutionState moves it on as tasks run.
  SetExecutionState(
      exec, exec.start_time != absl::InfinitePast() ? v1::EXECUTION_RUNNING : v1::EXECUTION_PENDING,
      out);
  for (uint32_t task : exec.parked) {
    TaskEntry& entry = exec.tasks[task];
    if (entry.state != v1::TASK_READY) continue;
    queues_.at(entry.queue).ready.Push({exec.index, task, entry.priority, entry.generation});
  }
  exec.parked.clear();
  UpdateExecutionState(exec, out);
}

}  // namespace gyre::orchestrator
