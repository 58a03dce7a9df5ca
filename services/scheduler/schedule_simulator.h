#ifndef GYRE_SERVICES_SCHEDULER_SCHEDULE_SIMULATOR_H_
#define GYRE_SERVICES_SCHEDULER_SCHEDULE_SIMULATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/wfcommons/wfcommons_trace.h"
#include "services/scheduler/task_ranker.h"

namespace gyre::scheduler {

// Which rule picks the next ready task when a slot frees.
enum class SimulationPolicy {
  kFifo,  // the order tasks became ready in
  kHeft,  // upward rank from the true durations (the makespan reference)
  kSrpt,  // the execution with least remaining true work, then upward rank
          // (the flow-time reference)
  kGyre,  // the real TaskRanker, seeing only OnlineDurationEstimator's
          // durations learnt from the runs finished so far (and the
          // SimulationPredictor's predictions when one is given)
};
absl::StatusOr<SimulationPolicy> ParseSimulationPolicy(absl::string_view name);
absl::string_view SimulationPolicyName(SimulationPolicy policy);

// One workflow as the simulator runs it: a DAG with the recorded durations
// as the truth.
struct SimulatedWorkflow {
  std::string name;
  std::vector<std::string> types;          // task type, what the estimator learns by
  std::vector<double> durations;           // true seconds
  std::vector<std::vector<int>> children;  // dependants of each task
  std::vector<int> parent_counts;          // dependencies of each task
  std::vector<int> topological_order;      // parents before children
  double total_work_seconds = 0;
};
SimulatedWorkflow SimulatedWorkflowFromTrace(const wfcommons::Trace& trace);

// Per-task duration predictions for kGyre, made online: what production's
// scheduler receives as a task's predicted seconds (the predictor's, on
// TaskRun.predicted_*). The simulator asks again for the unfinished tasks
// of every arrived execution at most every
// SimulationOptions::prediction_refresh_seconds, and reports every finished
// task; a prediction never sees a duration before its task finished.
class SimulationPredictor {
 public:
  virtual ~SimulationPredictor() = default;
  // Predicted seconds of task `task` of `workflows[workflow]`; <= 0: no
  // prediction (the scheduler's own per-type estimate answers).
  virtual double PredictSeconds(int workflow, int task) = 0;
  // Task `task` of `workflows[workflow]` finished after `seconds`.
  virtual void Observe(int workflow, int task, double seconds) = 0;
};

struct SimulationOptions {
  int slots = 1;                        // identical slots shared by every execution
  double mean_arrival_gap_seconds = 0;  // exponential gaps; 0 = all arrive at once
  uint64_t seed = 1;                    // for the gaps
  RankingConfig ranking;                // kGyre's config
  double prior_seconds = 60;            // kGyre's estimate before any run finished
  // kGyre's per-task predictions; null: the per-type online estimate only.
  // Not owned; Simulate calls it from its own thread only.
  SimulationPredictor* predictor = nullptr;
  // Simulated seconds between two refreshes of the predictions (production
  // asks once per execution; re-asking as tasks finish is what an online
  // model gives).
  double prediction_refresh_seconds = 60;
};

struct SimulationResult {
  double makespan_seconds = 0;   // first arrival to last completion
  double mean_flow_seconds = 0;  // execution arrival to its completion
  double p95_flow_seconds = 0;
  double mean_utilisation = 0;                     // busy slot-seconds / (slots * makespan)
  std::vector<double> arrival_seconds;             // per execution
  std::vector<double> flow_seconds;                // per execution
  std::vector<std::vector<double>> start_seconds;  // per execution, per task
};

// A discrete-event simulation of `workflows` arriving in the given order
// (the first at 0, then seeded exponential gaps) and sharing
// `options.slots` slots; every task takes its true duration. The same
// options give the same arrivals for every policy. InvalidArgument for no
// workflow or slots < 1.
absl::StatusOr<SimulationResult> Simulate(const std::vector<SimulatedWorkflow>& workflows,
                                          SimulationPolicy policy,
                                          const SimulationOptions& options);

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_SCHEDULE_SIMULATOR_H_
