// EngineRecovery's snapshot half: the engine's whole state to and from an
// EngineSnapshot.
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "services/orchestrator/engine_recovery.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/shard_map.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// `field` is called (creating the field) only when `time` is set: an unset
// time must stay absent, not be saved as the epoch.
template <typename Field>
void SetTimeIfSet(absl::Time time, absl::Time unset, Field field) {
  if (time != unset) *field() = ToProto(time);
}

// What a shard's snapshot iterates instead of the engine-wide tables.
const std::map<std::string, WorkflowRegistry::Versions>& NoWorkflows() {
  static const auto* none = new std::map<std::string, WorkflowRegistry::Versions>();
  return *none;
}
const absl::flat_hash_map<std::string, GlobalTask>& NoGlobals() {
  static const auto* none = new absl::flat_hash_map<std::string, GlobalTask>();
  return *none;
}

absl::Time TimeOr(const google::protobuf::Timestamp& time, bool present, absl::Time unset) {
  return present ? FromProto(time) : unset;
}

void EncodeEventHistory(const std::vector<StoredEvent>& events, v1::ExecutionSnapshot* out) {
  out->mutable_event_unix_nanos()->Reserve(static_cast<int>(events.size()));
  out->mutable_event_entries()->Reserve(static_cast<int>(events.size()));
  for (const StoredEvent& event : events) {
    out->add_event_unix_nanos(event.unix_nanos);
    out->add_event_entries(uint64_t{event.task} << 32 | uint64_t{event.attempts} << 8 |
                           event.state);
  }
}

absl::Status DecodeEventHistory(const v1::ExecutionSnapshot& saved,
                                std::vector<StoredEvent>* events) {
  if (saved.event_unix_nanos_size() != saved.event_entries_size()) {
    return absl::DataLossError(absl::StrCat("event history has ", saved.event_unix_nanos_size(),
                                            " times for ", saved.event_entries_size(), " entries"));
  }
  events->resize(static_cast<size_t>(saved.event_entries_size()));
  for (int i = 0; i < saved.event_entries_size(); ++i) {
    const uint64_t entry = saved.event_entries(i);
    StoredEvent& event = (*events)[static_cast<size_t>(i)];
    event.unix_nanos = saved.event_unix_nanos(i);
    event.task = static_cast<uint32_t>(entry >> 32);
    event.attempts = static_cast<uint16_t>(entry >> 8);
    event.state = static_cast<uint8_t>(entry);
  }
  return absl::OkStatus();
}

// Written in place (the snapshot lives on an arena). Empty strings are left
// unset: setting even "" takes a string, and there are millions of tasks.
void FillSnapshot(const TaskEntry& task, v1::TaskSlotSnapshot* out) {
  out->set_state(task.state);
  out->set_unmet_dependencies(task.unmet_dependencies);
  out->set_attempt(task.attempt);
  out->set_retries_used(task.retries_used);
  if (!task.agent.empty()) out->set_agent(task.agent);
  SetTimeIfSet(task.ready_time, absl::Time(), [&] { return out->mutable_ready_time(); });
  SetTimeIfSet(task.lease_time, absl::Time(), [&] { return out->mutable_lease_time(); });
  for (const AttemptRecord& attempt : task.attempts) FillProto(attempt, out->add_attempts());
  if (!task.reason.empty()) out->set_reason(task.reason);
  out->set_priority(task.priority);
  if (task.details == nullptr) return;
  const TaskDetails& details = *task.details;
  out->mutable_outputs()->insert(details.outputs.begin(), details.outputs.end());
  out->mutable_inherited()->insert(details.inherited.begin(), details.inherited.end());
  if (!details.identity.empty()) out->set_identity(details.identity);
  if (!details.satisfied_by.empty()) out->set_satisfied_by(details.satisfied_by);
  for (const auto& [attempt, logs] : details.logs) {
    v1::AttemptLogsSnapshot& saved = *out->add_logs();
    saved.set_attempt(attempt);
    saved.set_stdout_tail(logs.stdout_tail);
    saved.set_stderr_tail(logs.stderr_tail);
    saved.set_truncated(logs.truncated);
  }
}

