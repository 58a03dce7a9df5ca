#include "services/orchestrator/dispatcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/common/limits.h"
#include "services/orchestrator/task_environment.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Entries of a ready queue one dispatch looks at past ones it cannot give
// the agent (labels, resources); stale entries do not count.
constexpr size_t kDispatchScanLimit = 256;

// An assignment's fields besides its command line and environment, and the
// message framing, generously (ids are added apart).
constexpr size_t kAssignmentOverheadBytes = 256;

}  // namespace

bool Dispatcher::AnyReady() const {
  const auto& queues = queues_.all();
  return std::any_of(queues.begin(), queues.end(),
                     [](const auto& queue) { return queue != nullptr && !queue->ready.empty(); });
}

void Dispatcher::Dispatch(Outbox& out) {
  // Agents are visited only while a task waits: with 10,000 agents, a visit
  // of each after every result was most of the engine's time.
  bool waiting = AnyReady();
  for (const auto& [id, agent] : agents_.all()) {
    if (!waiting) break;
    if (agent->channel == nullptr || agent->credit <= 0 || agent->draining) continue;
    const int64_t credit = agent->credit;
    DispatchTo(*agent, out);
    if (agent->credit != credit) waiting = AnyReady();  // it took some
  }
  if (waiting && on_backlog_) on_backlog_();
  // Every change that can move a backlog ends in a dispatch pass, so the
  // autoscaling signal is refreshed here (a few gauges per queue).
  RefreshMetrics();
}

