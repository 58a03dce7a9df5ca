#ifndef GYRE_SERVICES_SCHEDULER_TASK_RANKER_H_
#define GYRE_SERVICES_SCHEDULER_TASK_RANKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace gyre::scheduler {

// How ready tasks are ordered; loaded from the scheduler's config.
struct RankingConfig {
  // Aging: once a task has waited `aging_grace_seconds`, every further
  // `aging_seconds_per_point` of waiting adds one point to its priority, so a
  // task that keeps losing eventually outranks every newer one (nothing
  // starves). The grace (4 h) keeps aging from turning the order into FIFO
  // under a burst: with 30 min, the development burst's mean flow time
  // went from 0.72 to 0.78 x FIFO's.
  double aging_grace_seconds = 14400;
  double aging_seconds_per_point = 60;
  // A task is critical when its upward rank is at least this fraction of
  // the drain horizon (the remaining predicted work of the executions in the
  // batch, spread over the slots): left to the fair-share order it would
  // make everything end later, so it goes first. Below 1 because estimates
  // are rough and a long path is better started early. 0.5 measured best
  // on the development burst over four arrival seeds (bench/README.md,
  // 2026-12-04: makespan within 1.05 x HEFT's on all four, against two of
  // four with 0.7, and mean flow no worse on any seed).
  double critical_path_fraction = 0.5;
  // Fair-share weight per tenant (an execution's tenant); tenants not
  // listed weigh `default_tenant_weight`.
  absl::flat_hash_map<std::string, double> tenant_weights;
  double default_tenant_weight = 1.0;
  // Fair share by a task label instead (e.g. "team"): a task carrying this
  // label weighs `label_weights[its value]` (`default_tenant_weight` when
  // the value is not listed); a task without it, its execution's tenant
  // weight. Empty: tenants only.
  std::string fair_share_label;
  absl::flat_hash_map<std::string, double> label_weights;

  // InvalidArgument naming the field that is out of range.
  absl::Status Validate() const;
  // The weight of `tenant` (default_tenant_weight when not listed).
  double WeightOf(absl::string_view tenant) const;
  // The weight of the fair_share_label value `value` (default_tenant_weight
  // when not listed).
  double LabelWeightOf(absl::string_view value) const;
};

// What the ranker needs of one ready task.
struct RankTask {
  int priority = 0;                // user priority, 0..100, higher first
  double waiting_seconds = 0;      // time since it became ready
  double upward_rank_seconds = 0;  // see UpwardRanks
  int execution = 0;               // index into the ExecutionShare span
  uint64_t ready_sequence = 0;     // order it became ready in: the last tie-break
  // > 0: the task's own fair-share weight (its fair_share_label value's,
  // RankingConfig::LabelWeightOf), used instead of its execution's.
  double weight = 0;
};

// What the ranker needs of one execution with ready tasks.
struct ExecutionShare {
  double remaining_work_seconds = 0;  // predicted seconds of its unfinished tasks
  double weight = 1;                  // its tenant's weight (RankingConfig::WeightOf)
};

// Orders ready tasks, best first:
//   1. effective priority (user priority plus aging points), higher first;
//   2. critical tasks (see RankingConfig) before the others, longest
//      upward rank first — this is what keeps the makespan near HEFT's;
//   3. the others by their execution's remaining work divided by its
//      weight (the task's own when it has one: its label's), least first
//      (weighted shortest-remaining-work: a small execution is never stuck
//      behind a huge one, and a tenant or label value of weight 2 competes
//      as if its work were half as large) — this is what keeps the mean
//      flow time near SRPT's;
//   4. longer upward rank first, then the order they became ready in.
// Stateless and thread-compatible; cost O(n log n) (O(n + k log k) for Top).
class TaskRanker {
 public:
  explicit TaskRanker(RankingConfig config) : config_(std::move(config)) {}

  // All of `tasks`' indices, best first. `cluster_slots` (> 0) is the
  // number of slots the tasks compete for, to size the drain horizon.
  std::vector<int> Rank(absl::Span<const RankTask> tasks,
                        absl::Span<const ExecutionShare> executions, int cluster_slots) const;

  // The best `k` indices, best first (the simulator's per-event pick).
  std::vector<int> Top(absl::Span<const RankTask> tasks,
                       absl::Span<const ExecutionShare> executions, int cluster_slots, int k) const;

  // The effective priority of a task (user priority plus aging points).
  double EffectivePriority(const RankTask& task) const;

  const RankingConfig& config() const { return config_; }

 private:
  struct Key {
    double priority;
    bool critical;
    double share;
    double upward_rank;
    uint64_t sequence;
  };
  std::vector<Key> Keys(absl::Span<const RankTask> tasks,
                        absl::Span<const ExecutionShare> executions, int cluster_slots) const;
  static bool Before(const Key& a, const Key& b);

  RankingConfig config_;
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_TASK_RANKER_H_