// Moves `from`'s contents into `task`.
void RestoreTask(v1::TaskSlotSnapshot& from, TaskEntry& task) {
  task.unmet_dependencies = from.unmet_dependencies();
  task.attempt = from.attempt();
  task.retries_used = from.retries_used();
  task.agent = std::move(*from.mutable_agent());
  task.ready_time = TimeOr(from.ready_time(), from.has_ready_time(), absl::Time());
  task.lease_time = TimeOr(from.lease_time(), from.has_lease_time(), absl::Time());
  task.attempts.reserve(static_cast<size_t>(from.attempts_size()));
  for (const v1::TaskAttempt& attempt : from.attempts())
    task.attempts.push_back(FromProto(attempt));
  task.reason = std::move(*from.mutable_reason());
  task.priority = static_cast<uint8_t>(std::clamp(from.priority(), 0, 100));
  if (from.outputs().empty() && from.inherited().empty() && from.identity().empty() &&
      from.satisfied_by().empty() && from.logs().empty()) {
    return;  // nothing that needs TaskDetails
  }
  TaskDetails& details = task.mutable_details();
  details.outputs.insert(from.outputs().begin(), from.outputs().end());
  details.inherited.insert(from.inherited().begin(), from.inherited().end());
  details.identity = std::move(*from.mutable_identity());
  details.satisfied_by = std::move(*from.mutable_satisfied_by());
  for (v1::AttemptLogsSnapshot& saved : *from.mutable_logs()) {
    AttemptLogs& logs = details.logs[saved.attempt()];
    logs.stdout_tail = std::move(*saved.mutable_stdout_tail());
    logs.stderr_tail = std::move(*saved.mutable_stderr_tail());
    logs.truncated = saved.truncated();
  }
}

}  // namespace