void Dispatcher::DispatchTo(AgentEntry& agent, Outbox& out) {
  if (agent.channel == nullptr || agent.draining) return;
  v1::OrchestratorMessage message;
  v1::Assignment* assignment = message.mutable_assignment();
  // Both reused across dispatches: growing fresh ones each time made glibc
  // consolidate its free lists on every larger allocation.
  std::vector<ReadyTask> taken = std::move(taken_scratch_);
  // Records are reused whole: their strings keep their buffers, so filling
  // one in allocates nothing.
  std::vector<v1::StateRecord> lease_records = std::move(lease_scratch_);
  size_t leases = 0;
  size_t message_bytes = 0;    // estimated, of the assignment being filled
  v1::Resources need_scratch;  // a predicted need (AgentManager::LeaseNeed)
  // Assignments go out only once their leases are durable: an attempt
  // number is the fencing token, and one sent before its TaskLeased record
  // reached the disk was handed out again after a crash, to another agent,
  // while the first still ran it (found by scripts/chaos, seed 35).
  std::vector<v1::OrchestratorMessage> outgoing;
  const auto flush = [&] {
    if (assignment->tasks_size() > 0) {
      outgoing.push_back(std::move(message));
      message = v1::OrchestratorMessage();
      assignment = message.mutable_assignment();
      message_bytes = 0;
    }
    if (leases == 0) {  // nothing new to wait for
      for (v1::OrchestratorMessage& sent : outgoing) agent.channel->Send(std::move(sent));
      outgoing.clear();
      return;
    }
    journal_.Persist(absl::MakeSpan(lease_records.data(), leases),
                     [journal = &journal_, channel = agent.channel,
                      batch = std::move(outgoing)](const absl::Status& status) mutable {
                       if (!status.ok()) {
                         journal->Fail(status);
                         return;
                       }
                       for (v1::OrchestratorMessage& sent : batch) channel->Send(std::move(sent));
                     });
    outgoing.clear();
    leases = 0;
  };
  for (uint32_t queue_index : agent.queues) {
    const int64_t room = std::min<int64_t>(agent.credit, agent.free_slots());
    if (room <= 0) break;
    taken.clear();
    queues_.at(queue_index)
        .ready.PopMatching(
            static_cast<size_t>(room), kDispatchScanLimit,
            [&](const ReadyTask& entry) {
              if (executions_.Get(entry.execution) == nullptr) return ReadyVerdict::kDrop;
              ExecutionEntry& exec = executions_.at(entry.execution);
              TaskEntry& task = exec.tasks[entry.task];
              if (task.generation != entry.generation || task.state != v1::TASK_READY) {
                return ReadyVerdict::kDrop;
              }
              if (exec.state == v1::EXECUTION_PAUSED) {
                exec.parked.push_back(entry.task);
                return ReadyVerdict::kDrop;
              }
              const v1::TaskSpec& spec = *task.spec;
              if (DeferToHintedAgent(agent, entry, task)) return ReadyVerdict::kSkip;
              const v1::Resources& need = AgentManager::LeaseNeed(agent, task, need_scratch);
              if (!agent.matches(spec.agent_selector()) || !agent.has_room_for(need)) {
                return ReadyVerdict::kSkip;
              }
              // Reserve now so the next candidate sees what is left.
              AgentManager::Reserve(agent, need);
              return ReadyVerdict::kTake;
            },
            &taken);
    for (const ReadyTask& entry : taken) {
      ExecutionEntry& exec = executions_.at(entry.execution);
      TaskEntry& task = exec.tasks[entry.task];
      machine_.Lease(exec, entry.task, agent.id, task.attempt + 1);
      AttemptRecord& attempt = task.attempts.back();
      if (logging::Enabled(logging::Level::kDebug)) {
        out.Log(logging::Level::kDebug, "task leased",
                {{"execution", exec.name()},
                 {"task", task.spec->id()},
                 {"attempt", task.attempt},
                 {"agent", agent.id},
                 {"queue", queues_.at(task.queue).name}});
      }

      v1::TaskAssignment* assigned = assignment->add_tasks();
      size_t task_bytes = 0;  // its command line and environment
      assigned->mutable_ref()->set_execution(exec.name());
      assigned->mutable_ref()->set_task_id(task.spec->id());
      assigned->mutable_ref()->set_attempt(task.attempt);
      // The execution's context, with what ancestors passed along edges on
      // top (copied only when there is such a thing). A builtin task runs
      // no process: it gets neither command line nor environment.
      const bool builtin = task.spec->builtin().kind() != v1::BuiltinExecutor::KIND_UNSPECIFIED;
      absl::Status built;
      if (!builtin) {
        const std::map<std::string, std::string>& inherited = task.details_or_empty().inherited;
        std::map<std::string, std::string> merged;
        if (!inherited.empty()) {
          merged = exec.context;
          for (const auto& [key, value] : inherited) merged[key] = value;
        }
        built = BuildTaskEnvironment(*task.spec, inherited.empty() ? exec.context : merged,
                                     exec.builtins, task.attempt, exec.declared.get(), assigned);
        // Outputs merged in at run time can take it past what exec takes.
        if (built.ok()) built = CheckExecSize(*assigned, &task_bytes);
      }
      if (!built.ok()) {
        // A definition that cannot be expanded, or a task that could not be
        // exec'd, fails without running (and without retries: it would
        // fail the same way).
        assignment->mutable_tasks()->RemoveLast();
        AgentManager::Unreserve(agent, AgentManager::LeaseNeed(agent, task, need_scratch));
        // The leases taken so far go to the log first: records keep the
        // order of the events.
        flush();
        machine_.FailNotStarted(exec, entry.task, agent.id, attempt.attempt,
                                std::string(built.message()), out);
        continue;
      }
      if (builtin) *assigned->mutable_builtin() = task.spec->builtin();
      if (task.spec->has_timeout()) *assigned->mutable_timeout() = task.spec->timeout();
      if (task.spec->has_resources()) *assigned->mutable_resources() = task.spec->resources();
      assigned->set_evaluator(task.spec->evaluator());
      // One message stays under what the agent accepts: a batch whose
      // tasks carry large environments goes out in several messages.
      // Counted from the exec sizes above (plus room for the ids and small
      // fields), not by serializing.
      task_bytes += kAssignmentOverheadBytes + exec.name().size() + task.spec->id().size();
      if (message_bytes + task_bytes > limits::kMaxAssignmentMessageBytes &&
          assignment->tasks_size() > 1) {
        v1::TaskAssignment* last = assignment->mutable_tasks()->ReleaseLast();
        outgoing.push_back(std::move(message));
        message = v1::OrchestratorMessage();
        assignment = message.mutable_assignment();
        assignment->mutable_tasks()->AddAllocated(last);
        message_bytes = 0;
      }
      message_bytes += task_bytes;
      agent.credit--;
      agent.leases.insert({entry.execution, entry.task});
      queues_.at(task.queue).running++;
      if (leases == lease_records.size()) lease_records.emplace_back();
      v1::TaskLeased& leased = *lease_records[leases++].mutable_task_leased();
      leased.set_execution_id(exec.id);
      leased.set_task_id(task.spec->id());
      leased.set_attempt(task.attempt);
      leased.set_agent_id(agent.id);
      metrics_.ObserveLeaseLatency(absl::ToDoubleSeconds(task.lease_time - task.ready_time));
      machine_.SetTaskState(exec, entry.task, v1::TASK_LEASED);
      machine_.UpdateExecutionState(exec, out);
    }
  }
  // One append for the batch: the leases are the only records of this
  // dispatch, so their order among the engine's records is unchanged.
  flush();
  taken.clear();
  taken_scratch_ = std::move(taken);
  lease_scratch_ = std::move(lease_records);
  if (hint_depth_ > 0 || deferred_to_.empty()) return;
  // The agents the scheduler placed skipped tasks on take them now; then
  // this agent walks again without hints, so a task its hinted agent did
  // not take after all is never left behind (the local order is the
  // fallback). One level: these walks defer nothing.
  ++hint_depth_;
  std::vector<std::string> deferred = std::move(deferred_to_);
  deferred_to_.clear();
  std::sort(deferred.begin(), deferred.end());
  deferred.erase(std::unique(deferred.begin(), deferred.end()), deferred.end());
  for (const std::string& id : deferred) {
    if (AgentEntry* hinted = agents_.Find(id); hinted != nullptr) DispatchTo(*hinted, out);
  }
  DispatchTo(agent, out);
  --hint_depth_;
}

