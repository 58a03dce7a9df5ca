#include "services/orchestrator/execution_table.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "libs/common/limits.h"
#include "libs/common/tenant.h"
#include "services/orchestrator/list_paging.h"
#include "services/orchestrator/proto_time.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// The most executions one ListExecutions call looks at (of those its most
// selective filter's index yields: the others are checked one by one).
constexpr uint32_t kMaxListScan = 10000;

// Walks several slot indexes together, newest (highest slot) first, each
// slot once: the union of a filter's indexes (states: one per state).
class DescendingUnion {
 public:
  using Slots = absl::btree_set<uint32_t>;
  DescendingUnion(const std::vector<const Slots*>& sets, uint32_t below) {
    for (const Slots* set : sets) {
      auto it = set->lower_bound(below);  // the first slot not below: the walk starts before it
      if (it != set->begin()) heads_.push_back({set, it});
    }
  }
  // The next slot, or false when every index is walked.
  bool Next(uint32_t* slot) {
    Head* best = nullptr;
    for (Head& head : heads_) {
      if (head.next == head.set->begin()) continue;
      if (best == nullptr || *std::prev(head.next) > *std::prev(best->next)) best = &head;
    }
    if (best == nullptr) return false;
    *slot = *--best->next;
    for (Head& head : heads_) {  // the same slot in another index (not for states: disjoint)
      if (&head != best && head.next != head.set->begin() && *std::prev(head.next) == *slot) {
        --head.next;
      }
    }
    return true;
  }

 private:
  struct Head {
    const Slots* set;
    Slots::const_iterator next;  // one past the next slot to yield
  };
  std::vector<Head> heads_;
};

std::string ShortWorkflowName(absl::string_view name) {
  absl::ConsumePrefix(&name, "workflows/");
  return std::string(name.substr(0, name.find('/')));
}

}  // namespace

ExecutionEntry* ExecutionTable::Find(absl::string_view name) {
  absl::string_view id = name;
  absl::ConsumePrefix(&id, "executions/");
  id = id.substr(0, id.find('/'));
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : executions_[it->second].get();
}

ExecutionEntry* ExecutionTable::FindByRequest(const std::string& request_id) {
  auto it = by_request_.find(request_id);
  return it == by_request_.end() ? nullptr : executions_[it->second].get();
}

TaskLocation ExecutionTable::FindTask(absl::string_view execution, absl::string_view task_id) {
  ExecutionEntry* exec = Find(execution);
  if (exec == nullptr) return {};
  auto it = exec->task_index.find(task_id);
  if (it == exec->task_index.end()) return {};
  return {exec, it->second};
}

TaskLocation ExecutionTable::FindTaskRun(absl::string_view name) {
  const size_t tasks_at = name.find("/tasks/");
  if (tasks_at == absl::string_view::npos) return {};
  return FindTask(name, name.substr(tasks_at + 7));
}

std::string ExecutionTable::NewId(absl::Time now) {
  std::string id;
  do {
    id = absl::StrFormat("%x-%04x", absl::ToUnixMillis(now), ++started_);
  } while (by_id_.contains(id));
  return id;
}

void ExecutionTable::Release(ExecutionEntry& exec) {
  by_id_.erase(exec.id);
  if (!exec.request_id.empty()) {
    auto it = by_request_.find(exec.request_id);
    if (it != by_request_.end() && it->second == exec.index) by_request_.erase(it);
  }
  CountState(exec, exec.state, v1::EXECUTION_STATE_UNSPECIFIED);
  // Out of the list and retention indexes too: nothing here lists or
  // forgets it any more (its new owner does).
  Unindex(exec);
  exec.state = v1::EXECUTION_STATE_UNSPECIFIED;
  exec.released = true;
}