void EngineRecovery::Snapshot(v1::EngineSnapshot& snapshot,
                              std::vector<std::shared_ptr<const v1::WorkflowDefinition>>* lent,
                              std::optional<ShardScope> shard) const {
  // Definitions never change once stored: they are lent to the snapshot,
  // not copied (a million-task execution's definition is most of it).
  auto lend = [lent](const std::shared_ptr<const v1::WorkflowDefinition>& definition) {
    lent->push_back(definition);
    return const_cast<v1::WorkflowDefinition*>(definition.get());
  };
  auto in_scope = [&shard](absl::string_view execution) {
    return !shard.has_value() || ShardOfExecution(execution, shard->count) == shard->shard;
  };
  // Each workflow's versions in the order stored.
  for (const auto& [name, versions] : shard.has_value() ? NoWorkflows() : workflows_.all()) {
    for (const auto& definition : versions) {
      snapshot.mutable_workflows()->UnsafeArenaAddAllocated(lend(definition));
    }
  }
  if (!shard.has_value()) snapshot.set_executions_started(executions_.started());
  // Forgotten executions (retention) and released ones (their shard moved)
  // are left out, so the live ones are renumbered: slot_of maps an index to
  // its place in the snapshot, which a restore gives it as its index.
  std::vector<uint32_t> slot_of(executions_.size(), UINT32_MAX);
  for (const auto& exec : executions_.all()) {
    if (exec == nullptr || exec->released || !in_scope(exec->id)) continue;
    slot_of[exec->index] = static_cast<uint32_t>(snapshot.executions_size());
    v1::ExecutionSnapshot& out = *snapshot.add_executions();
    v1::ExecutionStarted& started = *out.mutable_started();
    started.set_execution_id(exec->id);
    started.unsafe_arena_set_allocated_definition(lend(exec->definition));
    started.mutable_context()->insert(exec->context.begin(), exec->context.end());
    for (const std::string& key : exec->secret_keys) started.add_secret_keys(key);
    started.set_parent(exec->parent);
    for (const std::string& target : exec->targets) started.add_targets(target);
    started.set_priority(exec->priority);
    started.set_request_id(exec->request_id);
    started.set_request_fingerprint(exec->request_fingerprint);
    started.set_context_rules(exec->context_rules);
    *started.mutable_create_time() = ToProto(exec->create_time);
    out.set_state(exec->state);
    out.set_reason(exec->reason);
    SetTimeIfSet(exec->start_time, absl::InfinitePast(), [&] { return out.mutable_start_time(); });
    SetTimeIfSet(exec->end_time, absl::InfinitePast(), [&] { return out.mutable_end_time(); });
    out.mutable_tasks()->Reserve(static_cast<int>(exec->tasks.size()));
    for (const TaskEntry& task : exec->tasks) FillSnapshot(task, out.add_tasks());
    EncodeEventHistory(exec->events, &out);
    out.mutable_event_reasons()->insert(exec->event_reasons.begin(), exec->event_reasons.end());
    out.mutable_whole_events()->insert(exec->whole_events.begin(), exec->whole_events.end());
    out.set_children_started(exec->children_started);
    if (exec->logs_expired != absl::InfinitePast()) {
      out.set_logs_expired_unix_nanos(absl::ToUnixNanos(exec->logs_expired));
    }
  }
  for (const auto& [identity, global] : shard.has_value() ? NoGlobals() : globals_.all()) {
    v1::GlobalTaskSnapshot& out = *snapshot.add_global_tasks();
    out.set_identity(identity);
    out.set_owner(global.owner);
    out.set_succeeded(global.succeeded);
    out.mutable_outputs()->insert(global.outputs.begin(), global.outputs.end());
    for (const auto& [exec_index, task] : global.waiters) {
      if (slot_of[exec_index] == UINT32_MAX) continue;  // forgotten or released
      v1::GlobalTaskWaiter& waiter = *out.add_waiters();
      waiter.set_execution_slot(slot_of[exec_index]);
      waiter.set_task_index(task);
    }
  }
  for (const auto& [request_id, child] : evaluators_.pending_children()) {
    if (!in_scope(child.parent())) continue;
    *snapshot.add_pending_child_starts() = child;
  }
}

