#ifndef GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_ENGINE_H_
#define GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_ENGINE_H_

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/arena.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/cluster.pb.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "libs/common/timer_queue.h"
#include "services/orchestrator/agent_channel.h"
#include "services/orchestrator/desired_workers.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/execution_state.h"
#include "services/orchestrator/ready_queue.h"
#include "services/orchestrator/result_acks.h"
#include "services/orchestrator/state_store.h"
#include "services/orchestrator/task_output.h"

namespace gyre::orchestrator {

// Events handed out together by EventSubscription::Next. They live on one
// arena, so building thousands of them costs a pointer bump per field and
// freeing them one release, not a malloc and a free each.
struct EventChunk {
  std::unique_ptr<google::protobuf::Arena> arena;
  std::vector<gyre::v1::Event*> events;  // owned by the arena
};

// A Watch subscription: the events of one execution (or all) from a
// sequence number on. Thread-safe; the engine pushes, the RPC pops.
class EventSubscription {
 public:
  // Live events (and log chunks) a subscription holds unread before it is
  // cut off: a client that stops reading must not make the orchestrator
  // hold every event for it. A watcher of one execution holds only an index
  // into the stored history for its state events.
  // 4096 events of a few hundred bytes each: ~1 MB per subscription.
  static constexpr size_t kMaxPending = 4096;

  explicit EventSubscription(bool include_logs = false) : include_logs_(include_logs) {}
  // Whether live TASK_LOG events are wanted too.
  bool include_logs() const { return include_logs_; }
  // Waits up to `timeout` for the next events; none on timeout. Sets
  // `*last`, when given, to whether these are the last ones (the
  // subscription is closed and nothing is left). The chunk always has an
  // arena, for whatever the caller builds around its events.
  EventChunk Next(absl::Duration timeout, bool* last = nullptr);
  // Adds `event`, built once and shared by every subscription it goes to
  // (each reader copies it on its own thread). Past kMaxPending unread,
  // the subscription is closed with error() set instead.
  void Push(std::shared_ptr<const gyre::v1::Event> event);
  // Why the subscription was cut off (OK if it was not): RESOURCE_EXHAUSTED
  // once its reader fell kMaxPending events behind.
  absl::Status error();
  // Runs (once, from Push) when the subscription is cut off: the stream's
  // thread may be blocked writing to a client that reads nothing, and only
  // cancelling the call frees it. Must not block.
  void OnCutOff(absl::AnyInvocable<void()> hook);
  // Runs when Next has something again after it had nothing (events, or
  // the end), and at once if it has something now: a callback-API stream
  // waits for this instead of blocking a thread in Next. Runs under the
  // subscription's lock (maybe under the engine's): must not block nor call
  // the subscription. Null removes it; once that returns, it never runs.
  void OnReady(absl::AnyInvocable<void()> hook);
  void Close();
  bool closed();

  // Builds the stored events [from, to) on `arena`, appending them to
  // `events`.
  using Replayer =
      absl::AnyInvocable<void(uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                              std::vector<gyre::v1::Event*>* events)>;
  // Stored events [from, to) come first, built by `replay` a batch at a
  // time as Next asks for them: a long history built at once (under the
  // engine lock) would stall the engine and take its whole size in memory.
  // Set before anything is pushed; the subscription then follows one
  // execution, whose new events Extend the backlog (built the same way, on
  // the reader's thread, rather than on the engine's).
  void SetBacklog(uint32_t from, uint32_t to, Replayer replay);
  // Stored events up to `to` (exclusive) are to be delivered too.
  void Extend(uint32_t to);
  // Whether SetBacklog was called (read under the engine lock, as it was set).
  bool follows_one_execution() const { return follows_one_execution_; }

 private:
  const bool include_logs_;
  absl::Mutex mutex_;
  uint32_t backlog_next_ ABSL_GUARDED_BY(mutex_) = 0;
  uint32_t backlog_end_ ABSL_GUARDED_BY(mutex_) = 0;
  Replayer replay_;  // set before the subscription is shared
  bool follows_one_execution_ = false;
  std::vector<std::shared_ptr<const gyre::v1::Event>> pending_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mutex_);
  absl::AnyInvocable<void()> on_cut_off_ ABSL_GUARDED_BY(mutex_);
  absl::AnyInvocable<void()> on_ready_ ABSL_GUARDED_BY(mutex_);
  bool ReadableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return backlog_next_ < backlog_end_ || !pending_.empty() || closed_;
  }
};

