#ifndef GYRE_SERVICES_OPTIMIZER_WORKFLOW_ANALYSIS_H_
#define GYRE_SERVICES_OPTIMIZER_WORKFLOW_ANALYSIS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "gyre/v1/workflow.pb.h"

namespace gyre::optimizer {

// Where a task's duration came from, best first.
enum class DurationSource {
  kActual,     // a finished execution's attempt
  kRecorded,   // recorded or predicted, given by the caller
  kPredicted,  // gyre-predictor's, asked by the optimizer
  kSleep,      // the task is `builtin: sleep` for that long
  kDefault,    // none of the above: AnalysisInput::default_seconds
};
const char* DurationSourceName(DurationSource source);

// What past runs of one task say (from finished executions).
struct TaskHistory {
  std::vector<double> run_seconds;    // wall time of each successful attempt
  int retried_runs = 0;               // runs that needed more than one attempt
  int retry_successes = 0;            // of those, runs whose retry succeeded
  double failed_attempt_seconds = 0;  // wall time spent in the failed retries
  int64_t peak_rss_bytes = 0;         // the most any successful attempt used
};

// Everything an analysis reads. Maps are by task id; pool_max by queue
// (worker type): the slots a pool can have at most; a queue absent from it
// is unlimited.
struct AnalysisInput {
  gyre::v1::WorkflowDefinition definition;
  absl::flat_hash_map<std::string, double> actual_seconds;
  absl::flat_hash_map<std::string, double> recorded_seconds;
  absl::flat_hash_map<std::string, double> predicted_seconds;
  absl::flat_hash_map<std::string, TaskHistory> history;
  absl::flat_hash_map<std::string, int> pool_max;
  double default_seconds = 1.0;
};

// The DAG in the form the what-if simulation runs: indices, not ids.
struct SimGraph {
  std::vector<double> duration;
  std::vector<int> queue;     // index into caps
  std::vector<int> priority;  // 0..100, higher first (as the engine's ready queue)
  std::vector<std::vector<int>> children;
  std::vector<int> parent_count;
  std::vector<int> caps;  // per queue; 0 = unlimited
};

// A step of the parallelism profile: from `start_seconds` on, `width` tasks
// run (the time-weighted mean when steps were merged into buckets).
struct ProfileStep {
  double start_seconds = 0;
  double width = 0;
};

// One list-scheduling run: whenever a slot of a queue is free, the ready
// task of that queue with the highest priority, then the earliest ready,
// starts (the engine's dispatch order: its ReadyQueue is a FIFO per priority).
struct SimResult {
  double makespan_seconds = 0;
  int peak_width = 0;
  std::vector<int> peak_per_queue;
  std::vector<double> wait_per_queue;  // seconds tasks spent ready, waiting for a slot
  std::vector<double> start_seconds;   // per task
  std::vector<ProfileStep> steps;      // every change of width
};
SimResult Simulate(const SimGraph& graph);

// Merges a profile into at most `buckets` equal-time steps (time-weighted).
std::vector<ProfileStep> Bucketize(const std::vector<ProfileStep>& steps, double makespan,
                                   int buckets);

enum class FindingKind {
  kFanIn,           // a fan-in every path crosses
  kSerialChain,     // a serial chain on the critical path that runs alone
  kPoolCap,         // a pool's max caps the width
  kTimeoutTooLow,   // timeout below the task's p99
  kTimeoutTooHigh,  // timeout far above its p99
  kFutileRetries,   // retries that never succeed
  kMemoryMisfit,    // declared memory far from what runs used
};
const char* FindingKindName(FindingKind kind);

// A bottleneck and the evidence for it, in words and numbers.
struct Finding {
  FindingKind kind;
  std::vector<std::string> task_ids;
  std::string queue;
  double seconds = 0;  // the duration or wait it concerns
  std::string evidence;
  int dependants = 0;  // kFanIn: tasks that transitively wait for it
};

enum class RecommendationKind {
  kPrioritizeCriticalPath,  // priorities along the critical path
  kRaisePoolMax,            // a pool hint (cluster configuration)
  kSetTimeout,              // timeout from history
  kReduceRetries,           // retry policy from history
  kRunInParallel,           // drop a dependency: changes what the workflow computes
  kSplitTask,               // split a long fan-in: changes what the workflow computes
  kSetMemory,               // resources.memory from history (peak RSS)
};
const char* RecommendationKindName(RecommendationKind kind);

// A change and its effect MEASURED by re-running the simulation on the
// changed workflow (makespan_after), or, for timeouts and retries, by the
// history it comes from (saved_seconds).
struct Recommendation {
  std::string id;  // stable for the same input, for ApplyOptimizations
  RecommendationKind kind;
  std::vector<std::string> task_ids;
  std::string queue;
  std::string description;
  double makespan_before = 0;
  double makespan_after = 0;
  double saved_seconds = 0;  // per affected run, from history
  // Changes what the workflow computes (drops a dependency, splits a task):
  // shown, never applied automatically.
  bool changes_semantics = false;
  // Not a change to the definition (a pool's max is cluster configuration).
  bool configuration_only = false;
  // The change itself, per kind.
  int new_priority = 0;
  double new_timeout_seconds = 0;
  int new_max_retries = 0;
  int new_pool_max = 0;
  int64_t new_memory_bytes = 0;
  std::string dependency;  // kRunInParallel: task_ids[0] no longer depends on it
};

struct Analysis {
  std::vector<std::string> critical_path;
  double critical_path_seconds = 0;
  double total_work_seconds = 0;
  double critical_path_share = 0;         // critical path / total work
  double makespan_seconds = 0;            // simulated under the pool limits, as defined
  double unlimited_makespan_seconds = 0;  // the same without pool limits
  double optimized_makespan_seconds = 0;  // with every definition change applied
  int peak_width = 0;
  std::vector<ProfileStep> profile;  // at most kProfileBuckets steps
  // How many tasks' durations came from each DurationSource.
  int duration_sources[5] = {0, 0, 0, 0, 0};
  std::vector<Finding> findings;
  std::vector<Recommendation> recommendations;  // most valuable first
};

inline constexpr int kProfileBuckets = 64;
// What-if simulations per kind (each is O((tasks + edges) log tasks)).
inline constexpr int kMaxChainWhatIfs = 5;
inline constexpr int kMaxFanInWhatIfs = 3;

// Analyzes a workflow. The definition must be valid (ValidateWorkflowGraph);
// InvalidArgument says why when a duration or pool max is out of range.
absl::StatusOr<Analysis> AnalyzeWorkflow(const AnalysisInput& input);

// Percentiles of a run history (nearest-rank); 0 for an empty one.
double Percentile(std::vector<double> values, double p);

}  // namespace gyre::optimizer

#endif  // GYRE_SERVICES_OPTIMIZER_WORKFLOW_ANALYSIS_H_