absl::Status EngineRecovery::Restore(v1::EngineSnapshot snapshot, Outbox& out, bool into_live) {
  if (into_live) {
    // One shard's executions join the live ones: nothing global comes.
    if (snapshot.workflows_size() > 0 || snapshot.global_tasks_size() > 0) {
      return absl::InvalidArgumentError(
          "a shard's snapshot holds no workflow definitions and no global tasks");
    }
    for (const v1::ExecutionSnapshot& saved : snapshot.executions()) {
      if (executions_.Find(saved.started().execution_id()) != nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "snapshot: execution ", saved.started().execution_id(), " is already here"));
      }
    }
  } else if (executions_.size() > 0 || !workflows_.empty()) {
    return absl::FailedPreconditionError("a snapshot can only be restored into an empty engine");
  }
  for (v1::WorkflowDefinition& definition : *snapshot.mutable_workflows()) {
    workflows_.Restore(std::make_shared<const v1::WorkflowDefinition>(std::move(definition)));
  }
  if (!into_live) executions_.set_started(snapshot.executions_started());

  // Global waiters are pending with no unmet dependency, like retries
  // waiting out their backoff; told apart by this set.
  absl::flat_hash_set<std::pair<uint32_t, uint32_t>> global_waiters;
  for (const v1::GlobalTaskSnapshot& saved : snapshot.global_tasks()) {
    GlobalTask& global = globals_.Restore(saved.identity());
    global.owner = saved.owner();
    global.succeeded = saved.succeeded();
    global.outputs.insert(saved.outputs().begin(), saved.outputs().end());
    for (const v1::GlobalTaskWaiter& waiter : saved.waiters()) {
      if (waiter.execution_slot() >= static_cast<uint32_t>(snapshot.executions_size())) {
        return absl::DataLossError(absl::StrCat("snapshot: global task ", saved.identity(),
                                                " waits in execution slot ",
                                                waiter.execution_slot(), ", which does not exist"));
      }
      global.waiters.emplace_back(waiter.execution_slot(), waiter.task_index());
      global_waiters.emplace(waiter.execution_slot(), waiter.task_index());
    }
  }

  // Recover ticked the clock: retries keep the due time they had.
  const absl::Time now = journal_.now();
  for (v1::ExecutionSnapshot& saved : *snapshot.mutable_executions()) {
    if (saved.tasks_size() != saved.started().definition().tasks_size()) {
      return absl::DataLossError(absl::StrCat(
          "snapshot: execution ", saved.started().execution_id(), " has ", saved.tasks_size(),
          " task states for ", saved.started().definition().tasks_size(), " tasks"));
    }
    auto definition = std::make_shared<const v1::WorkflowDefinition>(
        std::move(*saved.mutable_started()->mutable_definition()));
    ExecutionEntry& exec =
        executions_.Build(saved.started(), std::move(definition), nullptr, queues_);
    executions_.CountState(exec, exec.state, saved.state());
    exec.state = saved.state();
    exec.reason = saved.reason();
    exec.children_started = saved.children_started();
    exec.start_time = TimeOr(saved.start_time(), saved.has_start_time(), absl::InfinitePast());
    exec.end_time = TimeOr(saved.end_time(), saved.has_end_time(), absl::InfinitePast());
    if (saved.logs_expired_unix_nanos() != 0) {
      exec.logs_expired = absl::FromUnixNanos(saved.logs_expired_unix_nanos());
    }
    if (exec.final() && exec.end_time != absl::InfinitePast()) executions_.Ended(exec);
    if (absl::Status status = DecodeEventHistory(saved, &exec.events); !status.ok()) {
      return absl::DataLossError(
          absl::StrCat("snapshot: execution ", exec.id, ": ", status.message()));
    }
    exec.event_reasons.insert(saved.event_reasons().begin(), saved.event_reasons().end());
    for (auto& [index, event] : *saved.mutable_whole_events()) {
      exec.whole_events.emplace(index, std::move(event));
    }
    for (const StoredEvent& event : exec.events) {
      if (event.task != StoredEvent::kExecutionLevel && event.task >= exec.tasks.size()) {
        return absl::DataLossError(absl::StrCat("snapshot: execution ", exec.id,
                                                " has an event of task ", event.task, " of ",
                                                exec.tasks.size()));
      }
    }
    for (uint32_t i = 0; i < exec.events.size(); ++i) {
      if (exec.events[i].task == StoredEvent::kExecutionLevel && !exec.whole_events.contains(i)) {
        return absl::DataLossError(
            absl::StrCat("snapshot: execution ", exec.id, " lacks event ", i + 1));
      }
    }
    for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
      v1::TaskSlotSnapshot& from = *saved.mutable_tasks(static_cast<int>(i));
      RestoreTask(from, exec.tasks[i]);
      machine_.CountTaskState(exec, i, from.state());
    }
    if (exec.final()) continue;
    for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
      TaskEntry& task = exec.tasks[i];
      if (task.state == v1::TASK_READY) {
        machine_.QueueReady(exec, i);
      } else if (task.state == v1::TASK_PENDING && task.unmet_dependencies == 0 &&
                 !global_waiters.contains({exec.index, i})) {
        // A retry waiting out its backoff: ready_time is when it is due.
        machine_.ScheduleRetry(exec, i, std::max(absl::ZeroDuration(), task.ready_time - now), out);
      }
    }
  }
  for (const v1::StartExecutionRequest& child : snapshot.pending_child_starts()) {
    evaluators_.RestorePendingChild(child);
  }
  return absl::OkStatus();
}

}  // namespace gyre::orchestrator
