#ifndef GYRE_SERVICES_ORCHESTRATOR_DESIRED_WORKERS_H_
#define GYRE_SERVICES_ORCHESTRATOR_DESIRED_WORKERS_H_

#include <cstdint>

#include "absl/status/status.h"

namespace gyre::orchestrator {

// Autoscaling bounds of one worker pool (worker type), from config.
struct WorkerPoolPolicy {
  int64_t min_workers = 0;
  int64_t max_workers = 10;
  // Tasks one worker is expected to absorb; the backlog is divided by it.
  int64_t tasks_per_worker = 1;

  // InvalidArgument when min > max, min < 0 or tasks_per_worker < 1.
  absl::Status Validate() const;
};

// The value of orchestrator_desired_workers{worker_type} that KEDA or the
// Prometheus Adapter scale agents on:
//   clamp(ceil(backlog / tasks_per_worker), min_workers, max_workers)
// where backlog = queued + running tasks of the worker type. Running tasks
// count so that a pool is not scaled down under agents that are busy (a
// queue-only signal would drop to zero the moment work is leased and kill
// the agents running it). Example: 18 queued, factor 6, min 0, max 4 -> 3.
int64_t DesiredWorkers(int64_t queued, int64_t running, const WorkerPoolPolicy& policy);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_DESIRED_WORKERS_H_
