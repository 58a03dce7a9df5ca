#include "services/orchestrator/scheduler_batch.h"

#include <algorithm>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

bool ByPlace(const BatchedTask& a, const BatchedTask& b) {
  return std::tie(a.execution, a.task, a.generation) < std::tie(b.execution, b.task, b.generation);
}

}  // namespace

bool SchedulerBatch::Live(const BatchedTask& batched) const {
  if (executions_.Get(batched.execution) == nullptr) return false;  // forgotten
  const ExecutionEntry& exec = executions_.at(batched.execution);
  if (batched.task >= exec.tasks.size() || exec.state == v1::EXECUTION_PAUSED) return false;
  const TaskEntry& task = exec.tasks[batched.task];
  return task.generation == batched.generation && task.state == v1::TASK_READY;
}

bool SchedulerBatch::Collect(size_t max_tasks, std::vector<BatchedTask>* tasks) {
  tasks->clear();
  // Stale entries are looked at too; Apply keeps them below the live ones
  // plus kStaleSlack, so this bounds the walk without hiding live tasks.
  const size_t max_entries = 4 * max_tasks + kStaleSlack;
  for (const auto& queue : queues_.all()) {
    if (queue == nullptr || queue->queued == 0) continue;
    queue->ready.Visit(max_entries, [&](const ReadyTask& entry) {
      if (tasks->size() >= max_tasks) return false;
      const BatchedTask batched{entry.execution, entry.task, entry.generation};
      if (Live(batched)) tasks->push_back(batched);
      return true;
    });
    if (tasks->size() >= max_tasks) break;
  }
  std::vector<BatchedTask> sorted = *tasks;
  std::sort(sorted.begin(), sorted.end(), ByPlace);
  if (sorted == last_applied_) {
    tasks->clear();
    return false;
  }
  return !tasks->empty();
}

double SchedulerBatch::TaskSeconds(const TaskEntry& task) {
  if (task.details != nullptr && task.details->prediction != nullptr &&
      task.details->prediction->duration_seconds > 0) {
    return task.details->prediction->duration_seconds;
  }
  return kNominalTaskSeconds;
}

const SchedulerBatch::PathSeconds& SchedulerBatch::Paths(const ExecutionEntry& exec,
                                                         const TaskEntry& batched) {
  auto [it, inserted] = paths_.try_emplace(exec.index);
  PathSeconds& paths = it->second;
  const bool predicted = batched.details != nullptr && batched.details->prediction != nullptr;
  if (!inserted && paths.upward.size() == exec.tasks.size() && (paths.predicted || !predicted)) {
    return paths;
  }
  // From the sinks up (Kahn's order on the reversed edges): O(tasks + edges).
  const size_t n = exec.tasks.size();
  paths.upward.assign(n, 0);
  paths.predicted = false;
  double total = 0;
  std::vector<uint32_t> unseen_dependants(n);
  std::vector<uint32_t> done;
  for (uint32_t i = 0; i < n; ++i) {
    const TaskEntry& task = exec.tasks[i];
    paths.predicted =
        paths.predicted || (task.details != nullptr && task.details->prediction != nullptr);
    const double seconds = TaskSeconds(task);
    total += seconds;
    paths.upward[i] = seconds;  // the longest path after it is added below
    unseen_dependants[i] = static_cast<uint32_t>(task.dependants.size());
    if (unseen_dependants[i] == 0) done.push_back(i);
  }
  // upward[i] holds the task's own seconds until all its dependants are
  // done; then the longest of theirs is added once.
  std::vector<double> longest_after(n, 0);
  while (!done.empty()) {
    const uint32_t task = done.back();
    done.pop_back();
    paths.upward[task] += longest_after[task];
    for (uint32_t parent : exec.tasks[task].parents) {
      longest_after[parent] = std::max(longest_after[parent], paths.upward[task]);
      if (--unseen_dependants[parent] == 0) done.push_back(parent);
    }
  }
  paths.mean_task_seconds = n > 0 ? total / static_cast<double>(n) : kNominalTaskSeconds;
  return paths;
}