void Dispatcher::SetPlacementHints(std::vector<PlacementHint> hints) {
  hints_.clear();
  for (PlacementHint& hint : hints) {
    hints_[HintKey(hint.execution, hint.task)] = {std::move(hint.agent_id), hint.generation};
  }
}

bool Dispatcher::DeferToHintedAgent(const AgentEntry& agent, const ReadyTask& entry,
                                    const TaskEntry& task) {
  if (hints_.empty()) return false;
  auto it = hints_.find(HintKey(entry.execution, entry.task));
  if (it == hints_.end()) return false;
  const Hint& hint = it->second;
  if (hint.generation != entry.generation || hint.agent_id == agent.id || hint_depth_ > 0) {
    return false;
  }
  // Only while the named agent can take it now: a free slot, credit, the
  // labels and room. Otherwise the hint is moot and local dispatch decides.
  AgentEntry* hinted = agents_.Find(hint.agent_id);
  if (hinted == nullptr || hinted->channel == nullptr || hinted->draining || hinted->credit <= 0 ||
      hinted->free_slots() <= 0 || !hinted->serves(task.queue) ||
      !hinted->matches(task.spec->agent_selector())) {
    return false;
  }
  v1::Resources scratch;
  if (!hinted->has_room_for(AgentManager::LeaseNeed(*hinted, task, scratch))) return false;
  deferred_to_.push_back(hint.agent_id);
  return true;
}

std::string Dispatcher::WaitingReason(const ExecutionEntry& exec, const TaskEntry& task) const {
  // A paused execution's state says why its tasks wait.
  if (task.state != v1::TASK_READY || exec.state == v1::EXECUTION_PAUSED) return "";
  const std::string& queue = queues_.at(task.queue).name;
  const v1::TaskSpec& spec = *task.spec;
  bool served = false;
  for (const auto& [id, agent] : agents_.all()) {
    if (agent->channel == nullptr || agent->draining || !agent->serves(task.queue)) continue;
    served = true;
    // An agent's whole offer, not what is free now.
    if (agent->offers(spec.resources()) && agent->matches(spec.agent_selector())) {
      return "";  // it waits its turn, or for a slot
    }
  }
  if (!served) return absl::StrCat("waiting for an agent serving queue \"", queue, "\"");
  return absl::StrCat("no agent serving queue \"", queue,
                      "\" offers the labels and resources it needs (cpu ", spec.resources().cpu(),
                      ", memory ", spec.resources().memory_bytes(), " bytes, gpus ",
                      spec.resources().gpus(), ")");
}

std::string Dispatcher::StallForTest() const {
  for (const auto& [id, agent] : agents_.all()) {
    if (agent->channel == nullptr || agent->draining || agent->credit <= 0 ||
        agent->free_slots() <= 0) {
      continue;
    }
    for (const auto& exec : executions_.all()) {
      if (exec == nullptr || exec->final() || exec->state == v1::EXECUTION_PAUSED ||
          exec->ready == 0) {
        continue;
      }
      for (const TaskEntry& task : exec->tasks) {
        if (task.state != v1::TASK_READY || !agent->serves(task.queue)) continue;
        const v1::TaskSpec& spec = *task.spec;
        v1::Resources scratch;
        if (!agent->has_room_for(AgentManager::LeaseNeed(*agent, task, scratch)) ||
            !agent->matches(spec.agent_selector())) {
          continue;
        }
        return absl::StrCat(exec->name(), "/tasks/", spec.id(), " is READY in queue \"",
                            queues_.at(task.queue).name, "\" while agent ", id, " has credit ",
                            agent->credit, ", ", agent->free_slots(),
                            " free slot(s) and room for it (", agent->leases.size(),
                            " lease(s) held)");
      }
    }
  }
  return "";
}