class DurableWait;

// The orchestrator's domain logic: workflow definitions, executions, DAG
// readiness, ready queues per worker type, agent leases with attempt
// fencing, retries with backoff, pause/resume/cancel, the event stream and
// the autoscaling signal. gRPC handlers translate to and from it.
//
// Thread-safety: all state is guarded by one mutex; every method is short
// and does no I/O under it. Messages to agents and events to watchers are
// handed to per-stream queues under the lock (order preserved) and written to
// the network by the streams' own threads.
class WorkflowEngine {
 public:
  // The most results one agent message may carry (task_results).
  static constexpr int kMaxResultsPerMessage = 4096;
  // Evaluators' child workflows: at most this deep (a child is at depth 1,
  // its children at 2...) and at most this many started from one execution,
  // so an evaluator that starts its own workflow stops instead of
  // multiplying (one that started itself twice reached 703 executions).
  static constexpr int kMaxChildDepth = 8;
  static constexpr uint32_t kMaxChildrenPerExecution = 100;
  // What an agent may register (docs/limits.md). Ids and label keys and
  // values are names: short, so that they fit in status messages, log lines
  // and metric labels.
  static constexpr size_t kMaxAgentIdLength = 63;
  static constexpr size_t kMaxLabelLength = 63;
  static constexpr int kMaxAgentLabels = 64;
  static constexpr size_t kMaxQueueNameLength = 63;
  // Queue names one agent serves, and queue names the engine knows at once
  // (listed by agents or named by executions' tasks): each costs memory and
  // a metrics series, so a client must not be able to create them without
  // bound.
  static constexpr int kMaxQueuesPerAgent = 64;
  static constexpr size_t kMaxQueues = 4096;
  // Attempts one Register or Heartbeat may list (slots are at most 4096;
  // unacknowledged results come on top).
  static constexpr int kMaxAttemptRefs = 16384;
  // Attempt numbers an agent may send: far above any real task's (retries
  // are at most 100), far below where adding one overflows.
  static constexpr int64_t kMaxAttempt = int64_t{1} << 31;

  struct Options {
    absl::Duration lease_timeout = absl::Seconds(30);
    absl::Duration heartbeat_interval = absl::Seconds(5);
    std::map<std::string, WorkerPoolPolicy> worker_pools;
    WorkerPoolPolicy default_worker_pool;
    prometheus::Registry* metrics = nullptr;  // optional
    // Tasks that outcome scheduling picks targets from and that workflows
    // may depend on (task_library_dir); null when none was configured.
    std::shared_ptr<const gyre::v1::WorkflowDefinition> task_library;
    // Where acknowledged changes are made durable; null keeps state in
    // memory only (unit tests). Not owned.
    StateStore* store = nullptr;
    // A snapshot of the whole state is written (on a background thread)
    // after this many records, so a restart replays at most about this many;
    // 0 disables periodic snapshots.
    uint64_t snapshot_every_records = 200000;
    // A failed append (a disk error) leaves changes in memory that are not
    // durable, and nothing may be served from them: the engine then stops
    // (every call answers UNAVAILABLE with the store's error) and calls this
    // once, off the engine lock, so the process can exit and restart from
    // what is durable (as etcd does when its WAL cannot be written). Null:
    // the engine only stops (unit tests).
    std::function<void(const absl::Status&)> on_store_failure;
  };

  explicit WorkflowEngine(Options options);
  ~WorkflowEngine();

  // Rebuilds state from the store (call once, before serving). Tasks that
  // were leased when the previous process stopped run again as new attempts
  // (at-least-once execution); every recorded result is kept exactly once.
  absl::Status Recover();

  // Stores a snapshot of the whole state in the store now (a no-op when
  // nothing changed since the last one) and returns once it is durable. The
  // engine lock is held only to copy the state; the I/O runs without it.
  // Called periodically (Options::snapshot_every_records) and at shutdown.
  absl::Status WriteSnapshot() ABSL_LOCKS_EXCLUDED(mu_, snapshot_mu_);