ExecutionEntry& ExecutionTable::Build(
    const v1::ExecutionStarted& record,
    std::shared_ptr<const v1::WorkflowDefinition> shared_definition,
    std::shared_ptr<const workflow::DeclaredContext> declared, QueueTable& queues) {
  auto exec = std::make_unique<ExecutionEntry>();
  exec->index = static_cast<uint32_t>(executions_.size());
  exec->id = record.execution_id();
  exec->full_name = "executions/" + exec->id;
  exec->definition = std::move(shared_definition);
  exec->targets.assign(record.targets().begin(), record.targets().end());
  exec->priority = record.priority();
  exec->request_id = record.request_id();
  exec->request_fingerprint = record.request_fingerprint();
  exec->context_rules = record.context_rules();
  if (declared != nullptr) {
    exec->declared = std::move(declared);
  } else if (exec->context_rules >= kDeclaredContextRules) {
    exec->declared = std::make_shared<const workflow::DeclaredContext>(*exec->definition);
  } else {
    exec->declared = workflow::DeclaredContext::Open();  // started under the open rule
  }
  exec->parent = record.parent();
  exec->create_time = FromProto(record.create_time());
  for (const auto& [key, value] : record.context()) exec->context[key] = value;
  exec->secret_keys.insert(record.secret_keys().begin(), record.secret_keys().end());
  exec->builtins = ExecutionBuiltins{
      exec->id, ShortWorkflowName(exec->definition->name()),
      absl::FormatTime("%Y-%m-%d", exec->create_time, absl::UTCTimeZone()),
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", exec->create_time, absl::UTCTimeZone())};

  const v1::WorkflowDefinition& definition = *exec->definition;
  const std::string default_queue =
      definition.default_queue().empty() ? "default" : definition.default_queue();
  exec->tasks.resize(static_cast<size_t>(definition.tasks_size()));
  exec->task_index.reserve(static_cast<size_t>(definition.tasks_size()));
  for (int i = 0; i < definition.tasks_size(); ++i) {
    exec->task_index[definition.tasks(i).id()] = static_cast<uint32_t>(i);
  }
  for (int i = 0; i < definition.tasks_size(); ++i) {
    const v1::TaskSpec& spec = definition.tasks(i);
    TaskEntry& task = exec->tasks[static_cast<size_t>(i)];
    task.spec = &spec;
    task.queue = queues.IndexOf(spec.queue().empty() ? default_queue : spec.queue());
    queues.at(task.queue).named_by_task = true;
    task.priority = static_cast<uint8_t>(spec.priority() > 0 ? spec.priority() : exec->priority);
    for (const std::string& dependency : spec.depends_on()) {
      const uint32_t parent = exec->task_index.at(dependency);
      task.parents.push_back(parent);
      exec->tasks[parent].dependants.push_back(static_cast<uint32_t>(i));
    }
    task.unmet_dependencies = static_cast<uint32_t>(task.parents.size());
  }
  exec->total = definition.tasks_size();
  exec->pending = exec->total;

  ExecutionEntry& entry = *exec;
  by_id_[exec->id] = exec->index;
  if (!exec->request_id.empty()) by_request_[exec->request_id] = exec->index;
  live_.insert(entry.index);
  by_workflow_[entry.definition->name()].insert(entry.index);
  by_tenant_[std::string(TenantOrDefault(entry.definition->tenant()))].insert(entry.index);
  executions_.push_back(std::move(exec));
  CountState(entry, v1::EXECUTION_STATE_UNSPECIFIED, entry.state);
  return entry;
}

void ExecutionTable::CountState(const ExecutionEntry& exec, v1::ExecutionState from,
                                v1::ExecutionState to) {
  for (const auto& [state, delta] : {std::pair{from, -1}, std::pair{to, +1}}) {
    if (state == v1::EXECUTION_STATE_UNSPECIFIED) continue;
    metrics_.SetExecutions(state, by_state_[state] += delta);
    if (delta < 0) {
      in_state_[state].erase(exec.index);
    } else {
      in_state_[state].insert(exec.index);
    }
  }
}

void ExecutionTable::Ended(const ExecutionEntry& exec) {
  const int64_t end = absl::ToUnixNanos(exec.end_time);
  by_end_.emplace(end, exec.index);
  if (exec.logs_expired == absl::InfinitePast()) logs_by_end_.emplace(end, exec.index);
}

void ExecutionTable::Unindex(const ExecutionEntry& exec) {
  live_.erase(exec.index);
  auto erase = [&exec](absl::flat_hash_map<std::string, Slots>& index, const std::string& key) {
    auto it = index.find(key);
    if (it == index.end()) return;
    it->second.erase(exec.index);
    if (it->second.empty()) index.erase(it);  // a deleted workflow's name goes too
  };
  erase(by_workflow_, exec.definition->name());
  erase(by_tenant_, std::string(TenantOrDefault(exec.definition->tenant())));
  const int64_t end = absl::ToUnixNanos(exec.end_time);
  by_end_.erase({end, exec.index});
  logs_by_end_.erase({end, exec.index});
}

bool ExecutionTable::Forget(absl::string_view id) {
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return false;
  const uint32_t index = found->second;
  ExecutionEntry& exec = *executions_[index];
  if (!exec.final()) return false;
  CountState(exec, exec.state, v1::EXECUTION_STATE_UNSPECIFIED);
  Unindex(exec);
  if (!exec.request_id.empty()) by_request_.erase(exec.request_id);
  by_id_.erase(found);
  // Freed here, or by the last reader that shares it (ReplayEvents).
  executions_[index].reset();
  return true;
}

bool ExecutionTable::DropLogs(absl::string_view id, absl::Time now) {
  ExecutionEntry* exec = Find(id);
  if (exec == nullptr || !exec->final()) return false;
  for (TaskEntry& task : exec->tasks) {
    if (task.details != nullptr) task.details->logs.clear();
  }
  logs_by_end_.erase({absl::ToUnixNanos(exec->end_time), exec->index});
  if (exec->logs_expired == absl::InfinitePast()) exec->logs_expired = now;
  return true;
}

std::vector<const ExecutionTable::Slots*> ExecutionTable::Candidates(
    const v1::ListExecutionsRequest& req) const {
  // The most selective index the request names; the other filters are
  // checked on what it yields.
  std::vector<const Slots*> sets;
  if (!req.workflow().empty()) {
    auto it = by_workflow_.find(req.workflow());
    if (it != by_workflow_.end()) sets.push_back(&it->second);
  } else if (!req.states().empty()) {
    for (int state : req.states()) {
      if (state <= v1::EXECUTION_STATE_UNSPECIFIED || state >= v1::ExecutionState_ARRAYSIZE) {
        continue;
      }
      const Slots* set = &in_state_[static_cast<size_t>(state)];
      if (std::find(sets.begin(), sets.end(), set) == sets.end()) sets.push_back(set);
    }
  } else if (!req.tenant().empty()) {
    auto it = by_tenant_.find(req.tenant());
    if (it != by_tenant_.end()) sets.push_back(&it->second);
  } else {
    sets.push_back(&live_);
  }
  return sets;
}

absl::StatusOr<v1::ListExecutionsResponse> ExecutionTable::List(
    const v1::ListExecutionsRequest& req, size_t limit) const {
  // Newest first: executions are in start order, so a page starts below a
  // position (a slot: stable while others start or are forgotten).
  absl::StatusOr<uint32_t> below =
      PagePosition(req.page_token(), static_cast<uint32_t>(executions_.size()),
                   static_cast<uint32_t>(executions_.size()));
  if (!below.ok()) return below.status();
  v1::ListExecutionsResponse response;
  // The filter's index yields the candidates: a page costs what it looks
  // at, not the whole history.
  DescendingUnion candidates(Candidates(req), *below);
  uint32_t position = *below;  // every candidate at or above it was looked at
  // A filter that matches little among its index's candidates must not hold
  // the engine lock long: a page may come back short, with a token to go on.
  uint32_t scanned = 0;
  // Lists leave contexts out unless asked (ExecutionView).
  const bool full = req.view() == v1::EXECUTION_VIEW_FULL;
  size_t context_bytes = 0;
  bool more = true;
  uint32_t slot = 0;
  while (static_cast<size_t>(response.executions_size()) < limit && scanned < kMaxListScan) {
    if (!candidates.Next(&slot)) {
      more = false;
      break;
    }
    ++scanned;
    position = slot;
    const ExecutionEntry& exec = *executions_[slot];
    if (!req.workflow().empty() && exec.definition->name() != req.workflow()) continue;
    if (!req.tenant().empty() && TenantOrDefault(exec.definition->tenant()) != req.tenant()) {
      continue;
    }
    if (!req.states().empty() &&
        std::find(req.states().begin(), req.states().end(), exec.state) == req.states().end()) {
      continue;
    }
    if (!full) {
      *response.add_executions() = ExecutionProto(exec, /*with_context=*/false);
      continue;
    }
    // A FULL page is bounded by its contexts' bytes too (at least one
    // execution per page, whose context is within its own limit).
    const size_t bytes = workflow::ContextBytes(exec.context);
    if (response.executions_size() > 0 && context_bytes + bytes > limits::kMaxListPageValueBytes) {
      position = slot + 1;  // the next page starts with it
      break;
    }
    context_bytes += bytes;
    *response.add_executions() = ExecutionProto(exec);
  }
  if (more) {
    // Whether anything is left below: only then a token (the last page has
    // none, even when it is exactly full).
    uint32_t next = 0;
    DescendingUnion rest(Candidates(req), position);
    if (rest.Next(&next)) response.set_next_page_token(absl::StrCat("p", position));
  }
  return response;
}

absl::Status ExecutionTable::ListTaskRuns(const ExecutionEntry& exec,
                                          const v1::ListTaskRunsRequest& req, size_t limit,
                                          const QueueTable& queues,
                                          v1::ListTaskRunsResponse* out) const {
  const auto tasks = static_cast<uint32_t>(exec.tasks.size());
  absl::StatusOr<uint32_t> from = PagePosition(req.page_token(), 0, tasks);
  if (!from.ok()) return from.status();
  v1::ListTaskRunsResponse& response = *out;
  uint32_t index = *from;
  // Outputs may be up to 1 MiB per task: a page is bounded by their bytes too.
  size_t output_bytes = 0;
  response.mutable_task_runs()->Reserve(static_cast<int>(std::min<size_t>(limit, tasks - index)));
  for (; index < tasks && static_cast<size_t>(response.task_runs_size()) < limit; ++index) {
    const size_t bytes = workflow::ContextBytes(exec.tasks[index].details_or_empty().outputs);
    if (response.task_runs_size() > 0 && output_bytes + bytes > limits::kMaxListPageValueBytes) {
      break;
    }
    output_bytes += bytes;
    FillTaskRun(exec, index, /*with_history=*/true, queues, response.add_task_runs());
  }
  if (index < tasks) response.set_next_page_token(absl::StrCat("p", index));
  return absl::OkStatus();
}

v1::Execution ExecutionProto(const ExecutionEntry& exec, bool with_context) {
  v1::Execution proto;
  proto.set_name(exec.name());
  proto.set_workflow(exec.definition->name());
  proto.set_workflow_version(exec.definition->version());
  proto.set_tenant(std::string(TenantOrDefault(exec.definition->tenant())));
  proto.set_state(exec.state);
  if (with_context) {
    for (const auto& [key, value] : exec.context) {
      (*proto.mutable_context())[key] = exec.secret_keys.contains(key) ? kSecretMask : value;
    }
  }
  for (const std::string& key : exec.secret_keys) proto.add_secret_context_keys(key);
  proto.set_parent(exec.parent);
  for (const std::string& target : exec.targets) proto.add_targets(target);
  v1::TaskCounts* counts = proto.mutable_task_counts();
  counts->set_pending(exec.pending);
  counts->set_ready(exec.ready);
  counts->set_running(exec.running);
  counts->set_succeeded(exec.succeeded);
  counts->set_failed(exec.failed);
  counts->set_skipped(exec.skipped);
  counts->set_cancelled(exec.cancelled);
  counts->set_total(exec.total);
  proto.set_priority(exec.priority);
  *proto.mutable_create_time() = ToProto(exec.create_time);
  if (exec.start_time != absl::InfinitePast()) {
    *proto.mutable_start_time() = ToProto(exec.start_time);
  }
  if (exec.end_time != absl::InfinitePast()) *proto.mutable_end_time() = ToProto(exec.end_time);
  proto.set_reason(exec.reason);
  proto.set_last_sequence(static_cast<int64_t>(exec.events.size()));
  return proto;
}

v1::TaskRun TaskRunProto(const ExecutionEntry& exec, uint32_t index, bool with_history,
                         const QueueTable& queues) {
  v1::TaskRun run;
  FillTaskRun(exec, index, with_history, queues, &run);
  return run;
}

void FillTaskRun(const ExecutionEntry& exec, uint32_t index, bool with_history,
                 const QueueTable& queues, v1::TaskRun* out) {
  const TaskEntry& task = exec.tasks[index];
  v1::TaskRun& run = *out;
  run.set_name(absl::StrCat(exec.name(), "/tasks/", task.spec->id()));
  run.set_task_id(task.spec->id());
  run.set_state(task.state);
  run.set_priority(task.priority);
  run.set_queue(queues.at(task.queue).name);
  // Empty strings are left unset (the same in proto3): setting one still
  // allocates a string, three per task of a 10,000-task page.
  if (!task.reason.empty()) run.set_reason(task.reason);
  const TaskDetails& details = task.details_or_empty();
  if (!details.identity.empty()) run.set_identity(details.identity);
  if (!details.satisfied_by.empty()) run.set_satisfied_by(details.satisfied_by);
  if (task.ready_time != absl::Time()) SetProto(task.ready_time, run.mutable_ready_time());
  for (const auto& [key, value] : details.outputs) {
    (*run.mutable_outputs()->mutable_fields())[key].set_string_value(value);
  }
  if (with_history) {
    for (const AttemptRecord& attempt : task.attempts) FillProto(attempt, run.add_attempts());
  }
  if (details.prediction != nullptr) {
    SetProto(absl::Seconds(details.prediction->duration_seconds), run.mutable_predicted_duration());
    run.set_predicted_memory_bytes(details.prediction->memory_bytes);
    run.set_predicted_cpu(details.prediction->cpu);
  }
}

}  // namespace gyre::orchestrator
