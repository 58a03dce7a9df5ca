#ifndef GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_ENGINE_H_
#define GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_ENGINE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/arena.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/cluster.pb.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "libs/common/clock.h"
#include "libs/common/timer_queue.h"
#include "services/orchestrator/agent_channel.h"
#include "services/orchestrator/agent_leases.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/attempt_observation.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/desired_workers.h"
#include "services/orchestrator/dispatcher.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/engine_recovery.h"
#include "services/orchestrator/evaluator_decisions.h"
#include "services/orchestrator/event_publisher.h"
#include "services/orchestrator/event_subscription.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/global_task_table.h"
#include "services/orchestrator/load_snapshot.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/result_recorder.h"
#include "services/orchestrator/retention.h"
#include "services/orchestrator/scheduler_batch.h"
#include "services/orchestrator/shard_handover.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/shard_ownership.h"
#include "services/orchestrator/state_store.h"
#include "services/orchestrator/task_cost_meter.h"
#include "services/orchestrator/task_state_machine.h"
#include "services/orchestrator/workflow_registry.h"

namespace gyre::orchestrator {

class DurableWait;

// The orchestrator's domain logic, as one façade: workflow definitions,
// executions, DAG readiness, ready queues per worker type, agent leases with
// attempt fencing, retries with backoff, pause/resume/cancel, the event
// stream and the autoscaling signal. gRPC handlers (and gyre dev's
// in-process agent link) translate to and from it.
//
// The façade owns the lock, the time of each change, the store (records
// appended under the lock, waited for without it), snapshots and the work
// left for after the lock (the Outbox: child starts, retry timers, log
// lines). The logic lives in components, each in its own file and each
// owning one thing (docs/architecture.md): WorkflowRegistry, ExecutionTable,
// QueueTable, AgentManager, GlobalTaskTable, EventPublisher,
// TaskStateMachine, Dispatcher, EvaluatorDecisions, ResultRecorder,
// AgentLeases, EngineRecovery. Lower ones never call higher ones: they
// return verdicts and the caller acts.
//
// Thread-safety: all state is guarded by one mutex (the components are
// members guarded by it); every method is short and does no I/O under it.
// Messages to agents and events to watchers are handed to per-stream queues
// under the lock (order preserved) and written to the network by the
// streams' own threads.
class WorkflowEngine {
 public:
  // The most results one agent message may carry (task_results).
  static constexpr int kMaxResultsPerMessage = 4096;
  // The limits the components enforce (docs/limits.md), for callers.
  static constexpr int kMaxChildDepth = EvaluatorDecisions::kMaxChildDepth;
  static constexpr uint32_t kMaxChildrenPerExecution = EvaluatorDecisions::kMaxChildrenPerExecution;
  static constexpr size_t kMaxAgentIdLength = AgentManager::kMaxAgentIdLength;
  static constexpr size_t kMaxLabelLength = AgentManager::kMaxLabelLength;
  static constexpr int kMaxAgentLabels = AgentManager::kMaxAgentLabels;
  static constexpr size_t kMaxQueueNameLength = AgentManager::kMaxQueueNameLength;
  static constexpr int kMaxQueuesPerAgent = AgentManager::kMaxQueuesPerAgent;
  static constexpr size_t kMaxQueues = QueueTable::kMaxQueues;
  static constexpr int kMaxAttemptRefs = AgentManager::kMaxAttemptRefs;
  static constexpr int64_t kMaxAttempt = AgentManager::kMaxAttempt;