  // --- Workflow definitions ---
  absl::StatusOr<gyre::v1::WorkflowDefinition> CreateWorkflow(gyre::v1::WorkflowDefinition def);
  absl::StatusOr<gyre::v1::WorkflowDefinition> UpdateWorkflow(gyre::v1::WorkflowDefinition def);
  absl::StatusOr<gyre::v1::WorkflowDefinition> GetWorkflow(absl::string_view name);
  // A page of the latest version of each workflow, by name; InvalidArgument
  // for a page size out of range or a page token this engine did not hand
  // out. A page also ends early past 2 MiB of definitions.
  absl::StatusOr<gyre::v1::ListWorkflowsResponse> ListWorkflows(
      const gyre::v1::ListWorkflowsRequest& req);

  // --- Executions ---
  // Takes the request by value: an inline definition is moved, not copied.
  absl::StatusOr<gyre::v1::Execution> StartExecution(gyre::v1::StartExecutionRequest req);
  // StartExecution and a subscription to the execution's events from the
  // first (Watch from sequence 1), taken together so that none is missed.
  // Returns once the execution is durable, as StartExecution does.
  struct StartedExecution {
    gyre::v1::Execution execution;
    std::shared_ptr<EventSubscription> events;
  };
  absl::StatusOr<StartedExecution> StartAndWatch(gyre::v1::StartExecutionRequest req,
                                                 bool include_logs = false);
  // Self-assembling graphs: runs the targets from the task library with
  // their transitive dependencies, pulled in at scheduling time.
  absl::StatusOr<gyre::v1::Execution> ScheduleOutcome(const gyre::v1::ScheduleOutcomeRequest& req);
  // Returns once every change made so far is durable (or the store's error).
  // Events reach subscriptions as the changes happen, before the records of
  // those changes are durable; a stream waits for this before showing them,
  // so that no client sees a state a crash could take back, or an event
  // sequence number that a restart would give to another event.
  absl::Status AwaitDurable() ABSL_LOCKS_EXCLUDED(mu_);
  // The task library; NotFound when none is loaded.
  absl::StatusOr<gyre::v1::WorkflowDefinition> GetTaskLibrary() const;
  absl::StatusOr<gyre::v1::Execution> GetExecution(absl::string_view name);
  // A page of executions, newest first, without their contexts unless the
  // request asks for the FULL view (then a page also stops once its contexts
  // reach limits::kMaxListPageValueBytes); InvalidArgument for a page size out
  // of range or a page token this engine did not hand out.
  absl::StatusOr<gyre::v1::ListExecutionsResponse> ListExecutions(
      const gyre::v1::ListExecutionsRequest& req);
  absl::StatusOr<gyre::v1::Execution> CancelExecution(absl::string_view name,
                                                      absl::string_view reason);
  absl::StatusOr<gyre::v1::Execution> PauseExecution(absl::string_view name);
  absl::StatusOr<gyre::v1::Execution> ResumeExecution(absl::string_view name);
  absl::StatusOr<gyre::v1::TaskRun> GetTaskRun(absl::string_view name);
  // A page of an execution's task runs, in workflow order (it stops early
  // once its outputs reach limits::kMaxListPageValueBytes); errors as above.
  absl::StatusOr<gyre::v1::ListTaskRunsResponse> ListTaskRuns(
      const gyre::v1::ListTaskRunsRequest& req);
  absl::StatusOr<gyre::v1::GetTaskLogsResponse> GetTaskLogs(absl::string_view name,
                                                            int64_t attempt);

  // Subscribes to events of `execution` ("" for all) with sequence >=
  // from_sequence. Stored events are delivered first. The subscription is
  // closed once a single execution reaches a final state and its last event
  // was pushed. With include_logs, task output arrives too as live TASK_LOG
  // events (not part of the sequence: sequence 0, not replayed).
  absl::StatusOr<std::shared_ptr<EventSubscription>> Watch(absl::string_view execution,
                                                           int64_t from_sequence,
                                                           bool include_logs = false);
  void Unwatch(const std::shared_ptr<EventSubscription>& subscription);

  std::vector<gyre::v1::QueueInfo> ListQueues();
  std::vector<gyre::v1::AgentInfo> ListAgents();