void SchedulerBatch::Describe(absl::Span<const BatchedTask> tasks,
                              v1::RankAndPlaceRequest* request) {
  request->Clear();
  const absl::Time now = journal_.now();
  absl::flat_hash_set<uint32_t> in_batch;
  for (const BatchedTask& batched : tasks) {
    const ExecutionEntry& exec = executions_.at(batched.execution);
    const TaskEntry& task = exec.tasks[batched.task];
    const v1::TaskSpec& spec = *task.spec;
    v1::ReadyTaskInfo& info = *request->add_tasks();
    info.set_task_run(absl::StrCat(exec.name(), "/tasks/", spec.id()));
    info.set_queue(queues_.at(task.queue).name);
    info.set_priority(task.priority);
    if (spec.has_resources()) *info.mutable_resources() = spec.resources();
    *info.mutable_agent_selector() = spec.agent_selector();
    // The scheduler's fair_share_label, when it has one, picks its value.
    if (!spec.labels().empty()) *info.mutable_labels() = spec.labels();
    info.set_waiting_seconds(std::max(0.0, absl::ToDoubleSeconds(now - task.ready_time)));
    info.set_execution(exec.name());
    // The same task of the same workflow: the scheduler learns its
    // durations by this name.
    info.set_task_type(spec.id());
    const PathSeconds& paths = Paths(exec, task);
    // 0 when the predictor has not answered: the scheduler's own online
    // estimate for task_type answers then.
    if (task.details != nullptr && task.details->prediction != nullptr) {
      info.set_predicted_seconds(task.details->prediction->duration_seconds);
    }
    info.set_upward_rank_seconds(paths.upward[batched.task]);
    if (in_batch.insert(batched.execution).second) {
      v1::ExecutionLoad& load = *request->add_executions();
      load.set_execution(exec.name());
      load.set_tenant(exec.definition->tenant());
      const int32_t left =
          exec.total - exec.succeeded - exec.failed - exec.skipped - exec.cancelled;
      // The mean task's seconds times the tasks left: exact with no
      // prediction, and O(1) per execution and batch with them.
      load.set_remaining_work_seconds(std::max(0, left) * paths.mean_task_seconds);
    }
  }
  for (auto it = paths_.begin(); it != paths_.end();) {
    if (in_batch.contains(it->first)) {
      ++it;
    } else {
      paths_.erase(it++);
    }
  }
  for (v1::AgentInfo& info : agents_.List()) {
    if (info.state() != v1::AgentInfo::CONNECTED) continue;
    *request->add_agents() = std::move(info);
  }
  for (const auto& [id, agent] : agents_.all()) {
    if (agent->channel == nullptr || agent->draining) continue;
    v1::AgentFree& free = *request->add_agents_free();
    free.set_agent("agents/" + id);
    free.mutable_free()->set_cpu(agent->free_cpu);
    free.mutable_free()->set_memory_bytes(agent->free_memory);
    free.mutable_free()->set_gpus(agent->free_gpus);
  }
}

size_t SchedulerBatch::Apply(absl::Span<const BatchedTask> tasks, absl::Span<const uint32_t> order,
                             absl::Span<const TaskAnswer> answers,
                             std::vector<Dispatcher::PlacementHint>* hints) {
  last_applied_.clear();
  if (hints != nullptr) hints->clear();
  // Live tasks in the answer's order, each once (a repeat is ignored).
  std::vector<uint32_t> live;
  std::vector<bool> seen(tasks.size(), false);
  for (uint32_t index : order) {
    if (index >= tasks.size() || seen[index] || !Live(tasks[index])) continue;
    seen[index] = true;
    live.push_back(index);
  }
  // Ahead of their level, best last pushed: the batch is only the head of
  // the queues, and tasks beyond it (or ready since) must not pass them.
  absl::flat_hash_set<uint32_t> touched;
  for (auto it = live.rbegin(); it != live.rend(); ++it) {
    const BatchedTask& batched = tasks[*it];
    ExecutionEntry& exec = executions_.at(batched.execution);
    TaskEntry& task = exec.tasks[batched.task];
    task.generation++;
    // Aging: the level the scheduler ranked it at, when above the user's
    // (TaskEntry::priority stays theirs; the entry carries the level).
    uint8_t level = task.priority;
    if (*it < answers.size() && answers[*it].effective_priority > level) {
      level = static_cast<uint8_t>(std::min(100, answers[*it].effective_priority));
    }
    queues_.at(task.queue).ready.PushFront({exec.index, batched.task, level, task.generation});
    if (stale_made_.size() <= task.queue) stale_made_.resize(task.queue + 1, 0);
    stale_made_[task.queue]++;
    touched.insert(task.queue);
    last_applied_.push_back({batched.execution, batched.task, task.generation});
    if (hints != nullptr && *it < answers.size() && !answers[*it].agent_id.empty()) {
      hints->push_back({batched.execution, batched.task, task.generation, answers[*it].agent_id});
    }
  }
  const size_t requeued = last_applied_.size();
  // Tasks the answer left out keep their place, and count as ranked: the
  // same batch is not sent again until something changes.
  for (const BatchedTask& batched : tasks) {
    if (Live(batched)) last_applied_.push_back(batched);
  }
  std::sort(last_applied_.begin(), last_applied_.end(), ByPlace);
  for (uint32_t queue : touched) SweepIfStale(queue);
  return requeued;
}

void SchedulerBatch::SweepIfStale(uint32_t queue_index) {
  const auto& queues = queues_.all();
  if (queue_index >= queues.size() || queues[queue_index] == nullptr) return;
  Queue& queue = *queues[queue_index];
  if (stale_made_[queue_index] <= static_cast<size_t>(queue.queued) + kStaleSlack) return;
  // What dispatch would drop. A paused execution's live entry is kept: the
  // dispatcher parks it when it pops it, and resume queues it again.
  queue.ready.DropStale([this](const ReadyTask& entry) {
    if (executions_.Get(entry.execution) == nullptr) return true;  // forgotten
    const TaskEntry& task = executions_.at(entry.execution).tasks[entry.task];
    return task.generation != entry.generation || task.state != v1::TASK_READY;
  });
  stale_made_[queue_index] = 0;
}

}  // namespace gyre::orchestrator