void Dispatcher::RefreshMetrics(bool all_agents) {
  // Summing over every agent after every agent message cost O(agents) each
  // (10,000 at the seeds' scale): past 1,000 agents, at most every 100 ms
  // here and at every lease tick (all_agents), so the gauges trail by at
  // most that. Exact counts kept as agents change would remove this.
  const absl::Time now = journal_.now();
  if (all_agents || agents_.all().size() <= 1000 ||
      now - agent_gauges_time_ >= absl::Milliseconds(100)) {
    agent_gauges_time_ = now;
    const auto [connected, free_slots] = agents_.ConnectedAndFreeSlots();
    metrics_.SetAgents(connected, free_slots);
    connected_by_queue_.assign(queues_.all().size(), 0);
    for (const auto& [id, agent] : agents_.all()) {
      if (agent->channel == nullptr) continue;
      for (uint32_t queue : agent->queues) connected_by_queue_[queue]++;
    }
  }
  const auto& queues = queues_.all();
  if (cluster_backlog_ != nullptr) {
    // One short lock: this member's counts out, the cluster's totals back
    // (in the order of the non-null queues, walked the same way below).
    own_scratch_.clear();
    for (const auto& queue : queues) {
      if (queue != nullptr) own_scratch_.push_back({queue->name, {queue->queued, queue->running}});
    }
    cluster_backlog_->Publish(own_scratch_, &cluster_scratch_, &elsewhere_scratch_);
  }
  size_t published = 0;  // the next of cluster_scratch_
  for (uint32_t index = 0; index < queues.size(); ++index) {
    const auto& queue = queues[index];
    if (queue == nullptr) continue;
    const QueueBacklog backlog = cluster_backlog_ != nullptr
                                     ? cluster_scratch_[published++]
                                     : QueueBacklog{queue->queued, queue->running};
    const bool pooled = pools_.pools.contains(queue->name);
    if (queue->agents == 0 && backlog.empty() && !pooled) {
      // Nobody serves it and nothing waits in it: no series (absent reads
      // as zero) and no storage, until a task or an agent comes.
      if (queue->exported) {
        metrics_.RemoveQueue(queue->name);
        queue->exported = false;
        queue->ready.Release();
      }
      continue;
    }
    // (A queue made since the agents were last counted has none counted.)
    const int64_t connected = index < connected_by_queue_.size() ? connected_by_queue_[index] : 0;
    metrics_.SetQueue(queue->name, queue->queued, queue->running,
                      DesiredWorkers(backlog.queued, backlog.running, pools_.For(queue->name)),
                      connected);
    queue->exported = true;
    if (!exported_elsewhere_.empty()) exported_elsewhere_.erase(queue->name);
  }
  if (cluster_backlog_ != nullptr) ExportElsewhere();
}

void Dispatcher::ExportElsewhere() {
  // A queue only the others have a backlog in is exported here too: every
  // replica exports the cluster's figure, so the autoscaler's max() over
  // replicas holds while any one of them is scraped.
  absl::flat_hash_set<std::string> exported;
  for (auto& [name, backlog] : elsewhere_scratch_) {
    metrics_.SetQueue(name, 0, 0, DesiredWorkers(backlog.queued, backlog.running, pools_.For(name)),
                      0);
    exported_elsewhere_.erase(name);
    exported.insert(std::move(name));
  }
  // Those whose backlog went (the walk above took out those it exported as
  // this engine's queues).
  for (const std::string& name : exported_elsewhere_) metrics_.RemoveQueue(name);
  exported_elsewhere_ = std::move(exported);
}

std::vector<v1::QueueInfo> Dispatcher::QueueInfos(bool cluster_wide) const {
  std::vector<v1::QueueInfo> result;
  QueueBacklogs others;
  if (cluster_wide && cluster_backlog_ != nullptr) others = cluster_backlog_->Others();
  const auto& queues = queues_.all();
  for (uint32_t index = 0; index < queues.size(); ++index) {
    const Queue* queue = queues[index].get();
    if (queue == nullptr) continue;  // forgotten
    QueueBacklog backlog{queue->queued, queue->running};
    if (auto other = others.find(queue->name); other != others.end()) {
      backlog.queued += other->second.queued;
      backlog.running += other->second.running;
      others.erase(other);
    }
    v1::QueueInfo info;
    info.set_name("queues/" + queue->name);
    info.set_depth(backlog.queued);
    info.set_running(backlog.running);
    for (const auto& [id, agent] : agents_.all()) {
      if (agent->channel == nullptr || !agent->serves(index)) continue;
      info.set_agents(info.agents() + 1);
      info.set_free_slots(info.free_slots() + agent->free_slots());
    }
    info.set_desired_workers(
        DesiredWorkers(backlog.queued, backlog.running, pools_.For(queue->name)));
    result.push_back(std::move(info));
  }
  // Queues this engine does not know, with a backlog at other members (no
  // agent serving them is connected here, or they would be known).
  std::map<std::string, QueueBacklog> elsewhere(others.begin(), others.end());
  for (const auto& [name, backlog] : elsewhere) {
    v1::QueueInfo info;
    info.set_name("queues/" + name);
    info.set_depth(backlog.queued);
    info.set_running(backlog.running);
    info.set_desired_workers(DesiredWorkers(backlog.queued, backlog.running, pools_.For(name)));
    result.push_back(std::move(info));
  }
  return result;
}

}  // namespace gyre::orchestrator