  struct Options {
    absl::Duration lease_timeout = absl::Seconds(30);
    absl::Duration heartbeat_interval = absl::Seconds(5);
    std::map<std::string, WorkerPoolPolicy> worker_pools;
    WorkerPoolPolicy default_worker_pool;
    prometheus::Registry* metrics = nullptr;  // optional
    // Where the engine reads the time and sets its timers (lease expiry,
    // retry backoff); tests pass a FakeClock. Not owned.
    Clock* clock = Clock::Real();
    // Tasks that outcome scheduling picks targets from and that workflows
    // may depend on (task_library_dir); null when none was configured.
    std::shared_ptr<const gyre::v1::WorkflowDefinition> task_library;
    // Tasks and dependencies one definition may hold (max_workflow_tasks,
    // max_workflow_edges).
    workflow::WorkflowSizeLimits workflow_limits;
    // Prices per worker type and the labels attempt costs are broken down
    // by (gyre_task_cost_total); empty prices: no cost metric.
    TaskCostOptions task_cost;
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
    // How long a write (a start, a definition, a control) waits for its
    // records while the store says it cannot commit (StateStore::
    // Availability: a lost database connection being retried) before it
    // answers UNAVAILABLE with the store's reason. Its change is kept and
    // recorded when the store is back; the client retries with its
    // request_id. Well under a client's usual deadline; a store that is
    // merely slow is waited for without bound.
    absl::Duration store_outage_wait = absl::Seconds(10);
    // Where each accepted attempt's observation goes once its result is
    // durable (the predictor link); null: nowhere. Not owned; must outlive
    // the engine and the store.
    ObservationSink* observations = nullptr;
    // Asked for predictions of each started execution's tasks that declare
    // no resources; null: never. Not owned; must outlive the engine.
    PredictionSource* predictions = nullptr;
    // How long finished executions and their logs are kept, and how the
    // background passes that forget them run (after Recover).
    RetentionOptions retention;
    // Executions belong to this many virtual shards (shard_map.h); fixed for
    // a database's life. Only the owned ones live in this engine.
    uint32_t shard_count = kDefaultShardCount;
    // The shards this engine owns at start; nullopt: all of them (one
    // orchestrator: no ownership check costs anything then). Shards move
    // later with AdoptShard and ReleaseShard. Recover() still replays all
    // the store holds: an engine sharing a store with others starts with
    // none owned and adopts its shards one by one.
    std::optional<std::vector<uint32_t>> owned_shards;
    // Several orchestrators sharing the executions (postgres_sharding): the
    // backlog per queue this engine publishes and the other members' it
    // adds, so that orchestrator_desired_workers and ListQueues follow the
    // cluster's backlog (cluster_backlog.h). Null: this engine's own
    // backlog is the cluster's. Not owned; must outlive the engine.
    ClusterBacklog* cluster_backlog = nullptr;
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

