#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_COST_METER_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_COST_METER_H_

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/map.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/common/task_cost.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "services/orchestrator/attempt_record.h"

namespace gyre::orchestrator {

// What attempts cost: prices per worker type and the task labels costs are
// broken down by (orchestrator config worker_prices and cost_labels).
struct TaskCostOptions {
  std::map<std::string, ResourcePrices> prices;
  std::vector<std::string> label_keys;

  // The most label keys (each multiplies the series).
  static constexpr size_t kMaxLabelKeys = 8;
  // InvalidArgument naming the key or price: a label key that is not a
  // Prometheus label name, is "worker_type" or repeats; over kMaxLabelKeys;
  // a negative price.
  absl::Status Validate() const;
};

// Exports the actual cost of every attempt that reports a result as
// gyre_task_cost_total{worker_type, <each configured label key>}, priced by
// libs/common/task_cost.h's formula on ChargedHold (declared-or-used cores
// and memory, declared GPUs, wall time). Attempts of an unpriced worker type
// are not counted (their cost is unknown, not zero).
//
// Label values are bounded: each is cut to kMaxLabelValueLength bytes, a
// task without the label gets "", and once a key has kMaxValuesPerLabel
// distinct values every new one is counted as "other" — so a workflow that
// sets a fresh label value per run cannot grow the series without bound.
//
// Thread-safe (one mutex, held for a hash lookup and an increment; no I/O).
// Without a registry or without prices it does nothing.
class TaskCostMeter {
 public:
  static constexpr size_t kMaxLabelValueLength = 64;
  static constexpr size_t kMaxValuesPerLabel = 100;

  TaskCostMeter(prometheus::Registry* registry, TaskCostOptions options);

  // Counts one attempt's cost; returns it (0 when its worker type has no
  // price). The worker type is the task's queue, else the definition's
  // default_queue, else "default" (as ExecutionTable resolves it).
  double Record(const gyre::v1::WorkflowDefinition& definition, const gyre::v1::TaskSpec& spec,
                const AttemptRecord& attempt);
  double Record(const std::string& worker_type,
                const google::protobuf::Map<std::string, std::string>& task_labels,
                const gyre::v1::Resources& declared, const AttemptRecord& attempt);

 private:
  std::string BoundedValue(size_t key_index, const std::string& value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const TaskCostOptions options_;
  prometheus::Family<prometheus::Counter>* family_ = nullptr;
  absl::Mutex mutex_;
  // Per label key, the values already given a series.
  std::vector<absl::flat_hash_set<std::string>> seen_values_ ABSL_GUARDED_BY(mutex_);
  // By worker type and label values joined with '\0'.
  absl::flat_hash_map<std::string, prometheus::Counter*> counters_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_COST_METER_H_
