#ifndef GYRE_SERVICES_ORCHESTRATOR_ENGINE_METRICS_H_
#define GYRE_SERVICES_ORCHESTRATOR_ENGINE_METRICS_H_

#include <array>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/execution.pb.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace gyre::orchestrator {

// The orchestrator's Prometheus metrics. Label values are bounded: worker
// types are configured or created by workflows (queues), outcomes and states
// are enums. Without a registry every method is a no-op (unit tests).
// Thread-safe.
class EngineMetrics {
 public:
  explicit EngineMetrics(prometheus::Registry* registry);

  // Per worker type: the autoscaling signal, its inputs, and the connected
  // agents serving it (what the autoscaler delivered).
  void SetQueue(const std::string& worker_type, int64_t queued, int64_t running,
                int64_t desired_workers, int64_t connected_agents);
  // Drops the worker type's series (nobody serves it, nothing waits in
  // it): series of names clients made up must not accumulate.
  void RemoveQueue(const std::string& worker_type);
  void SetAgents(int64_t connected, int64_t free_slots);
  // A task attempt ended; counted by outcome as "succeeded", "failed",
  // "timed_out", "cancelled", "lost" or "unknown".
  void CountOutcome(gyre::v1::AttemptOutcome outcome);
  // Executions currently in `state` ("pending", "running", "paused",
  // "succeeded", "failed", "cancelled").
  void SetExecutions(gyre::v1::ExecutionState state, int64_t count);
  void ObserveSubmitToStart(double seconds);
  void ObserveRunDuration(double seconds);
  void ObserveLeaseLatency(double seconds);
  // An execution ended, `seconds` after it was submitted.
  void ObserveExecutionDuration(double seconds);

 private:
  struct QueueGauges {
    prometheus::Gauge* desired = nullptr;
    prometheus::Gauge* depth = nullptr;
    prometheus::Gauge* running = nullptr;
    prometheus::Gauge* agents = nullptr;
  };

  prometheus::Family<prometheus::Gauge>* desired_workers_ = nullptr;
  prometheus::Family<prometheus::Gauge>* queue_depth_ = nullptr;
  prometheus::Family<prometheus::Gauge>* running_tasks_ = nullptr;
  prometheus::Family<prometheus::Gauge>* queue_agents_ = nullptr;
  prometheus::Gauge* agents_connected_ = nullptr;
  prometheus::Gauge* free_slots_ = nullptr;
  prometheus::Family<prometheus::Counter>* outcomes_ = nullptr;
  // One series per outcome, made up front (so each is exported from zero)
  // and indexed by the enum: a label lookup per result was measurable.
  std::array<prometheus::Counter*, gyre::v1::AttemptOutcome_ARRAYSIZE> outcome_counters_{};
  prometheus::Family<prometheus::Gauge>* executions_ = nullptr;
  // One series per state, made up front like the outcome counters.
  std::array<prometheus::Gauge*, gyre::v1::ExecutionState_ARRAYSIZE> execution_gauges_{};
  prometheus::Histogram* submit_to_start_ = nullptr;
  prometheus::Histogram* run_duration_ = nullptr;
  prometheus::Histogram* lease_latency_ = nullptr;
  prometheus::Histogram* execution_duration_ = nullptr;

  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, QueueGauges> queues_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ENGINE_METRICS_H_