  // Predictions for tasks of `execution` (by task id), from the predictor
  // link: stored on the task runs (TaskRun.predicted_*), and used for
  // placement by those that declare no resources and were not leased yet.
  // Unknown executions and tasks are ignored (the answer may come late).
  void ApplyPredictions(absl::string_view execution,
                        std::vector<std::pair<std::string, TaskPrediction>> predictions)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Shards (several orchestrators; docs/architecture.md "Engine and shards") ---
  // Whether this engine owns `shard` now.
  bool OwnsShard(uint32_t shard) ABSL_LOCKS_EXCLUDED(mu_);
  // The state of one shard's executions, as an EngineSnapshot holding only
  // them (no workflow definitions, no global tasks: see
  // EngineRecovery::Snapshot) and the pending child starts of their
  // evaluators. `position` is the store position it covers. Copied under
  // the lock (as WriteSnapshot does); FailedPrecondition for a shard not
  // owned.
  // `position`, when given, is asked under the lock instead (the shard's own
  // position in a per-shard store: PostgresShardStore::last_shard_position),
  // so that no record of the shard falls between the copy and the position.
  absl::StatusOr<gyre::v1::EngineSnapshot> SnapshotShard(
      uint32_t shard, const std::function<uint64_t()>& position = nullptr) ABSL_LOCKS_EXCLUDED(mu_);
  // Workflow definitions another orchestrator sharing the store recorded
  // (WorkflowStored / WorkflowDeleted records, PostgresShardStore::
  // CatchUpDefinitions), applied as replay applies them: nothing recorded
  // again. InvalidArgument for a record of any other kind (nothing applied).
  absl::Status ApplyDefinitions(const std::vector<gyre::v1::StateRecord>& records)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Who owns the shards this engine does not (not owned, null: none known):
  // a "not owned" answer then names the owner's id and address. Not owned;
  // must outlive the engine or be set back to null first.
  void SetShardDirectory(const ShardDirectory* directory) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes `shard` over: restores `snapshot` (one SnapshotShard made, or
  // none) and replays `records` (that shard's records after it, in order,
  // each with ShardOfRecord == shard) into the live engine under the lock,
  // through the same EngineRecovery a restart uses; then settles what was
  // in flight as a restart does (leases kept for their agents for a lease
  // timeout, attempts with no agent lost and retried, children decided but
  // not started are started) and dispatches. FailedPrecondition when the
  // shard is owned already; InvalidArgument for a record of another shard;
  // DataLoss (and nothing of the shard kept) when the history does not
  // replay. The records must be durable: the releasing engine's
  // ReleaseShard returned.
  absl::Status AdoptShard(uint32_t shard, std::optional<gyre::v1::EngineSnapshot> snapshot,
                          const std::vector<gyre::v1::StateRecord>& records)
      ABSL_LOCKS_EXCLUDED(mu_, snapshot_mu_);
  // Gives `shard` up: from now on nothing of it changes here (calls about
  // its executions, and results for them, get the typed ShardNotOwnedError);
  // its executions, ready tasks and leases are dropped from memory (agents
  // are not told: they keep running the attempts and report them to the
  // new owner); watchers of its executions end with that error. Returns
  // once every record appended for the shard is durable, so the new owner
  // may read them. FailedPrecondition for a shard not owned.
  absl::Status ReleaseShard(uint32_t shard) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Workflow definitions ---
  absl::StatusOr<gyre::v1::WorkflowDefinition> CreateWorkflow(gyre::v1::WorkflowDefinition def);
  absl::StatusOr<gyre::v1::WorkflowDefinition> UpdateWorkflow(gyre::v1::WorkflowDefinition def);
  absl::StatusOr<gyre::v1::WorkflowDefinition> GetWorkflow(absl::string_view name);
  // Deletes every version of `name` ("workflows/w") once durable; NotFound
  // when unknown, FailedPrecondition while one of its executions has not
  // finished (looked for among all executions, under the lock: a rare
  // admin call).
  absl::Status DeleteWorkflow(absl::string_view name);
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
  // their transitive dependencies, pulled in at scheduling time. The
  // execution belongs to `tenant` (empty: "default"), like one of a tenant's
  // workflow.
  absl::StatusOr<gyre::v1::Execution> ScheduleOutcome(const gyre::v1::ScheduleOutcomeRequest& req,
                                                      absl::string_view tenant = "");
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
  // New priority (0..100) for the waiting tasks of an execution
  // ("executions/{e}") or for one task ("executions/{e}/tasks/{t}"); tasks
  // leased or running keep theirs. Recorded; returns once durable.
  // FailedPrecondition once the execution ended, or for a task already
  // leased, running or ended.
  absl::StatusOr<gyre::v1::Execution> UpdatePriority(const gyre::v1::UpdatePriorityRequest& req);
  absl::StatusOr<gyre::v1::TaskRun> GetTaskRun(absl::string_view name);
  // A page of an execution's task runs, in workflow order (it stops early
  // once its outputs reach limits::kMaxListPageValueBytes); errors as above.
  absl::StatusOr<gyre::v1::ListTaskRunsResponse> ListTaskRuns(
      const gyre::v1::ListTaskRunsRequest& req);
  // The same, written into the empty `response`, which may live on an arena
  // (the service's: a page is ~20,000 small messages, whose allocations and
  // frees were most of the call's CPU).
  absl::Status ListTaskRuns(const gyre::v1::ListTaskRunsRequest& req,
                            gyre::v1::ListTaskRunsResponse* response);
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

  // Every queue's depth, running tasks, agents connected here and desired
  // workers; with Options::cluster_backlog, depth and running are the
  // cluster's (the other members' as of the last lease round).
  std::vector<gyre::v1::QueueInfo> ListQueues();
  // Exports the queue gauges again: the lease manager read the other
  // members' backlog (Options::cluster_backlog), which moves desired
  // workers without any change here.
  void RefreshQueueGauges() ABSL_LOCKS_EXCLUDED(mu_);
  // What the load forecast needs per worker type (LoadForecaster): taken
  // under the lock in O(executions + unfinished tasks), no I/O.
  LoadSnapshot SnapshotLoad(const LoadSnapshotOptions& options);
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

  // One retention batch now (Retention::RunPass, under the lock); the
  // background passes call it every Options::retention.interval. Exposed
  // for tests.
  Retention::Pass RunRetentionPass() ABSL_LOCKS_EXCLUDED(mu_);

  // --- The scheduler link (scheduler_link.h; the logic in scheduler_batch.h) ---
  // `on_backlog` runs under the engine lock whenever a dispatch pass leaves
  // tasks queued, so it must only signal. Set it once, before serving.
  void SetBacklogListener(std::function<void()> on_backlog);
  // The head of the ready queues (at most `max_tasks`) as a RankAndPlace
  // request, and where each of its tasks is; false when nothing changed
  // since the last order applied. Copies under the lock, no I/O.
  bool TakeSchedulerBatch(size_t max_tasks, gyre::v1::RankAndPlaceRequest* request,
                          std::vector<BatchedTask>* tasks);
  // Applies the scheduler's order of `tasks` (indexes, best first) to the
  // ready queues; tasks that changed meanwhile are left alone. `answers`
  // (empty, or one per task): placements become the dispatcher's hints
  // (Dispatcher::PlacementHint), aging raises a task's queue level
  // (SchedulerBatch::Apply). Returns how many were queued again in the new
  // order.
  size_t ApplySchedulerOrder(absl::Span<const BatchedTask> tasks, absl::Span<const uint32_t> order,
                             absl::Span<const TaskAnswer> answers = {});

  // For tests: what breaks the rule that dispatch never stalls, or "" when
  // it holds. Every dispatch pass ends with no task READY (and not parked
  // by a pause) that a connected, non-draining agent serving its queue
  // could take now: one with credit, a free slot, the labels and the free
  // resources it needs. Walks every queue: not for production paths.
  std::string DispatchStallForTest();

 private:
  // What a call about `name` (an execution or task run) that is not here
  // answers: ShardNotOwnedError when its shard is not owned, else
  // `not_found`. Only on the not-found path: no cost when it is found.
  absl::Status Missing(absl::string_view name, absl::string_view what, absl::Status not_found)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A new execution id in an owned shard (ids are drawn until one lands in
  // one; see the .cc for why).
  absl::StatusOr<std::string> NewExecutionIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // StartExecution; subscribes `watch`, when given, to the execution.
  // `fingerprint`: the client's request's (RequestFingerprint), 0 to take
  // `req`'s when it has a request_id.
  absl::StatusOr<gyre::v1::Execution> StartExecution(
      gyre::v1::StartExecutionRequest req, const std::shared_ptr<EventSubscription>& watch,
      uint64_t fingerprint);
  // Stores `def` as version 1 (create) or as the next version of an
  // existing workflow; returns once durable.
  absl::StatusOr<gyre::v1::WorkflowDefinition> StoreWorkflowVersion(
      gyre::v1::WorkflowDefinition def, bool create);
  // Cancel, pause or resume: checks the execution's state allows it,
  // applies it, records it durably and returns once durable.
  absl::StatusOr<gyre::v1::Execution> ControlExecution(absl::string_view name,
                                                       gyre::v1::ExecutionControl::Action action,
                                                       absl::string_view reason);
  // Subscribes to one execution's events; its backlog is built by
  // ReplayEvents on the reader's thread.
  void SubscribeLocked(const ExecutionEntry& exec, int64_t from_sequence,
                       const std::shared_ptr<EventSubscription>& subscription)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A subscription's backlog: builds stored events [from, to) of the
  // execution at `exec_index` on `arena` (copies under the lock, builds
  // without it).
  void ReplayEvents(uint32_t exec_index, uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                    std::vector<gyre::v1::Event*>* events) ABSL_LOCKS_EXCLUDED(mu_);
  // Fills each waiting run's `waiting` (WaitingExplainer) in a page of
  // `exec`'s task runs.
  void ExplainWaiting(const ExecutionEntry& exec,
                      google::protobuf::RepeatedPtrField<gyre::v1::TaskRun>& runs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a mutating section: the time its changes, events and records
  // carry. Live, the clock; replay sets it from each record.
  void TickLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SnapshotLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Does what a section left in `out`, after the lock.
  void Deliver(Outbox& out) ABSL_LOCKS_EXCLUDED(mu_);
  void TickLeases();
  // The next background retention pass, `delay` from now.
  void ScheduleRetention(absl::Duration delay);
  // The store failed to make records durable: stop for good (see
  // Options::on_store_failure). Safe on any thread, with or without mu_
  // (the store may call a completion inline, under it).
  void FailStop(const absl::Status& status);
  // UNAVAILABLE with the store's error once the engine stopped; OK before.
  absl::Status Stopped();
  // A completion that wakes `durable` and stops the engine on an error.
  StateStore::Completion DurableCallback(std::shared_ptr<DurableWait> durable);

  const Options options_;
  Clock* const clock_;
  EngineMetrics metrics_;
  TaskCostMeter cost_meter_;  // thread-safe itself
  TimerQueue timers_;
  absl::Mutex mu_;
  // The components, lower ones first (each may use those above it in this
  // list, never one below).
  EngineJournal journal_ ABSL_GUARDED_BY(mu_);
  WorkflowRegistry workflows_ ABSL_GUARDED_BY(mu_);
  QueueTable queues_ ABSL_GUARDED_BY(mu_);
  ExecutionTable executions_ ABSL_GUARDED_BY(mu_);
  AgentManager agents_ ABSL_GUARDED_BY(mu_);
  GlobalTaskTable globals_ ABSL_GUARDED_BY(mu_);
  EventPublisher publisher_ ABSL_GUARDED_BY(mu_);
  TaskStateMachine machine_ ABSL_GUARDED_BY(mu_);
  Dispatcher dispatcher_ ABSL_GUARDED_BY(mu_);
  EvaluatorDecisions evaluators_ ABSL_GUARDED_BY(mu_);
  ResultRecorder results_ ABSL_GUARDED_BY(mu_);
  AgentLeases leases_ ABSL_GUARDED_BY(mu_);
  EngineRecovery recovery_ ABSL_GUARDED_BY(mu_);
  SchedulerBatch scheduler_batch_ ABSL_GUARDED_BY(mu_);
  Retention retention_ ABSL_GUARDED_BY(mu_);
  ShardOwnership shards_ ABSL_GUARDED_BY(mu_);
  ShardHandover handover_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Periodic snapshots: snapshot_mu_ lets one snapshot run at a time.
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
  // The completion's status; or UNAVAILABLE once `store` (may be null) has
  // said it cannot commit for `outage_wait`: the caller answers then rather
  // than hold its client for the whole outage (never a false success).
  absl::Status Wait(StateStore* store, absl::Duration outage_wait);

 private:
  absl::Mutex mutex_;
  bool done_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_ENGINE_H_
