#ifndef GYRE_SERVICES_ORCHESTRATOR_EXECUTION_ENTRY_H_
#define GYRE_SERVICES_ORCHESTRATOR_EXECUTION_ENTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "gyre/v1/execution.pb.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/workflow/context_keys.h"
#include "services/orchestrator/attempt_record.h"
#include "services/orchestrator/task_environment.h"

namespace gyre::orchestrator {

// Whether a task in `state` is done for good.
inline bool IsTerminal(gyre::v1::TaskState state) {
  return state == gyre::v1::TASK_SUCCEEDED || state == gyre::v1::TASK_FAILED ||
         state == gyre::v1::TASK_SKIPPED || state == gyre::v1::TASK_CANCELLED ||
         state == gyre::v1::TASK_TIMED_OUT;
}

// Output captured from one attempt (tails capped by the agent).
struct AttemptLogs {
  std::string stdout_tail;
  std::string stderr_tail;
  bool truncated = false;  // the attempt wrote more than was kept
};

// What gyre-predictor predicted for a task (PredictorLink), for tasks that
// declare no resources. Not journaled: a restart asks again for nothing
// (a prediction only shapes placement and what `gyre status` shows).
struct TaskPrediction {
  double duration_seconds = 0;  // point prediction
  double cpu = 0;               // point prediction, cores
  int64_t memory_bytes = 0;     // p90: what placement reserves
  // Whether placement uses it: only when it arrived before the task's first
  // lease (so that a lease gives back exactly what it reserved).
  bool placed = false;
  gyre::v1::Resources placement;  // cpu and memory_bytes as above
};

// The parts of a task's state that many tasks never need: allocated on
// first use, so that a pending task costs only its TaskEntry.
struct TaskDetails {
  // Keys the task wrote to $GYRE_OUTPUT.
  std::map<std::string, std::string> outputs;
  // Context added by ancestors' outputs, passed along edges.
  std::map<std::string, std::string> inherited;
  // Content hash of spec + context; set for global tasks when they become ready.
  std::string identity;
  // For a global task satisfied by another execution's run: that task run.
  std::string satisfied_by;
  // Logs of every attempt that reported, by attempt number.
  std::map<int64_t, AttemptLogs> logs;
  // Set when the predictor answered for this task; null otherwise.
  std::unique_ptr<TaskPrediction> prediction;
};

// Runtime state of one task of an execution (its entry in ExecutionEntry::tasks). Kept small: an
// execution of a million tasks holds a million of these; the spec is shared.
struct TaskEntry {
  const gyre::v1::TaskSpec* spec = nullptr;  // owned by ExecutionEntry::definition
  gyre::v1::TaskState state = gyre::v1::TASK_PENDING;
  uint32_t unmet_dependencies = 0;
  std::vector<uint32_t> dependants;
  std::vector<uint32_t> parents;
  uint32_t queue = 0;  // index into the engine's queue table
  uint8_t priority = 50;
  uint16_t generation = 0;  // bumped whenever a queued entry must go stale
  int64_t attempt = 0;      // current attempt number: the fencing token
  int32_t retries_used = 0;
  std::string agent;  // holder of the current lease
  absl::Time ready_time;
  absl::Time lease_time;
  std::vector<AttemptRecord> attempts;
  std::string reason;
  std::unique_ptr<TaskDetails> details;  // null until needed

  // The details, allocated if they were not yet.
  TaskDetails& mutable_details() {
    if (details == nullptr) details = std::make_unique<TaskDetails>();
    return *details;
  }
  // The details, or empty ones when none were allocated.
  const TaskDetails& details_or_empty() const {
    static const TaskDetails kNone;
    return details != nullptr ? *details : kNone;
  }
};

// One entry of an execution's event history, kept small (16 bytes): a
// million-task execution has several million. A task state change is turned
// into a gyre::v1::Event only when a watcher reads it; the few
// execution-level events are kept whole beside (ExecutionEntry::whole_events).
struct StoredEvent {
  static constexpr uint32_t kExecutionLevel = UINT32_MAX;

  int64_t unix_nanos = 0;
  uint32_t task = kExecutionLevel;  // task index, or kExecutionLevel
  uint8_t state = 0;                // the task's new gyre::v1::TaskState
  uint8_t reserved = 0;
  // The task's attempts at the time; a final state's event carries the last.
  uint16_t attempts = 0;
};
static_assert(sizeof(StoredEvent) == 16);

// One execution: its definition, context, task states and event history.
// Owned and guarded by the WorkflowEngine.
struct ExecutionEntry {
  std::string id;         // the {execution} of "executions/{execution}"
  std::string full_name;  // "executions/{id}": every event and assignment names it
  uint32_t index = 0;     // its place in the execution table, used in ReadyTask entries
  std::shared_ptr<const gyre::v1::WorkflowDefinition> definition;
  gyre::v1::ExecutionState state = gyre::v1::EXECUTION_PENDING;
  std::map<std::string, std::string> context;
  // Keys of `context` whose values only tasks may see (ExecutionProto masks
  // them).
  std::set<std::string> secret_keys;
  std::string parent;
  std::vector<std::string> targets;
  int32_t priority = 50;
  std::string request_id;
  // What the start request said (RequestFingerprint), so that its request_id
  // reused for a different request is refused; 0 when unknown (recorded by
  // an older Gyre, or no request_id).
  uint64_t request_fingerprint = 0;
  // The context names its definition declares: what may enter its context
  // and reach its tasks' environments.
  std::shared_ptr<const workflow::DeclaredContext> declared;
  // ExecutionStarted.context_rules: 1 when its outputs' and decisions'
  // context keys are checked on replay too.
  uint32_t context_rules = 0;
  std::string reason;
  absl::Time create_time;
  absl::Time start_time = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
  ExecutionBuiltins builtins;
  // Children its evaluators' decisions started (bounded per execution: an
  // evaluator that starts its own workflow must not multiply for ever).
  uint32_t children_started = 0;
  // When retention dropped its attempts' logs; InfinitePast: not dropped.
  absl::Time logs_expired = absl::InfinitePast();
  // Its shard was released to another orchestrator (ShardHandover): the
  // slot stays, emptied, so that no index moves; nothing can find it.
  bool released = false;

  std::vector<TaskEntry> tasks;
  absl::flat_hash_map<std::string, uint32_t> task_index;
  // Tasks popped while paused, re-queued on resume.
  std::vector<uint32_t> parked;

  // Counts by state, kept current on every transition.
  int32_t pending = 0, ready = 0, running = 0, succeeded = 0, failed = 0, skipped = 0,
          cancelled = 0;
  // Tasks not selected by `targets` are not part of the run at all.
  int32_t total = 0;

  // The event history: sequence i+1 at index i. The task's reason at the
  // time, when it had one, is in event_reasons (by index).
  std::vector<StoredEvent> events;
  absl::flat_hash_map<uint32_t, std::string> event_reasons;
  absl::flat_hash_map<uint32_t, gyre::v1::Event> whole_events;

  const std::string& name() const { return full_name; }
  bool final() const {
    return state == gyre::v1::EXECUTION_SUCCEEDED || state == gyre::v1::EXECUTION_FAILED ||
           state == gyre::v1::EXECUTION_CANCELLED;
  }
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EXECUTION_ENTRY_H_
