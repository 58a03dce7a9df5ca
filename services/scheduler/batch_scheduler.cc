#include "services/scheduler/batch_scheduler.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"

namespace gyre::scheduler {
namespace {

absl::Status Validate(const v1::RankAndPlaceRequest& request) {
  if (request.tasks_size() > kMaxBatchTasks) {
    return absl::InvalidArgumentError(
        absl::StrFormat("RankAndPlace: %d tasks, more than the batch limit of %d",
                        request.tasks_size(), kMaxBatchTasks));
  }
  if (request.agents_size() > kMaxBatchAgents) {
    return absl::InvalidArgumentError(
        absl::StrFormat("RankAndPlace: %d agents, more than the batch limit of %d",
                        request.agents_size(), kMaxBatchAgents));
  }
  if (request.finished_size() > kMaxBatchFinishedRuns) {
    return absl::InvalidArgumentError(
        absl::StrFormat("RankAndPlace: %d finished runs, more than the batch limit of %d",
                        request.finished_size(), kMaxBatchFinishedRuns));
  }
  for (const v1::ReadyTaskInfo& t : request.tasks()) {
    if (t.priority() < 0 || t.priority() > 100) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "RankAndPlace: task \"%s\" has priority %d, outside 0..100", t.task_run(), t.priority()));
    }
    if (t.predicted_seconds() < 0 || t.upward_rank_seconds() < 0 || t.waiting_seconds() < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "RankAndPlace: task \"%s\" has a negative duration, rank or waiting time", t.task_run()));
    }
  }
  return absl::OkStatus();
}

bool TakesWork(const v1::AgentInfo& agent) {
  return agent.state() == v1::AgentInfo::CONNECTED ||
         agent.state() == v1::AgentInfo::STATE_UNSPECIFIED;
}

ResourceAmounts Amounts(const v1::Resources& r) { return {r.cpu(), r.memory_bytes(), r.gpus()}; }

// The priority with aging, as the answer carries it (0..100).
int32_t EffectiveLevel(const TaskRanker& ranker, const RankTask& task) {
  return static_cast<int32_t>(std::clamp(ranker.EffectivePriority(task), 0.0, 100.0));
}

}  // namespace

BatchScheduler::BatchScheduler(RankingConfig config, std::unique_ptr<DurationEstimator> estimator)
    : ranker_(std::move(config)),
      estimator_(estimator ? std::move(estimator) : std::make_unique<OnlineDurationEstimator>()) {}

absl::StatusOr<v1::RankAndPlaceResponse> BatchScheduler::RankAndPlace(
    const v1::RankAndPlaceRequest& request) {
  v1::RankAndPlaceResponse response;
  if (absl::Status s = RankAndPlace(request, &response); !s.ok()) return s;
  return response;
}

