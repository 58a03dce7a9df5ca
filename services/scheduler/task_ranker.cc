#include "services/scheduler/task_ranker.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"

namespace gyre::scheduler {

absl::Status RankingConfig::Validate() const {
  if (!(aging_grace_seconds >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("aging_grace is %gs: must be >= 0", aging_grace_seconds));
  }
  if (!(aging_seconds_per_point > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("aging_interval is %gs: must be > 0", aging_seconds_per_point));
  }
  if (!(critical_path_fraction > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("critical_path_fraction is %g: must be > 0", critical_path_fraction));
  }
  if (!(default_tenant_weight > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("default_tenant_weight is %g: must be > 0", default_tenant_weight));
  }
  for (const auto& [tenant, weight] : tenant_weights) {
    if (!(weight > 0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tenant_weights[\"%s\"] is %g: must be > 0", tenant, weight));
    }
  }
  for (const auto& [value, weight] : label_weights) {
    if (!(weight > 0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("label_weights[\"%s\"] is %g: must be > 0", value, weight));
    }
  }
  if (!label_weights.empty() && fair_share_label.empty()) {
    return absl::InvalidArgumentError(
        "label_weights is set but fair_share_label is empty: name the task label whose values "
        "they weigh");
  }
  return absl::OkStatus();
}

double RankingConfig::WeightOf(absl::string_view tenant) const {
  auto it = tenant_weights.find(tenant);
  return it == tenant_weights.end() ? default_tenant_weight : it->second;
}

double RankingConfig::LabelWeightOf(absl::string_view value) const {
  auto it = label_weights.find(value);
  return it == label_weights.end() ? default_tenant_weight : it->second;
}

double TaskRanker::EffectivePriority(const RankTask& task) const {
  const double aged = task.waiting_seconds - config_.aging_grace_seconds;
  if (!(aged > 0)) return task.priority;
  return task.priority + std::floor(aged / config_.aging_seconds_per_point);
}

std::vector<TaskRanker::Key> TaskRanker::Keys(absl::Span<const RankTask> tasks,
                                              absl::Span<const ExecutionShare> executions,
                                              int cluster_slots) const {
  // The time the slots need to drain the known work: a task whose path to
  // its execution's end is about that long would make everything end later
  // if it waited its turn.
  double remaining = 0;
  for (const ExecutionShare& e : executions) remaining += e.remaining_work_seconds;
  const double horizon =
      config_.critical_path_fraction * remaining / static_cast<double>(std::max(1, cluster_slots));
  std::vector<Key> keys;
  keys.reserve(tasks.size());
  for (const RankTask& t : tasks) {
    const ExecutionShare& e = executions[t.execution];
    const double weight = t.weight > 0 ? t.weight : e.weight;
    keys.push_back(Key{EffectivePriority(t), t.upward_rank_seconds >= horizon,
                       e.remaining_work_seconds / weight, t.upward_rank_seconds, t.ready_sequence});
  }
  return keys;
}

bool TaskRanker::Before(const Key& a, const Key& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  if (a.critical != b.critical) return a.critical;
  if (!a.critical && a.share != b.share) return a.share < b.share;
  if (a.upward_rank != b.upward_rank) return a.upward_rank > b.upward_rank;
  return a.sequence < b.sequence;
}

std::vector<int> TaskRanker::Rank(absl::Span<const RankTask> tasks,
                                  absl::Span<const ExecutionShare> executions,
                                  int cluster_slots) const {
  return Top(tasks, executions, cluster_slots, static_cast<int>(tasks.size()));
}

std::vector<int> TaskRanker::Top(absl::Span<const RankTask> tasks,
                                 absl::Span<const ExecutionShare> executions, int cluster_slots,
                                 int k) const {
  const std::vector<Key> keys = Keys(tasks, executions, cluster_slots);
  std::vector<int> order(tasks.size());
  std::iota(order.begin(), order.end(), 0);
  auto before = [&keys](int a, int b) { return Before(keys[a], keys[b]); };
  k = std::clamp(k, 0, static_cast<int>(order.size()));
  if (k < static_cast<int>(order.size())) {
    std::nth_element(order.begin(), order.begin() + k, order.end(), before);
    order.resize(k);
  }
  std::sort(order.begin(), order.end(), before);
  return order;
}

}  // namespace gyre::scheduler