  // --- The agent protocol ---
  // Registers (or re-registers) an agent; returns the Registered reply.
  // An agent id belongs to one live stream: a registration for an id whose
  // stream is open and was heard from within two heartbeat intervals is
  // refused (FAILED_PRECONDITION; at least 500 ms); past that, the old
  // stream is taken to be
  // half-open (a network cut), told to go (Shutdown) and closed, and the
  // new one takes over. InvalidArgument for a malformed registration,
  // ResourceExhausted when its queue names would pass kMaxQueues.
  absl::StatusOr<gyre::v1::Registered> RegisterAgent(const gyre::v1::Register& registration,
                                                     std::shared_ptr<AgentChannel> channel);
  // Handles every message after Register. Returns an error only for a
  // protocol violation (the stream is then closed).
  // `channel`, when given, is the stream the message came on: a stream
  // whose agent id was taken over by a newer registration is closed (its
  // messages must not act for the new session). The in-process agent link
  // and unit tests pass none.
  // protocol violation (the stream is then closed). A result larger than
  // the orchestrator keeps is cut to the limits first (libs/common/limits.h).
  absl::Status HandleAgentMessage(const std::string& agent_id,
                                  const gyre::v1::AgentMessage& message,
                                  const AgentChannel* channel = nullptr);
  // The stream closed. Leases stay until the lease timeout, so an agent
  // that reconnects in time keeps its running tasks.
  void DisconnectAgent(const std::string& agent_id, const AgentChannel* channel);
  // Queue names known now (for tests: an unused one is forgotten).
  size_t QueueCount();

  // Declares agents silent longer than the lease timeout dead and re-queues
  // their tasks. Called periodically; exposed for tests.
  void ExpireLeases(absl::Time now);

  // For tests: what breaks the rule that dispatch never stalls, or "" when
  // it holds. Every dispatch pass ends with no task READY (and not parked
  // by a pause) that a connected, non-draining agent serving its queue
  // could take now: one with credit, a free slot, the labels and the free
  // resources it needs. Walks every queue: not for production paths.
  std::string DispatchStallForTest();

 private:
  struct Agent;
  struct Queue;
  struct Outbox;
  // A global task's shared run, by identity: one execution runs it; the
  // others wait for and reuse its result.
  struct GlobalTask {
    std::string owner;  // task run name of the run that counts
    bool succeeded = false;
    std::map<std::string, std::string> outputs;
    std::vector<std::pair<uint32_t, uint32_t>> waiters;  // (execution slot, task)
  };