absl::Status BatchScheduler::RankAndPlace(const v1::RankAndPlaceRequest& request,
                                          v1::RankAndPlaceResponse* response) {
  response->Clear();
  if (absl::Status s = Validate(request); !s.ok()) return s;
  const int n = request.tasks_size();

  std::vector<double> predicted(n);
  {
    absl::MutexLock lock(&mutex_);
    for (const v1::FinishedRun& run : request.finished()) {
      estimator_->Observe(run.task_type(), run.seconds());
    }
    for (int i = 0; i < n; ++i) {
      const v1::ReadyTaskInfo& t = request.tasks(i);
      predicted[i] = estimator_->EstimateSeconds(t.task_type().empty() ? t.queue() : t.task_type(),
                                                 t.predicted_seconds());
    }
  }

  // Executions: the listed ones with their loads, then one per unlisted name.
  // Views of the request's strings, which outlive this call.
  absl::flat_hash_map<absl::string_view, int> execution_index;
  execution_index.reserve(request.executions_size());
  std::vector<ExecutionShare> shares;
  std::vector<bool> listed_work;
  for (const v1::ExecutionLoad& load : request.executions()) {
    auto [it, inserted] = execution_index.try_emplace(load.execution(), shares.size());
    if (!inserted) continue;
    shares.push_back({load.remaining_work_seconds(), ranker_.config().WeightOf(load.tenant())});
    listed_work.push_back(load.remaining_work_seconds() > 0);
  }
  std::vector<RankTask> rank_tasks(n);
  const std::string& fair_share_label = ranker_.config().fair_share_label;
  for (int i = 0; i < n; ++i) {
    const v1::ReadyTaskInfo& t = request.tasks(i);
    const absl::string_view key = t.execution().empty() ? t.task_run() : t.execution();
    auto [it, inserted] = execution_index.try_emplace(key, shares.size());
    if (inserted) {
      shares.push_back({0, ranker_.config().default_tenant_weight});
      listed_work.push_back(false);
    }
    if (!listed_work[it->second]) shares[it->second].remaining_work_seconds += predicted[i];
    rank_tasks[i] = {t.priority(), t.waiting_seconds(),
                     t.upward_rank_seconds() > 0 ? t.upward_rank_seconds() : predicted[i],
                     it->second, static_cast<uint64_t>(i)};
    if (!fair_share_label.empty()) {
      if (auto label = t.labels().find(fair_share_label); label != t.labels().end()) {
        rank_tasks[i].weight = ranker_.config().LabelWeightOf(label->second);
      }
    }
  }

  // Agents that take work, with what is free on them.
  absl::flat_hash_map<absl::string_view, const v1::AgentFree*> free_of;
  free_of.reserve(request.agents_free_size());
  for (const v1::AgentFree& f : request.agents_free()) free_of[f.agent()] = &f;
  std::vector<AgentCapacity> agents;
  std::vector<const v1::AgentInfo*> agent_info;
  int cluster_slots = 0;
  for (const v1::AgentInfo& info : request.agents()) {
    if (!TakesWork(info)) continue;
    AgentCapacity a;
    a.name = info.name();
    a.queues.assign(info.queues().begin(), info.queues().end());
    a.labels.insert(info.labels().begin(), info.labels().end());
    a.free_slots = std::max(0, info.free_slots());
    a.busy_slots = std::max(0, info.slots() - a.free_slots);
    a.free = Amounts(info.resources());
    if (auto it = free_of.find(info.name()); it != free_of.end()) {
      if (it->second->has_free()) a.free = Amounts(it->second->free());
      a.busy_slot_free_in_seconds.assign(it->second->busy_slot_free_in_seconds().begin(),
                                         it->second->busy_slot_free_in_seconds().end());
    }
    cluster_slots += std::max(info.slots(), a.free_slots);
    agents.push_back(std::move(a));
    agent_info.push_back(&info);
  }

  const std::vector<int> order = ranker_.Rank(rank_tasks, shares, std::max(1, cluster_slots));
  std::vector<PlacementTask> placement_tasks(n);
  for (int i = 0; i < n; ++i) {
    const v1::ReadyTaskInfo& t = request.tasks(i);
    PlacementTask& p = placement_tasks[i];
    p.queue = t.queue();
    for (const auto& [key, value] : t.agent_selector()) p.selector.emplace_back(key, value);
    std::sort(p.selector.begin(), p.selector.end());  // one shape, whatever the map's order
    p.needs = Amounts(t.resources());
    p.predicted_seconds = predicted[i];
  }
  const PlacementPlan plan = placer_.Place(placement_tasks, order, agents);

  for (int position = 0; position < n; ++position) {
    const int i = order[position];
    if (plan.agent[i] >= 0) {
      v1::Placement* placed = response->add_placements();
      placed->set_task_run(request.tasks(i).task_run());
      placed->set_agent(agent_info[plan.agent[i]]->name());
      placed->set_rank(position);
      placed->set_effective_priority(EffectiveLevel(ranker_, rank_tasks[i]));
    } else {
      v1::Unplaced* waiting = response->add_unplaced();
      waiting->set_task_run(request.tasks(i).task_run());
      const absl::string_view reason = plan.Reason(i);
      waiting->set_reason(reason.data(), reason.size());
      waiting->set_rank(position);
      waiting->set_effective_priority(EffectiveLevel(ranker_, rank_tasks[i]));
      waiting->set_estimated_start_seconds(plan.estimated_start_seconds[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace gyre::scheduler
