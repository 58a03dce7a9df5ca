#ifndef GYRE_SERVICES_ORCHESTRATOR_EXECUTION_TABLE_H_
#define GYRE_SERVICES_ORCHESTRATOR_EXECUTION_TABLE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "libs/workflow/context_keys.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/execution_entry.h"
#include "services/orchestrator/queue_table.h"

namespace gyre::orchestrator {

// A task of an execution, found by name or by an attempt's reference.
struct TaskLocation {
  ExecutionEntry* execution = nullptr;  // null: not found
  uint32_t task = 0;
  explicit operator bool() const { return execution != nullptr; }
  TaskEntry& entry() const { return execution->tasks[task]; }
};

// ExecutionStarted.context_rules of executions started now: context is
// declared, and checked on replay as it was live.
inline constexpr uint32_t kDeclaredContextRules = 1;

// Every execution the engine knows, in start order (an execution's index
// never changes: ready queues and leases refer to it by index; a forgotten
// execution leaves a null slot until the next restart renumbers them).
// Owns: the ExecutionEntry objects, lookups by id, request id and task
// name, new execution ids, the count of executions per state (the
// gyre_executions gauge), the secondary indexes lists and retention read
// (by workflow, state and tenant in start order; finished ones by end
// time), forgetting executions and dropping their logs, building an
// execution's structure, and the executions' proto views and pages. Must
// not touch: task states (the task state machine changes them), agents,
// the store.
// Not thread-safe: used under the engine lock.
class ExecutionTable {
 public:
  explicit ExecutionTable(EngineMetrics& metrics) : metrics_(metrics) {}

  // "executions/{id}" (or the id, or a longer name under it), or null.
  ExecutionEntry* Find(absl::string_view name);
  ExecutionEntry* FindByRequest(const std::string& request_id);
  // The task `task_id` of execution `execution`; empty when either is unknown.
  TaskLocation FindTask(absl::string_view execution, absl::string_view task_id);
  TaskLocation FindTask(const gyre::v1::AttemptRef& ref) {
    return FindTask(ref.execution(), ref.task_id());
  }
  // "executions/{e}/tasks/{t}"; empty when not found.
  TaskLocation FindTaskRun(absl::string_view name);

  // The execution at `index`, which must not have been forgotten.
  ExecutionEntry& at(uint32_t index) { return *executions_[index]; }
  const ExecutionEntry& at(uint32_t index) const { return *executions_[index]; }
  // The execution at `index`, or null when it was forgotten (retention) or
  // never existed: what a stale reference by index (a ready-queue entry, a
  // global task's waiter, a watcher's backlog) must use.
  ExecutionEntry* Get(uint32_t index) {
    return index < executions_.size() ? executions_[index].get() : nullptr;
  }
  // The same, shared: a reader that builds from it after the lock keeps it
  // alive even if retention forgets it meanwhile.
  std::shared_ptr<const ExecutionEntry> Share(uint32_t index) const {
    return index < executions_.size() ? executions_[index] : nullptr;
  }
  // Slots, forgotten ones included (size() - live() of them are null).
  size_t size() const { return executions_.size(); }
  size_t live() const { return live_.size(); }
  // Every slot in index order; a forgotten execution's is null.
  const std::vector<std::shared_ptr<ExecutionEntry>>& all() const { return executions_; }

  // A new, time-ordered execution id. The counter restarts with the
  // process, so an id taken within the same millisecond before a restart is
  // skipped.
  std::string NewId(absl::Time now);
  // How many ids were handed out (kept in snapshots).
  uint64_t started() const { return started_; }
  void set_started(uint64_t started) { started_ = started; }

  // The execution's structure (tasks, edges, queues) with every task
  // pending, registered but with no event emitted and nothing made ready.
  // `definition` is the one in `record` (passed apart so it can be moved);
  // `declared`, its declared context names when the caller has them.
  ExecutionEntry& Build(const gyre::v1::ExecutionStarted& record,
                        std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
                        std::shared_ptr<const workflow::DeclaredContext> declared,
                        QueueTable& queues);