  ExecutionState* FindExecutionLocked(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores `def` as version 1 (create) or as the next version of an
  // existing workflow; returns once durable.
  absl::StatusOr<gyre::v1::WorkflowDefinition> StoreWorkflowVersion(
      gyre::v1::WorkflowDefinition def, bool create);
  // Cancel, pause or resume: checks the execution's state allows it,
  // applies it, records it durably and returns once durable.
  absl::StatusOr<gyre::v1::Execution> ControlExecution(absl::string_view name,
                                                       gyre::v1::ExecutionControl::Action action,
                                                       absl::string_view reason);
  // `definition` is the one in `record`, shared rather than copied again;
  // `declared`, its declared context names when the caller has them.
  ExecutionState& CreateExecutionLocked(
      const gyre::v1::ExecutionStarted& record,
      std::shared_ptr<const gyre::v1::WorkflowDefinition> definition, Outbox& out,
      std::shared_ptr<const workflow::DeclaredContext> declared = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The execution's structure (tasks, edges, queues) with every task
  // pending, registered but with no event emitted and nothing made ready.
  // `definition` is the one in `record` (passed apart so it can be moved).
  ExecutionState& BuildExecutionLocked(
      const gyre::v1::ExecutionStarted& record,
      std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
      std::shared_ptr<const workflow::DeclaredContext> declared = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // engine_snapshot.cc: the whole state to and from an EngineSnapshot.
  // Fills `snapshot` (on an arena) with the whole state. Definitions are
  // lent, not copied: `lent` keeps them alive as long as the snapshot.
  void SnapshotLocked(gyre::v1::EngineSnapshot& snapshot,
                      std::vector<std::shared_ptr<const gyre::v1::WorkflowDefinition>>* lent) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RestoreLocked(gyre::v1::EngineSnapshot snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a restart, a lease that was in flight stays with its agent, which
  // may still be running the attempt (or hold its result, not yet durable
  // at the crash): as for an agent whose stream broke, it has the lease
  // timeout to register again and keep what it reports; what it does not
  // report, or all of it if it never comes back, goes back to the queue.
  // Level-triggered: what a heartbeat says the agent runs is the truth. A
  // lease it has held for two heartbeat intervals yet does not report (lost
  // on its side) would otherwise wait, for as long as the agent lives, for a
  // result that never comes: it is re-queued as a new attempt.
  void ReconcileLeasesLocked(Agent& agent, const gyre::v1::Heartbeat& heartbeat, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `ref` is the current attempt of a task leased to `agent` that
  // is still to run (not cancelled meanwhile).
  bool HoldsLiveLeaseLocked(const Agent& agent, const gyre::v1::AttemptRef& ref)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `ref`, reported running by an agent that holds no lease for it, is
  // being cancelled; if it is the next attempt of a task waiting to run,
  // reported soon after a restart, its number is taken so that it is never
  // leased a second time (see the definition for the exact rule). The taking is in memory
  // (and in the next snapshot), not logged: lost in another crash, it is
  // taken again when the agent, still stopping that attempt, reports it.
  void SkipUnrecordedAttemptLocked(const Agent& agent, const gyre::v1::AttemptRef& ref)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KeepRecoveredLeaseLocked(ExecutionState& exec, uint32_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a mutating section: the time its changes, events and records
  // carry (now_). Live, the clock; replay sets now_ from each record.
  void TickLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent reported attempt `attempt` of the task running: TASK_RUNNING,
  // recorded. False (nothing changes) for an attempt not current or not
  // leased.
  bool StartAttemptLocked(ExecutionState& exec, uint32_t index, int64_t attempt, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The current attempt of a leased task ended without a result: marked
  // ATTEMPT_LOST with `error`, its lease released, the task re-queued when
  // it was still to run; recorded (AttemptLost), so that a restart shows the
  // same outcome and never gives the task back to the lost agent.
  void LoseAttemptLocked(ExecutionState& exec, uint32_t index, std::string error, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The retry of a PENDING task is due: READY again, recorded.
  void RetryDueLocked(ExecutionState& exec, uint32_t index, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Attempt `attempt`, leased to `agent_id`, failed before it was sent
  // (`error`); not retried. Recorded (AttemptNotStarted).
  void FailNotStartedLocked(ExecutionState& exec, uint32_t index, const std::string& agent_id,
                            int64_t attempt, std::string error, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SnapshotLoop() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplyRecordLocked(const gyre::v1::StateRecord& record, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `record` for durability (never blocks); `done` runs once durable.
  // Stamps it with the section's time (now_).
  void PersistLocked(gyre::v1::StateRecord& record, StateStore::Completion done = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistLocked(absl::Span<gyre::v1::StateRecord> records, StateStore::Completion done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies the results of one agent message in order, persists the
  // accepted ones in one append and acknowledges all of them in one message
  // once durable (stale ones too, so the agent forgets them).
  // `parsed` holds each result's output_json as ParseTaskOutput read it
  // (outside the lock), one per result, or is empty when every output is.
  void RecordResultsLocked(Agent& agent, absl::Span<const gyre::v1::TaskResult* const> results,
                           absl::Span<ParsedOutput> parsed, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelLocked(ExecutionState& exec, absl::string_view reason, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResumeLocked(ExecutionState& exec, Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LeaseLocked(ExecutionState& exec, uint32_t task, const std::string& agent_id,
                   int64_t attempt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // StartExecution; subscribes `watch`, when given, to the execution.
  // `fingerprint`: the client's request's (RequestFingerprint), 0 to take
  // `req`'s when it has a request_id.
  absl::StatusOr<gyre::v1::Execution> StartExecution(
      gyre::v1::StartExecutionRequest req, const std::shared_ptr<EventSubscription>& watch,
      uint64_t fingerprint);
  // Gives `subscription` the stored events from `from_sequence` on as its
  // backlog and keeps it for live ones unless the execution is final (then
  // it is closed).
  void SubscribeLocked(const ExecutionState& exec, int64_t from_sequence,
                       const std::shared_ptr<EventSubscription>& subscription)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A subscription's backlog: builds stored events [from, to) of the
  // execution in `slot` on `arena`.
  void ReplayEvents(uint32_t slot, uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                    std::vector<gyre::v1::Event*>* events) ABSL_LOCKS_EXCLUDED(mu_);
  // A request's inline definition, validated, with the library tasks it
  // depends on and its targets applied. Takes the definition out of `req`.
  absl::StatusOr<std::shared_ptr<const gyre::v1::WorkflowDefinition>> InlineDefinition(
      gyre::v1::StartExecutionRequest& req) const;
  // Pulls the task-library tasks `def` depends on into it (see
  // workflow::IncludeLibraryTasks); nothing without a library.
  absl::Status IncludeLibraryTasks(gyre::v1::WorkflowDefinition& def) const;
  // What a "did you mean" compares, to be made after the lock is released.
  struct Suggestion {
    std::string word;
    std::vector<std::string> candidates;
  };
  // A stored workflow (latest or given version) named by the request. When
  // it is not found and `suggestion` is not null, the message has no "did
  // you mean" and `suggestion` gets what the caller needs to add one.
  absl::StatusOr<std::shared_ptr<const gyre::v1::WorkflowDefinition>> ResolveDefinitionLocked(
      const gyre::v1::StartExecutionRequest& req, Suggestion* suggestion = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t QueueIndexLocked(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResourceExhausted if knowing `names` (with repeats) would take the
  // engine past kMaxQueues queue names; `what` says who asks.
  absl::Status CheckQueueRoomLocked(absl::Span<const std::string* const> names,
                                    absl::string_view what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent serves `names` from now on (none: it is gone); queues left
  // with no agent, no task and nothing queued or running are forgotten.
  void SetAgentQueuesLocked(Agent& agent,
                            const google::protobuf::RepeatedPtrField<std::string>* names)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void SetTaskStateLocked(ExecutionState& exec, uint32_t task, gyre::v1::TaskState state,
                          Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bookkeeping of a state change (counts by state, queue depth)
  // without its event.
  void CountTaskStateLocked(ExecutionState& exec, uint32_t task, gyre::v1::TaskState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MakeReadyLocked(ExecutionState& exec, uint32_t task, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a READY task in its queue, or parks it while the execution is paused.
  void QueueReadyLocked(ExecutionState& exec, uint32_t task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SkipDependantsLocked(ExecutionState& exec, uint32_t task, absl::string_view reason,
                            Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompleteTaskLocked(ExecutionState& exec, uint32_t task, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailOrRetryLocked(ExecutionState& exec, uint32_t task, gyre::v1::TaskState final_state,
                         Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequeueLocked(ExecutionState& exec, uint32_t task, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateExecutionStateLocked(ExecutionState& exec, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves one execution from state `from` to `to` in the executions gauge
  // (UNSPECIFIED: none, for a new or a restored execution).
  void CountExecutionLocked(gyre::v1::ExecutionState from, gyre::v1::ExecutionState to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetExecutionStateLocked(ExecutionState& exec, gyre::v1::ExecutionState state, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records an execution-level event (kept whole) and publishes it.
  void EmitLocked(ExecutionState& exec, gyre::v1::Event event, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The stored event at `index` of the history, as watchers see it, built
  // on `arena`.
  gyre::v1::Event* BuildEventLocked(const ExecutionState& exec, uint32_t index,
                                    google::protobuf::Arena* arena) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives the event at `index` to the execution's watchers (a watcher of
  // this execution builds it on its own thread; a watcher of all gets it
  // built here); `closing` (the execution's final event) ends their
  // subscriptions.
  void PublishLocked(const ExecutionState& exec, uint32_t index, bool closing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked(Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchToAgentLocked(Agent& agent, Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLeaseLocked(ExecutionState& exec, uint32_t task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns true when the task was settled or parked by its global identity
  // (already produced, or being produced by another execution).
  bool ResolveGlobalLocked(ExecutionState& exec, uint32_t task, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The owner of a global identity ended: share its result, or hand the
  // identity to a waiter when it did not succeed.
  void SettleGlobalLocked(ExecutionState& exec, uint32_t task, bool succeeded, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns whether the result was accepted (current lease) or rejected.
  // `parsed` is its output, already parsed; `record`, when not null, gets
  // what was made of it (outputs, decision, or why refused) so that a
  // replay need not parse or check it again.
  bool HandleResultLocked(const std::string& agent_id, const gyre::v1::TaskResult& result,
                          ParsedOutput& parsed, gyre::v1::TaskResultRecorded* record, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns why the decision fails the evaluator (empty: applied).
  std::string ApplyEvaluatorDecisionLocked(ExecutionState& exec, uint32_t task, bool empty_output,
                                           ParsedOutput& parsed, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why `decision` may not start its children from `exec` (empty: it may):
  // the depth and count limits, and only stored workflows.
  std::string CheckChildStartsLocked(const ExecutionState& exec,
                                     const gyre::v1::EvaluatorDecision& decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleRetryLocked(ExecutionState& exec, uint32_t task, absl::Duration delay)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeclareAgentDeadLocked(Agent& agent, Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshQueueMetricsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Lists leave the context out (ExecutionView BASIC).
  gyre::v1::Execution ExecutionProtoLocked(const ExecutionState& exec,
                                           bool with_context = true) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  gyre::v1::TaskRun TaskRunProtoLocked(const ExecutionState& exec, uint32_t task,
                                       bool with_history) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why a ready task cannot be leased by any agent connected now (no agent
  // serves its queue, or none could ever fit it); empty if one could.
  std::string WaitingReasonLocked(const ExecutionState& exec, const TaskSlot& task) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(Outbox& out) ABSL_LOCKS_EXCLUDED(mu_);
  void TickLeases();
  // The store failed to make records durable: stop for good (see
  // Options::on_store_failure). Safe on any thread, with or without mu_
  // (the store may call a completion inline, under it).
  void FailStop(const absl::Status& status);
  // UNAVAILABLE with the store's error once the engine stopped; OK before.
  absl::Status Stopped();
  // A completion that wakes `durable` and stops the engine on an error.
  StateStore::Completion DurableCallback(std::shared_ptr<DurableWait> durable);

  const Options options_;
  EngineMetrics metrics_;
  TimerQueue timers_;
  absl::Mutex mu_;
  uint64_t next_execution_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<std::shared_ptr<const gyre::v1::WorkflowDefinition>>> workflows_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<ExecutionState>> executions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> execution_by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> execution_by_request_ ABSL_GUARDED_BY(mu_);
  // Indexed by TaskSlot::queue and Agent::queues; a forgotten queue leaves
  // a null entry whose index is reused (free_queues_).
  std::vector<std::unique_ptr<Queue>> queues_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_queues_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> queue_by_name_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Agent>> agents_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, GlobalTask> globals_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::shared_ptr<EventSubscription>>> watchers_
      ABSL_GUARDED_BY(mu_);
  // When Recover finished: only for a lease timeout after it may an agent
  // report an attempt newer than any recorded (leased just before the
  // crash, the lease not yet durable).
  absl::Time recovered_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Children evaluators decided to start, by request_id, until their own
  // ExecutionStarted is recorded: a crash in between must not lose them.
  std::map<std::string, gyre::v1::StartExecutionRequest> pending_children_ ABSL_GUARDED_BY(mu_);
  // Executions per state, for the gyre_executions gauge.
  std::array<int64_t, gyre::v1::ExecutionState_ARRAYSIZE> executions_by_state_
      ABSL_GUARDED_BY(mu_){};
  // DispatchToAgentLocked's lists of tasks taken and of their lease
  // records, and RecordResultsLocked's records, kept for their capacity
  // (the records' strings keep theirs too).
  std::vector<ReadyTask> dispatch_scratch_ ABSL_GUARDED_BY(mu_);
  // When the agent gauges were last summed (RefreshQueueMetricsLocked).
  absl::Time agent_gauges_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<gyre::v1::StateRecord> lease_scratch_ ABSL_GUARDED_BY(mu_);
  std::vector<gyre::v1::StateRecord> result_scratch_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool replaying_ ABSL_GUARDED_BY(mu_) = false;
  // The time of the change being made (TickLocked), or, in replay, of the
  // record being applied: every event, attempt time and record of one
  // change carries it, so that replay rebuilds the same history.
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch();

  // Periodic snapshots: PersistLocked counts records and wakes the
  // snapshot thread; snapshot_mu_ lets one snapshot run at a time.
  uint64_t records_since_snapshot_ ABSL_GUARDED_BY(mu_) = 0;
  bool snapshot_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex snapshot_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t last_snapshot_position_ ABSL_GUARDED_BY(snapshot_mu_) = 0;
  std::thread snapshotter_;

  // Set once by FailStop; read at every entry point (one atomic load).
  std::atomic<bool> failed_{false};
  // A leaf lock for failure_ alone: FailStop may run under mu_.
  absl::Mutex failure_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(failure_mu_);
};

// Waits for a durability completion; used outside the engine lock.
class DurableWait {
 public:
  StateStore::Completion Callback();
  absl::Status Wait();

 private:
  absl::Mutex mutex_;
  bool done_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_ENGINE_H_
