#ifndef GYRE_SERVICES_ORCHESTRATOR_LOAD_SNAPSHOT_H_
#define GYRE_SERVICES_ORCHESTRATOR_LOAD_SNAPSHOT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gyre/v1/cluster.pb.h"
#include "gyre/v1/predictor_service.pb.h"
#include "services/orchestrator/execution_table.h"

namespace gyre::orchestrator {

// What the load forecast knows of one worker type at one moment: the
// fields of a ForecastQueueLoadRequest the orchestrator fills.
struct WorkerTypeLoad {
  std::vector<gyre::v1::PendingTaskLoad> pending;
  std::vector<double> running_remaining_seconds;
  int32_t slots_per_agent = 1;
  double arrival_rate_per_second = 0;
  double arrival_task_seconds = 0;
};

// Per worker type (queue name).
using LoadSnapshot = std::map<std::string, WorkerTypeLoad>;

struct LoadSnapshotOptions {
  // Expected duration of a task nothing says anything about
  // (forecast_default_task_duration).
  double default_task_seconds = 60;
  // Arrivals are the tasks of executions created within this window.
  absl::Duration arrival_window = absl::Minutes(5);
};

// A task's expected duration from its spec alone: a `builtin: sleep`'s
// length, 0 for `noop`, else options.default_task_seconds.
double ExpectedTaskSeconds(const gyre::v1::TaskSpec& spec, const LoadSnapshotOptions& options);
// The same for a task of the engine: gyre-predictor's point prediction when
// the engine holds one (TaskDetails::prediction, for tasks that declare no
// resources), else what its spec says.
double ExpectedTaskSeconds(const TaskEntry& task, const LoadSnapshotOptions& options);

// Builds the snapshot from the engine's tables (call under the engine lock;
// no I/O): every task of a pending or running execution that has not
// finished, with its earliest start by DAG position (the longest expected
// remaining path through its unfinished ancestors) or its expected
// remaining time when running (a task past its expectation is given 10% of
// it more); slots per agent from the queues' agents and slots; arrivals
// from executions created within the window. O(executions + their
// unfinished tasks and edges).
LoadSnapshot TakeLoadSnapshot(ExecutionTable& executions,
                              const std::vector<gyre::v1::QueueInfo>& queues, absl::Time now,
                              const LoadSnapshotOptions& options);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_LOAD_SNAPSHOT_H_