  // Moves `exec` from state `from` to `to` in the executions gauge and the
  // index by state (UNSPECIFIED: none, for a new or a restored execution).
  void CountState(const ExecutionEntry& exec, gyre::v1::ExecutionState from,
                  gyre::v1::ExecutionState to);
  // `exec` is final and its end_time set: indexed by end time for retention.
  void Ended(const ExecutionEntry& exec);

  // --- Retention (retention.h decides what is due; replay applies the same) ---
  // Finished executions by end time, oldest first: (end Unix nanos, index).
  using EndIndex = absl::btree_set<std::pair<int64_t, uint32_t>>;
  const EndIndex& ended() const { return by_end_; }
  // Those whose attempts' logs were not dropped yet.
  const EndIndex& ended_with_logs() const { return logs_by_end_; }
  // Forgets the finished execution `id`: its slot becomes null, its id and
  // request id are free, it leaves every index and the gauge. False when
  // unknown (already forgotten) or not final (kept: never forget a live one).
  bool Forget(absl::string_view id);
  // Drops the stdout/stderr tails of every attempt of the finished
  // execution `id`, noting `now` (GetTaskLogs tells it). False when unknown
  // or not final.
  bool DropLogs(absl::string_view id, absl::Time now);
  // Takes a dropped execution out of the lookups and the gauge
  // (ShardHandover); its slot stays, marked released.
  void Release(ExecutionEntry& exec);

  // Moves one execution from state `from` to `to` in the executions gauge
  // (UNSPECIFIED: none, for a new or a restored execution).
  void CountState(gyre::v1::ExecutionState from, gyre::v1::ExecutionState to);

  // A page of executions, newest first (see WorkflowEngine::ListExecutions).
  absl::StatusOr<gyre::v1::ListExecutionsResponse> List(const gyre::v1::ListExecutionsRequest& req,
                                                        size_t limit) const;
  // A page of an execution's task runs, in workflow order, written into
  // the empty `response` (which may live on an arena).
  absl::Status ListTaskRuns(const ExecutionEntry& exec, const gyre::v1::ListTaskRunsRequest& req,
                            size_t limit, const QueueTable& queues,
                            gyre::v1::ListTaskRunsResponse* response) const;

 private:
  using Slots = absl::btree_set<uint32_t>;
  // The indexes a page walks together, newest first, for `req`'s most
  // selective filter (every live execution when it has none); none when
  // nothing can match.
  std::vector<const Slots*> Candidates(const gyre::v1::ListExecutionsRequest& req) const;
  void Unindex(const ExecutionEntry& exec);

  EngineMetrics& metrics_;
  std::vector<std::shared_ptr<ExecutionEntry>> executions_;
  // Secondary indexes of live executions, by slot (= start order).
  Slots live_;
  absl::flat_hash_map<std::string, Slots> by_workflow_;
  absl::flat_hash_map<std::string, Slots> by_tenant_;
  std::array<Slots, gyre::v1::ExecutionState_ARRAYSIZE> in_state_;
  EndIndex by_end_;
  EndIndex logs_by_end_;
  absl::flat_hash_map<std::string, uint32_t> by_id_;
  absl::flat_hash_map<std::string, uint32_t> by_request_;
  uint64_t started_ = 0;
  std::array<int64_t, gyre::v1::ExecutionState_ARRAYSIZE> by_state_{};
};

// What an Execution shows in place of a secret context value
// (StartExecutionRequest.secret_context).
inline constexpr char kSecretMask[] = "<secret>";

// The proto views of an execution and of a task run. Lists leave the
// context out (ExecutionView BASIC).
gyre::v1::Execution ExecutionProto(const ExecutionEntry& exec, bool with_context = true);
gyre::v1::TaskRun TaskRunProto(const ExecutionEntry& exec, uint32_t task, bool with_history,
                               const QueueTable& queues);
// The same, written into `out` (a page's element, built in place).
void FillTaskRun(const ExecutionEntry& exec, uint32_t task, bool with_history,
                 const QueueTable& queues, gyre::v1::TaskRun* out);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EXECUTION_TABLE_H_
