#include "services/orchestrator/workflow_engine.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/client_text.h"
#include "libs/common/limits.h"
#include "libs/common/nearest_match.h"
#include "libs/logging/logger.h"
#include "libs/workflow/context_keys.h"
#include "libs/workflow/workflow_graph.h"
#include "services/orchestrator/list_paging.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/request_fingerprint.h"
#include "services/orchestrator/task_output.h"
#include "services/orchestrator/waiting_explainer.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Results are acknowledged by their numbers: an unnumbered one could never be.
absl::Status UnnumberedResult() {
  return absl::InvalidArgumentError(
      "task_result: sequence must be set (the agent numbers its results 1, 2, 3...)");
}

// A ListWorkflows page ends early once it holds this much (and at least one
// definition): a client's default receive limit is 4 MiB.
constexpr size_t kMaxWorkflowPageBytes = size_t{2} << 20;

}  // namespace

WorkflowEngine::WorkflowEngine(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      metrics_(options_.metrics),
      cost_meter_(options_.metrics, options_.task_cost),
      timers_(clock_),
      journal_(options_.store, options_.snapshot_every_records,
               [this](const absl::Status& status) { FailStop(status); }),
      queues_(metrics_),
      executions_(metrics_),
      agents_(queues_, options_.heartbeat_interval),
      machine_(executions_, queues_, agents_, globals_, publisher_, journal_, metrics_),
      dispatcher_(executions_, queues_, agents_, machine_, journal_, metrics_,
                  WorkerPools{options_.worker_pools, options_.default_worker_pool},
                  options_.cluster_backlog),
      evaluators_(executions_, workflows_, machine_, journal_),
      results_(executions_, machine_, evaluators_, journal_, metrics_, &cost_meter_),
      leases_(executions_, queues_, agents_, machine_, metrics_, options_.lease_timeout,
              options_.heartbeat_interval),
      recovery_(workflows_, executions_, queues_, globals_, machine_, results_, evaluators_,
                leases_, journal_),
      scheduler_batch_(executions_, queues_, agents_, journal_),
      retention_(options_.retention, executions_, journal_),
      shards_(options_.shard_count, options_.owned_shards),
      handover_(executions_, machine_, publisher_, evaluators_) {
  // Configured pools are exported from the start (a pool's min must reach
  // the autoscaler before any task names its queue).
  for (const auto& [name, policy] : options_.worker_pools) queues_.Pin(name);
  results_.set_observation_sink(options_.observations);
  dispatcher_.RefreshMetrics(/*all_agents=*/true);
  TickLeases();
  if (options_.store != nullptr && options_.snapshot_every_records > 0) {
    snapshotter_ = std::thread([this] { SnapshotLoop(); });
  }
}

WorkflowEngine::~WorkflowEngine() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (snapshotter_.joinable()) snapshotter_.join();
}

void WorkflowEngine::SetBacklogListener(std::function<void()> on_backlog) {
  absl::MutexLock lock(&mu_);
  dispatcher_.set_on_backlog(std::move(on_backlog));
}

bool WorkflowEngine::TakeSchedulerBatch(size_t max_tasks, v1::RankAndPlaceRequest* request,
                                        std::vector<BatchedTask>* tasks) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || failed_.load(std::memory_order_relaxed)) return false;
  TickLocked();
  if (!scheduler_batch_.Collect(max_tasks, tasks)) return false;
  scheduler_batch_.Describe(*tasks, request);
  return true;
}

size_t WorkflowEngine::ApplySchedulerOrder(absl::Span<const BatchedTask> tasks,
                                           absl::Span<const uint32_t> order,
                                           absl::Span<const TaskAnswer> answers) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return 0;
  std::vector<Dispatcher::PlacementHint> hints;
  const size_t requeued = scheduler_batch_.Apply(tasks, order, answers, &hints);
  dispatcher_.SetPlacementHints(std::move(hints));
  return requeued;
}

void WorkflowEngine::TickLocked() { journal_.set_now(clock_->Now()); }

void WorkflowEngine::TickLeases() {
  const absl::Duration period =
      std::clamp(options_.lease_timeout / 4, absl::Milliseconds(50), absl::Seconds(5));
  timers_.ScheduleAfter(period, [this] {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    ExpireLeases(clock_->Now());
    TickLeases();
  });
}

// --- Predictions ---

void WorkflowEngine::ApplyPredictions(
    absl::string_view execution, std::vector<std::pair<std::string, TaskPrediction>> predictions) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    ExecutionEntry* exec = executions_.Find(execution);
    // A finished execution still shows them (predicted vs actual).
    if (exec == nullptr) return;
    bool placed = false;
    for (auto& [task_id, prediction] : predictions) {
      auto found = exec->task_index.find(task_id);
      if (found == exec->task_index.end()) continue;
      TaskEntry& task = exec->tasks[found->second];
      if (task.spec->has_resources()) continue;
      // Placement may use it only before the first lease: a lease must give
      // back what it reserved (AgentManager::LeaseNeed).
      prediction.placed = task.attempts.empty() && !IsTerminal(task.state);
      prediction.placement.set_cpu(prediction.cpu);
      prediction.placement.set_memory_bytes(prediction.memory_bytes);
      placed = placed || prediction.placed;
      task.mutable_details().prediction = std::make_unique<TaskPrediction>(std::move(prediction));
    }
    // Tasks now asking for more may no longer fit where they were about to
    // go; tasks asking for less may fit now.
    if (placed) dispatcher_.Dispatch(out);
  }
  Deliver(out);
}

// --- Durability ---

StateStore::Completion DurableWait::Callback() {
  return [this](absl::Status status) {
    absl::MutexLock lock(&mutex_);
    status_ = std::move(status);
    done_ = true;
  };
}

absl::Status DurableWait::Wait(StateStore* store, absl::Duration outage_wait) {
  // A slow store is waited for as long as it takes; only a store that says
  // it cannot commit (reconnecting) bounds the wait. How often it is asked
  // matters little: a commit that completes ends the wait at once.
  constexpr absl::Duration kAskEvery = absl::Milliseconds(250);
  absl::Time give_up = absl::InfiniteFuture();
  for (;;) {
    {
      absl::MutexLock lock(&mutex_);
      if (mutex_.AwaitWithTimeout(absl::Condition(&done_), kAskEvery)) return status_;
    }
    if (store == nullptr) continue;
    const absl::Status available = store->Availability();
    if (available.ok()) {
      give_up = absl::InfiniteFuture();
      continue;
    }
    const absl::Time now = absl::Now();
    if (give_up == absl::InfiniteFuture()) give_up = now + outage_wait;
    if (now >= give_up) {
      return absl::UnavailableError(absl::StrCat(
          available.message(), "; waited ", absl::FormatDuration(outage_wait),
          ": the change is not acknowledged (it is kept, and recorded once the store is back "
          "unless the orchestrator restarts first; retry with the same request_id)"));
    }
  }
}

void WorkflowEngine::FailStop(const absl::Status& status) {
  {
    absl::MutexLock lock(&failure_mu_);
    failed_.store(true, std::memory_order_release);
    if (!failure_.ok()) return;  // stopped already: told once
    failure_ = status;
  }
  // Logged and reported on the timer thread: this may run under mu_, and
  // nothing under it does I/O.
  timers_.ScheduleAfter(absl::ZeroDuration(), [this, status] {
    logging::Error(
        "state store failed: the orchestrator stops serving and must restart from "
        "what is durable",
        {{"error", std::string(status.message())}});
    if (options_.on_store_failure) options_.on_store_failure(status);
  });
}

absl::Status WorkflowEngine::Stopped() {
  if (!failed_.load(std::memory_order_acquire)) return absl::OkStatus();
  absl::MutexLock lock(&failure_mu_);
  return absl::UnavailableError(
      absl::StrCat("the orchestrator stopped after its state store failed (", failure_.message(),
                   "); it restarts from what is durable"));
}

StateStore::Completion WorkflowEngine::DurableCallback(std::shared_ptr<DurableWait> durable) {
  return [this, durable = std::move(durable)](const absl::Status& status) {
    if (!status.ok()) FailStop(status);
    durable->Callback()(status);
  };
}

absl::Status WorkflowEngine::AwaitDurable() {
  if (options_.store == nullptr) return absl::OkStatus();
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  uint64_t position = 0;
  {
    // Under the lock: an event is published inside the critical section of
    // its change, perhaps before that change's records are appended; once
    // the lock is ours, every such section has appended them.
    absl::MutexLock lock(&mu_);
    position = options_.store->last_position();
  }
  return options_.store->AwaitDurable(position);
}

// --- Recovery and snapshots ---

absl::Status WorkflowEngine::Recover() {
  if (options_.store == nullptr) return absl::OkStatus();
  const absl::Time start = clock_->Now();
  int64_t records = 0;
  int64_t requeued = 0;
  int64_t kept = 0;
  int64_t executions = 0;
  bool from_snapshot = false;
  absl::Duration restore_time;
  absl::Status status;
  Outbox out;
  {
    absl::MutexLock one_at_a_time(&snapshot_mu_);
    absl::MutexLock lock(&mu_);
    TickLocked();  // a snapshot's retry timers count from here
    journal_.set_replaying(true);
    status = options_.store->Load(
        [&](v1::EngineSnapshot snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_, snapshot_mu_) {
          from_snapshot = true;
          last_snapshot_position_ = snapshot.position();
          const absl::Time restore_start = absl::Now();
          absl::Status restored = recovery_.Restore(std::move(snapshot), out);
          restore_time = absl::Now() - restore_start;
          return restored;
        },
        [&](const v1::StateRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          // Nothing is sent while history is replayed; only the timers of
          // retries still waiting and log lines are kept.
          Outbox replayed;
          records++;
          // The change is dated as it was made (older records carry no time).
          journal_.set_now(record.unix_nanos() != 0 ? absl::FromUnixNanos(record.unix_nanos())
                                                    : clock_->Now());
          absl::Status applied = recovery_.ApplyRecord(record, replayed);
          for (Outbox::RetryTimer& retry : replayed.retries) out.retries.push_back(retry);
          for (Outbox::LogLine& line : replayed.logs) out.logs.push_back(std::move(line));
          return applied;
        });
    journal_.set_replaying(false);
    leases_.set_recovered_at(clock_->Now());
    TickLocked();
    if (status.ok()) {
      recovery_.SettleInFlight(clock_->Now(), out, &kept, &requeued);
      dispatcher_.RefreshMetrics();
    }
    executions = static_cast<int64_t>(executions_.size());
  }
  if (!status.ok()) return status;
  Deliver(out);
  logging::Info("engine recovered", {{"from_snapshot", from_snapshot},
                                     {"restore_seconds", absl::ToDoubleSeconds(restore_time)},
                                     {"records", records},
                                     {"executions", executions},
                                     {"leases_kept_for_their_agents", kept},
                                     {"requeued_attempts", requeued},
                                     {"seconds", absl::ToDoubleSeconds(clock_->Now() - start)}});
  if (options_.retention.interval > absl::ZeroDuration()) {
    ScheduleRetention(options_.retention.interval);
  }
  return absl::OkStatus();
}

Retention::Pass WorkflowEngine::RunRetentionPass() {
  Retention::Pass pass;
  if (!Stopped().ok()) return pass;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return pass;
    TickLocked();
    pass = retention_.RunPass();
  }
  if (pass.forgotten > 0 || pass.logs_dropped > 0) {
    logging::Info("retention pass", {{"executions_forgotten", pass.forgotten},
                                     {"executions_whose_logs_were_dropped", pass.logs_dropped},
                                     {"more_due", pass.more}});
  }
  return pass;
}

void WorkflowEngine::ScheduleRetention(absl::Duration delay) {
  timers_.ScheduleAfter(delay, [this] {
    const Retention::Pass pass = RunRetentionPass();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    // More due: the next batch at once, as a new timer (other timers and
    // every caller get the lock between batches).
    ScheduleRetention(pass.more ? absl::ZeroDuration() : options_.retention.interval);
  });
}

absl::Status WorkflowEngine::WriteSnapshot() {
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("the engine has no state store to snapshot into");
  }
  absl::MutexLock one_at_a_time(&snapshot_mu_);
  const absl::Time start = absl::Now();
  // Built on an arena, with the definitions lent (kept alive here): the
  // engine is stopped while the state is copied, so the copy must be cheap.
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 << 10;
  arena_options.max_block_size = 8 << 20;
  google::protobuf::Arena arena(arena_options);
  auto* snapshot = google::protobuf::Arena::CreateMessage<v1::EngineSnapshot>(&arena);
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> lent;
  {
    absl::MutexLock lock(&mu_);
    journal_.TakeSnapshotRequest();
    // Every record up to here is applied to the state copied below, and no
    // change past it is (changes and their records go together under mu_).
    const uint64_t position = options_.store->last_position();
    if (position == last_snapshot_position_) return absl::OkStatus();
    recovery_.Snapshot(*snapshot, &lent);
    snapshot->set_position(position);
  }
  const absl::Duration copied = absl::Now() - start;
  if (absl::Status status = options_.store->WriteSnapshot(snapshot->position(), *snapshot);
      !status.ok()) {
    logging::Error("snapshot not written", {{"record", static_cast<int64_t>(snapshot->position())},
                                            {"error", std::string(status.message())}});
    return status;
  }
  last_snapshot_position_ = snapshot->position();
  logging::Info("snapshot written", {{"record", static_cast<int64_t>(snapshot->position())},
                                     {"executions", snapshot->executions_size()},
                                     {"locked_seconds", absl::ToDoubleSeconds(copied)},
                                     {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  return absl::OkStatus();
}

void WorkflowEngine::SnapshotLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return journal_.snapshot_requested() || stopping_;
      };
      mu_.Await(absl::Condition(&wake));
      if (stopping_) return;
    }
    WriteSnapshot().IgnoreError();  // logged; retried after the next interval
  }
}

// --- Shards ---

absl::Status WorkflowEngine::Missing(absl::string_view name, absl::string_view what,
                                     absl::Status not_found) {
  if (absl::Status owned = shards_.Check(name, what); !owned.ok()) return owned;
  return not_found;
}

absl::StatusOr<std::string> WorkflowEngine::NewExecutionIdLocked() {
  if (shards_.all()) return executions_.NewId(clock_->Now());
  if (shards_.none()) {
    return absl::UnavailableError(absl::StrCat(
        "this orchestrator owns none of the ", shards_.shard_count(),
        " shards now, so it cannot start an execution; start it on another orchestrator"));
  }
  // Ids are drawn until one hashes to an owned shard, rather than a shard
  // picked first and an id made for it: ids stay what they were (time
  // ordered, no shard in them), and the shard stays a pure hash of the id
  // that every orchestrator and the store compute alike. It costs
  // shard_count / owned draws on average (256 with one shard owned: a few
  // microseconds), bounded below.
  constexpr int kMaxDraws = 1 << 20;
  for (int draw = 0; draw < kMaxDraws; ++draw) {
    std::string id = executions_.NewId(clock_->Now());
    if (shards_.owns(shards_.ShardOf(id))) return id;
  }
  return absl::InternalError(absl::StrCat("no execution id in an owned shard after ", kMaxDraws,
                                          " draws (", shards_.owned_count(), " of ",
                                          shards_.shard_count(), " shards owned)"));
}

bool WorkflowEngine::OwnsShard(uint32_t shard) {
  absl::MutexLock lock(&mu_);
  return shards_.owns(shard);
}

absl::StatusOr<v1::EngineSnapshot> WorkflowEngine::SnapshotShard(
    uint32_t shard, const std::function<uint64_t()>& position) {
  // On an arena with the definitions lent, as WriteSnapshot builds one;
  // the copy the caller keeps is made after the lock.
  google::protobuf::Arena arena;
  auto* snapshot = google::protobuf::Arena::CreateMessage<v1::EngineSnapshot>(&arena);
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> lent;
  {
    absl::MutexLock lock(&mu_);
    if (!shards_.owns(shard)) {
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot of shard ", shard, ": this orchestrator does not own it"));
    }
    recovery_.Snapshot(*snapshot, &lent, EngineRecovery::ShardScope{shard, shards_.shard_count()});
    if (position) {
      snapshot->set_position(position());
    } else if (options_.store != nullptr) {
      snapshot->set_position(options_.store->last_position());
    }
  }
  return *snapshot;
}

absl::Status WorkflowEngine::ApplyDefinitions(const std::vector<v1::StateRecord>& records) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!records[i].has_workflow_stored() && !records[i].has_workflow_deleted()) {
      return absl::InvalidArgumentError(
          absl::StrCat("apply definitions: record ", i, " is not a workflow definition"));
    }
  }
  if (records.empty()) return absl::OkStatus();
  Outbox out;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    journal_.set_replaying(true);
    for (size_t i = 0; i < records.size() && status.ok(); ++i) {
      status = recovery_.ApplyRecord(records[i], out);
    }
    journal_.set_replaying(false);
    TickLocked();
  }
  Deliver(out);
  return status;
}

void WorkflowEngine::SetShardDirectory(const ShardDirectory* directory) {
  absl::MutexLock lock(&mu_);
  shards_.set_directory(directory);
}

absl::Status WorkflowEngine::AdoptShard(uint32_t shard, std::optional<v1::EngineSnapshot> snapshot,
                                        const std::vector<v1::StateRecord>& records) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  // Checked before anything is applied, off the lock.
  for (size_t i = 0; i < records.size(); ++i) {
    const std::optional<uint32_t> of =
        ShardOfRecord(records[i], std::max<uint32_t>(1, options_.shard_count));
    if (of != shard) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adopt shard ", shard, ": record ", i, " belongs to ",
          of.has_value() ? absl::StrCat("shard ", *of) : std::string("every shard (a definition)"),
          "; give only the shard's own records"));
    }
  }
  const absl::Time start = clock_->Now();
  int64_t kept = 0;
  int64_t requeued = 0;
  int64_t executions = 0;
  absl::Status status;
  Outbox out;
  {
    absl::MutexLock one_at_a_time(&snapshot_mu_);
    absl::MutexLock lock(&mu_);
    if (shard >= shards_.shard_count()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adopt shard ", shard, ": shards are 0..", shards_.shard_count() - 1));
    }
    if (shards_.owns(shard)) {
      return absl::FailedPreconditionError(
          absl::StrCat("adopt shard ", shard, ": this orchestrator owns it already"));
    }
    const auto first = static_cast<uint32_t>(executions_.size());
    // As Recover replays the whole store: nothing is recorded, nothing sent;
    // the retry timers of retries still waiting and log lines are kept.
    // Watchers of all executions saw this history at the previous owner.
    handover_.MuteWatchers();
    TickLocked();
    journal_.set_replaying(true);
    if (snapshot.has_value()) {
      status = recovery_.Restore(*std::move(snapshot), out, /*into_live=*/true);
    }
    for (size_t i = 0; i < records.size() && status.ok(); ++i) {
      const v1::StateRecord& record = records[i];
      Outbox replayed;
      journal_.set_now(record.unix_nanos() != 0 ? absl::FromUnixNanos(record.unix_nanos())
                                                : clock_->Now());
      status = recovery_.ApplyRecord(record, replayed);
      for (Outbox::RetryTimer& retry : replayed.retries) out.retries.push_back(retry);
      for (Outbox::LogLine& line : replayed.logs) out.logs.push_back(std::move(line));
    }
    journal_.set_replaying(false);
    handover_.UnmuteWatchers();
    TickLocked();
    if (!status.ok()) {
      // Nothing of a shard whose history does not replay is kept: the
      // lease manager may try again (or another orchestrator may).
      handover_.DropFrom(first, status);
      return absl::Status(status.code(),
                          absl::StrCat("adopt shard ", shard, ": ", status.message()));
    }
    shards_.Add(shard);
    recovery_.SettleInFlight(clock_->Now(), out, &kept, &requeued, first);
    executions = static_cast<int64_t>(executions_.size() - first);
    dispatcher_.Dispatch(out);
    dispatcher_.RefreshMetrics();
  }
  Deliver(out);
  logging::Info("shard adopted", {{"shard", static_cast<int64_t>(shard)},
                                  {"records", static_cast<int64_t>(records.size())},
                                  {"executions", executions},
                                  {"leases_kept_for_their_agents", kept},
                                  {"requeued_attempts", requeued},
                                  {"seconds", absl::ToDoubleSeconds(clock_->Now() - start)}});
  return absl::OkStatus();
}

absl::Status WorkflowEngine::ReleaseShard(uint32_t shard) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  Outbox out;
  int64_t dropped = 0;
  uint64_t position = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!shards_.owns(shard)) {
      return absl::FailedPreconditionError(
          absl::StrCat("release shard ", shard, ": this orchestrator does not own it"));
    }
    TickLocked();
    shards_.Remove(shard);
    dropped = handover_.Release(shard, shards_.shard_count(), ShardMovedError(shard), out);
    // Waiters of global tasks whose owner left, woken: dispatched.
    dispatcher_.Dispatch(out);
    // Every record of the shard was appended under this lock, before now.
    if (options_.store != nullptr) position = options_.store->last_position();
    dispatcher_.RefreshMetrics();
  }
  Deliver(out);
  // Waited for without the lock: the new owner reads these records.
  if (options_.store != nullptr) {
    if (absl::Status durable = options_.store->AwaitDurable(position); !durable.ok()) {
      return durable;
    }
  }
  logging::Info("shard released",
                {{"shard", static_cast<int64_t>(shard)}, {"executions", dropped}});
  return absl::OkStatus();
}

// --- Workflow definitions ---

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::CreateWorkflow(v1::WorkflowDefinition def) {
  return StoreWorkflowVersion(std::move(def), /*create=*/true);
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::UpdateWorkflow(v1::WorkflowDefinition def) {
  return StoreWorkflowVersion(std::move(def), /*create=*/false);
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::StoreWorkflowVersion(
    v1::WorkflowDefinition def, bool create) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  // Prepared off the lock: the task library is immutable.
  if (absl::Status status =
          WorkflowRegistry::Prepare(options_.task_library, def, options_.workflow_limits);
      !status.ok()) {
    return status;
  }
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status status = workflows_.AddVersion(def, create, clock_->Now()); !status.ok()) {
      return status;
    }
    v1::StateRecord record;
    *record.mutable_workflow_stored()->mutable_definition() = def;
    journal_.Persist(record, DurableCallback(durable));
  }
  if (absl::Status status = durable->Wait(options_.store, options_.store_outage_wait); !status.ok())
    return status;
  return def;
}

absl::Status WorkflowEngine::DeleteWorkflow(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  const std::string full =
      absl::StartsWith(name, "workflows/") ? std::string(name) : absl::StrCat("workflows/", name);
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    if (workflows_.Latest(full) == nullptr) {
      return absl::NotFoundError(absl::StrCat("workflow ", QuoteClientText(full), " not found"));
    }
    for (const auto& exec : executions_.all()) {
      if (exec == nullptr || exec->definition->name() != full || exec->final() || exec->released) {
        continue;
      }
      return absl::FailedPreconditionError(
          absl::StrCat("workflow ", QuoteClientText(full),
                       " has an execution that has not finished (", exec->name(), " is ",
                       v1::ExecutionState_Name(exec->state), "); cancel it or wait for it to end"));
    }
    workflows_.Remove(full);
    v1::StateRecord record;
    record.mutable_workflow_deleted()->set_name(full);
    journal_.Persist(record, DurableCallback(durable));
  }
  return durable->Wait(options_.store, options_.store_outage_wait);
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::GetWorkflow(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  WorkflowRegistry::Suggestion suggestion;
  absl::StatusOr<WorkflowRegistry::Definition> def;
  {
    absl::MutexLock lock(&mu_);
    def = workflows_.Resolve(name, &suggestion);
  }
  // The suggestion and the copy of the definition (it may be large) are
  // made without the lock.
  if (!def.ok() && !suggestion.word.empty()) {
    return absl::NotFoundError(
        absl::StrCat(def.status().message(), DidYouMean(suggestion.word, suggestion.candidates)));
  }
  if (!def.ok()) return def.status();
  return **def;
}

absl::StatusOr<v1::ListWorkflowsResponse> WorkflowEngine::ListWorkflows(
    const v1::ListWorkflowsRequest& req) {
  absl::StatusOr<size_t> limit = PageSize(req.page_size(), 100, 1000);
  if (!limit.ok()) return limit.status();
  absl::StatusOr<std::string> after = WorkflowRegistry::AfterToken(req.page_token());
  if (!after.ok()) return after.status();
  // Under the lock only the page's shared definitions are taken; copying
  // them (megabytes each, perhaps) happens after.
  std::vector<WorkflowRegistry::Definition> page;
  bool more = false;
  {
    absl::MutexLock lock(&mu_);
    page = workflows_.Page(*after, *limit, &more, req.tenant());
  }
  v1::ListWorkflowsResponse response;
  size_t bytes = 0;
  for (size_t i = 0; i < page.size(); ++i) {
    if (i > 0 && bytes + page[i]->ByteSizeLong() > kMaxWorkflowPageBytes) {
      more = true;
      break;
    }
    bytes += page[i]->ByteSizeLong();
    *response.add_workflows() = *page[i];
  }
  if (more) {
    response.set_next_page_token(
        WorkflowRegistry::PageToken(response.workflows().rbegin()->name()));
  }
  return response;
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::GetTaskLibrary() const {
  if (options_.task_library == nullptr) {
    return absl::NotFoundError(
        "no task library is loaded: set task_library_dir in the orchestrator's config");
  }
  return *options_.task_library;
}

size_t WorkflowEngine::QueueCount() {
  absl::MutexLock lock(&mu_);
  return queues_.size();
}

// --- Executions ---

absl::StatusOr<v1::Execution> WorkflowEngine::StartExecution(v1::StartExecutionRequest req) {
  return StartExecution(std::move(req), nullptr, 0);
}

absl::StatusOr<WorkflowEngine::StartedExecution> WorkflowEngine::StartAndWatch(
    v1::StartExecutionRequest req, bool include_logs) {
  auto events = std::make_shared<EventSubscription>(include_logs);
  absl::StatusOr<v1::Execution> execution = StartExecution(std::move(req), events, 0);
  if (!execution.ok()) {
    Unwatch(events);
    return execution.status();
  }
  return StartedExecution{*std::move(execution), std::move(events)};
}

absl::StatusOr<v1::Execution> WorkflowEngine::StartExecution(
    v1::StartExecutionRequest req, const std::shared_ptr<EventSubscription>& watch,
    uint64_t fingerprint) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  if (absl::Status status = workflow::ValidateContextMap(req.context()); !status.ok()) {
    return status;
  }
  if (req.priority() < 0 || req.priority() > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority ", req.priority(), " is out of range [0, 100]"));
  }
  if (req.request_id().size() > 128) {
    return absl::InvalidArgumentError("request_id is longer than 128 characters");
  }
  // Before the definition is moved out of the request, and off the lock.
  if (fingerprint == 0 && !req.request_id().empty()) fingerprint = RequestFingerprint(req);
  // Secret values join the context here (after the fingerprint, which
  // tells them apart from plain ones); from now on only the marking
  // (secret_keys) does.
  std::set<std::string> secret_keys;
  if (!req.secret_context().empty()) {
    if (absl::Status status = workflow::ValidateContextMap(req.secret_context()); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("secret_context: ", status.message()));
    }
    for (auto& [key, value] : *req.mutable_secret_context()) {
      if (req.context().contains(key)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "context key \"", key, "\" is in both context and secret_context; give it once"));
      }
      secret_keys.insert(key);
      (*req.mutable_context())[key] = std::move(value);
    }
    req.clear_secret_context();
  }
  // An inline definition is validated before taking the lock: a large one
  // must not stall dispatch.
  absl::StatusOr<WorkflowRegistry::Definition> selected;
  // What the predictor is asked about once the execution is durable.
  WorkflowRegistry::Definition predict_definition;
  std::vector<std::pair<std::string, double>> predict_context;
  std::shared_ptr<const workflow::DeclaredContext> declared;
  const bool inline_definition = req.has_definition();
  if (inline_definition) {
    selected =
        WorkflowRegistry::InlineDefinition(options_.task_library, req, options_.workflow_limits);
    if (!selected.ok()) return selected.status();
    declared = std::make_shared<const workflow::DeclaredContext>(**selected);
  }
  Outbox out;
  v1::Execution result;
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    if (!req.request_id().empty()) {
      if (const ExecutionEntry* exec = executions_.FindByRequest(req.request_id())) {
        if (exec->request_fingerprint != 0 && exec->request_fingerprint != fingerprint) {
          return absl::AlreadyExistsError(
              absl::StrCat("request_id ", req.request_id(), " was used for a different request (",
                           exec->name(), "); use a new request_id for a new request"));
        }
        if (watch != nullptr) SubscribeLocked(*exec, 1, watch);
        return ExecutionProto(*exec);
      }
    }
    if (!inline_definition) {
      absl::StatusOr<WorkflowRegistry::Definition> def = workflows_.Resolve(req.workflow());
      if (!def.ok()) return def.status();
      std::vector<std::string> targets(req.targets().begin(), req.targets().end());
      selected = workflow::SelectTargets(*def, targets);
      if (!selected.ok()) return selected.status();
      declared = std::make_shared<const workflow::DeclaredContext>(**selected);
    }
    // Only declared names enter the context (a child may also be given
    // what its parent's workflow declares: its evaluator passes them on).
    const ExecutionEntry* parent = nullptr;
    if (!req.parent().empty()) {
      parent = executions_.Find(req.parent());
      if (parent == nullptr) {
        return Missing(req.parent(), "start a child execution",
                       absl::NotFoundError(absl::StrCat(req.parent(), " not found")));
      }
    }
    if (absl::Status status = workflow::CheckStartContextDeclared(
            req.context(), *declared, (*selected)->name(),
            parent != nullptr ? parent->declared.get() : nullptr);
        !status.ok()) {
      return status;
    }

    v1::StateRecord record;
    v1::ExecutionStarted& started = *record.mutable_execution_started();
    if (shards_.all() || parent == nullptr) {
      absl::StatusOr<std::string> id = NewExecutionIdLocked();
      if (!id.ok()) return id.status();
      started.set_execution_id(*std::move(id));
    } else {
      // A child starts in its parent's shard: its start record then moves
      // with the parent's, so a new owner replaying the parent's history
      // knows the child started (and does not start it again).
      const uint32_t shard = shards_.ShardOf(parent->id);
      std::string id;
      do {
        id = executions_.NewId(clock_->Now());
      } while (shards_.ShardOf(id) != shard);
      started.set_execution_id(std::move(id));
    }
    for (const auto& [key, value] : (*selected)->default_context()) {
      (*started.mutable_context())[key] = value;
    }
    if (parent != nullptr) {
      started.set_parent(parent->name());
      for (const auto& [key, value] : parent->context) (*started.mutable_context())[key] = value;
      secret_keys.insert(parent->secret_keys.begin(), parent->secret_keys.end());
    }
    for (const auto& [key, value] : req.context()) (*started.mutable_context())[key] = value;
    for (const std::string& key : secret_keys) started.add_secret_keys(key);
    // Each part is within the limits; together they may not be. Checked
    // before anything is applied (a few hundred entries at most, so cheap
    // under the lock).
    if (const size_t entries = static_cast<size_t>(started.context_size()),
        bytes = workflow::ContextBytes(started.context());
        entries > limits::kMaxContextEntries || bytes > limits::kMaxContextTotalBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the execution's context (the workflow's default context, the parent's and the "
          "request's together) has ",
          entries, " entries and ", bytes, " bytes; at most ", limits::kMaxContextEntries,
          " entries and ", limits::kMaxContextTotalBytes, " bytes"));
    }
    for (const std::string& target : req.targets()) started.add_targets(target);
    started.set_priority(req.priority() == 0 ? 50 : req.priority());
    started.set_request_id(req.request_id());
    started.set_request_fingerprint(fingerprint);
    started.set_context_rules(kDeclaredContextRules);
    *started.mutable_create_time() = ToProto(journal_.now());

    if (queues_.size() + static_cast<size_t>((*selected)->tasks_size()) > kMaxQueues) {
      // Each queue name a task names costs the engine memory for as long
      // as it runs: bounded like those agents list.
      const std::string default_queue =
          (*selected)->default_queue().empty() ? "default" : (*selected)->default_queue();
      std::vector<const std::string*> names;
      names.reserve(static_cast<size_t>((*selected)->tasks_size()));
      for (const v1::TaskSpec& task : (*selected)->tasks()) {
        names.push_back(task.queue().empty() ? &default_queue : &task.queue());
      }
      if (absl::Status room = queues_.CheckRoom(names, "start execution"); !room.ok()) {
        return room;
      }
    }
    // The submission and the leases dispatch gives its first tasks: one
    // commit, before both the reply and the assignments.
    EngineJournal::CommitHold together(journal_);
    ExecutionEntry& exec = machine_.CreateExecution(started, *selected, std::move(declared), out);
    if (options_.predictions != nullptr) {
      predict_definition = *selected;
      for (const auto& [key, value] : exec.context) {
        if (predict_context.size() >= AttemptObservation::kMaxContextValues) break;
        double number = 0;
        if (absl::SimpleAtod(value, &number)) predict_context.emplace_back(key, number);
      }
    }
    evaluators_.ChildStarted(started.request_id());
    // The record lends the shared definition instead of copying it (a large
    // one is most of a submission's memory); the store is done with the
    // record when Append returns.
    started.unsafe_arena_set_allocated_definition(
        const_cast<v1::WorkflowDefinition*>(selected->get()));
    journal_.Persist(record, DurableCallback(durable));
    started.unsafe_arena_release_definition();
    machine_.UpdateExecutionState(exec, out);
    dispatcher_.Dispatch(out);
    // Its events wait in the subscription until the caller has the reply.
    if (watch != nullptr) SubscribeLocked(exec, 1, watch);
    result = ExecutionProto(exec);
  }
  Deliver(out);
  // Acknowledged only once durable: a crash after this reply loses nothing.
  if (absl::Status status = durable->Wait(options_.store, options_.store_outage_wait); !status.ok())
    return status;
  if (predict_definition != nullptr) {
    options_.predictions->ExecutionStarted(result.name(), std::move(predict_definition),
                                           std::move(predict_context));
  }
  logging::Info("execution started", {{"execution", result.name()},
                                      {"workflow", result.workflow()},
                                      {"tasks", result.task_counts().total()}});
  return result;
}

absl::StatusOr<v1::Execution> WorkflowEngine::ScheduleOutcome(const v1::ScheduleOutcomeRequest& req,
                                                              absl::string_view tenant) {
  if (options_.task_library == nullptr) {
    return absl::FailedPreconditionError(
        "no task library is loaded: set task_library_dir in the orchestrator's config");
  }
  if (req.targets().empty()) {
    return absl::InvalidArgumentError("schedule outcome: name at least one target task");
  }
  v1::StartExecutionRequest start;
  *start.mutable_definition() = *options_.task_library;
  if (!tenant.empty()) start.mutable_definition()->set_tenant(std::string(tenant));
  *start.mutable_targets() = req.targets();
  *start.mutable_context() = req.context();
  start.set_priority(req.priority());
  start.set_request_id(req.request_id());
  // The client's request, not the expanded one: the library may change
  // between a request and its retry after a restart.
  const uint64_t fingerprint = req.request_id().empty() ? 0 : RequestFingerprint(req);
  return StartExecution(std::move(start), nullptr, fingerprint);
}

absl::StatusOr<v1::Execution> WorkflowEngine::GetExecution(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::MutexLock lock(&mu_);
  const ExecutionEntry* exec = executions_.Find(name);
  if (exec == nullptr) {
    return Missing(
        name, "get execution",
        absl::NotFoundError(absl::StrCat("execution ", QuoteClientText(name), " not found")));
  }
  return ExecutionProto(*exec);
}

absl::StatusOr<v1::ListExecutionsResponse> WorkflowEngine::ListExecutions(
    const v1::ListExecutionsRequest& req) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::StatusOr<size_t> limit = PageSize(req.page_size(), 100, 1000);
  if (!limit.ok()) return limit.status();
  if (!v1::ExecutionView_IsValid(req.view())) {
    return absl::InvalidArgumentError(
        absl::StrCat("view ", req.view(), " is not an ExecutionView (BASIC or FULL)"));
  }
  absl::MutexLock lock(&mu_);
  return executions_.List(req, *limit);
}

absl::StatusOr<v1::ListTaskRunsResponse> WorkflowEngine::ListTaskRuns(
    const v1::ListTaskRunsRequest& req) {
  v1::ListTaskRunsResponse response;
  if (absl::Status status = ListTaskRuns(req, &response); !status.ok()) return status;
  return response;
}

absl::Status WorkflowEngine::ListTaskRuns(const v1::ListTaskRunsRequest& req,
                                          v1::ListTaskRunsResponse* response) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::StatusOr<size_t> limit = PageSize(req.page_size(), 1000, 10000);
  if (!limit.ok()) return limit.status();
  absl::MutexLock lock(&mu_);
  const ExecutionEntry* exec = executions_.Find(req.parent());
  if (exec == nullptr) {
    return Missing(req.parent(), "list task runs",
                   absl::NotFoundError(
                       absl::StrCat("execution ", QuoteClientText(req.parent()), " not found")));
  }
  absl::Status listed = executions_.ListTaskRuns(*exec, req, *limit, queues_, response);
  if (listed.ok()) ExplainWaiting(*exec, *response->mutable_task_runs());
  return listed;
}

void WorkflowEngine::ExplainWaiting(const ExecutionEntry& exec,
                                    google::protobuf::RepeatedPtrField<v1::TaskRun>& runs) {
  WaitingExplainer explainer(executions_, queues_, agents_, dispatcher_.pools(), clock_->Now());
  for (v1::TaskRun& run : runs) {
    // Only a waiting task has a reason: the others skip the lookup by id,
    // which was a tenth of a 10,000-task `gyre status`.
    if (run.state() != v1::TASK_PENDING && run.state() != v1::TASK_READY) continue;
    auto index = exec.task_index.find(run.task_id());
    if (index == exec.task_index.end()) continue;
    if (std::optional<v1::WaitingExplanation> why = explainer.Explain(exec, index->second)) {
      *run.mutable_waiting() = *std::move(why);
    }
  }
}

absl::StatusOr<v1::Execution> WorkflowEngine::CancelExecution(absl::string_view name,
                                                              absl::string_view reason) {
  return ControlExecution(name, v1::ExecutionControl::CANCEL, reason);
}

absl::StatusOr<v1::Execution> WorkflowEngine::PauseExecution(absl::string_view name) {
  return ControlExecution(name, v1::ExecutionControl::PAUSE, "");
}

absl::StatusOr<v1::Execution> WorkflowEngine::ResumeExecution(absl::string_view name) {
  return ControlExecution(name, v1::ExecutionControl::RESUME, "");
}

absl::StatusOr<v1::Execution> WorkflowEngine::ControlExecution(absl::string_view name,
                                                               v1::ExecutionControl::Action action,
                                                               absl::string_view reason) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  // Kept with the execution and recorded: free text for people, bounded.
  if (reason.size() > limits::kMaxMessageTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat("reason is ", reason.size(), " bytes; at most ",
                                                   limits::kMaxMessageTextBytes));
  }
  Outbox out;
  v1::Execution result;
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    ExecutionEntry* exec = executions_.Find(name);
    if (exec == nullptr) {
      return Missing(
          name, v1::ExecutionControl::Action_Name(action),
          absl::NotFoundError(absl::StrCat("execution ", QuoteClientText(name), " not found")));
    }
    const std::string state = v1::ExecutionState_Name(exec->state);
    switch (action) {
      case v1::ExecutionControl::CANCEL:
        if (exec->final()) {
          return absl::FailedPreconditionError(
              absl::StrCat(exec->name(), " already ended (", state, ")"));
        }
        machine_.Cancel(*exec, reason, out);
        break;
      case v1::ExecutionControl::PAUSE:
        if (exec->state != v1::EXECUTION_PENDING && exec->state != v1::EXECUTION_RUNNING) {
          return absl::FailedPreconditionError(
              absl::StrCat(exec->name(), " cannot be paused in state ", state));
        }
        machine_.SetExecutionState(*exec, v1::EXECUTION_PAUSED, out);
        break;
      case v1::ExecutionControl::RESUME:
        if (exec->state != v1::EXECUTION_PAUSED) {
          return absl::FailedPreconditionError(
              absl::StrCat(exec->name(), " is not paused (", state, ")"));
        }
        machine_.Resume(*exec, out);
        break;
      default:
        return absl::InvalidArgumentError("unknown execution control");
    }
    v1::StateRecord record;
    v1::ExecutionControl& control = *record.mutable_execution_control();
    control.set_execution_id(exec->id);
    control.set_action(action);
    control.set_reason(exec->reason);
    journal_.Persist(record, DurableCallback(durable));
    // After the control's record: the leases it allows come after it in the
    // log, as their events come after its event.
    if (action == v1::ExecutionControl::RESUME) dispatcher_.Dispatch(out);
    result = ExecutionProto(*exec);
  }
  Deliver(out);
  if (absl::Status status = durable->Wait(options_.store, options_.store_outage_wait); !status.ok())
    return status;
  return result;
}

absl::StatusOr<v1::Execution> WorkflowEngine::UpdatePriority(const v1::UpdatePriorityRequest& req) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  if (req.priority() < 0 || req.priority() > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority ", req.priority(), " is out of range [0, 100]"));
  }
  const bool one_task = req.name().find("/tasks/") != std::string::npos;
  Outbox out;
  v1::Execution result;
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    TaskLocation found;
    ExecutionEntry* exec = nullptr;
    if (one_task) {
      found = executions_.FindTaskRun(req.name());
      exec = found.execution;
    } else {
      exec = executions_.Find(req.name());
    }
    if (exec == nullptr) {
      return Missing(req.name(), "update priority",
                     absl::NotFoundError(absl::StrCat(one_task ? "task run " : "execution ",
                                                      QuoteClientText(req.name()), " not found")));
    }
    if (exec->final()) {
      return absl::FailedPreconditionError(absl::StrCat(exec->name(), " already ended (",
                                                        v1::ExecutionState_Name(exec->state), ")"));
    }
    v1::StateRecord record;
    v1::PriorityChanged& changed = *record.mutable_priority_changed();
    changed.set_execution_id(exec->id);
    changed.set_priority(req.priority());
    if (one_task) {
      const v1::TaskState state = found.entry().state;
      if (state != v1::TASK_PENDING && state != v1::TASK_READY) {
        return absl::FailedPreconditionError(
            absl::StrCat(QuoteClientText(req.name()), " is ", v1::TaskState_Name(state),
                         ": only a task not yet leased takes a new priority"));
      }
      changed.set_task_id(found.entry().spec->id());
      machine_.SetPriority(*exec, found.task, req.priority());
    } else {
      machine_.SetPriority(*exec, req.priority());
    }
    journal_.Persist(record, DurableCallback(durable));
    dispatcher_.Dispatch(out);
    result = ExecutionProto(*exec);
  }
  Deliver(out);
  if (absl::Status status = durable->Wait(options_.store, options_.store_outage_wait); !status.ok())
    return status;
  return result;
}

absl::StatusOr<v1::TaskRun> WorkflowEngine::GetTaskRun(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::MutexLock lock(&mu_);
  const TaskLocation found = executions_.FindTaskRun(name);
  if (!found) {
    return Missing(
        name, "get task run",
        absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name), " not found")));
  }
  v1::TaskRun run = TaskRunProto(*found.execution, found.task, /*with_history=*/true, queues_);
  run.set_waiting_reason(dispatcher_.WaitingReason(*found.execution, found.entry()));
  WaitingExplainer explainer(executions_, queues_, agents_, dispatcher_.pools(), clock_->Now());
  if (std::optional<v1::WaitingExplanation> why = explainer.Explain(*found.execution, found.task)) {
    *run.mutable_waiting() = *std::move(why);
  }
  return run;
}

absl::StatusOr<v1::GetTaskLogsResponse> WorkflowEngine::GetTaskLogs(absl::string_view name,
                                                                    int64_t attempt) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::MutexLock lock(&mu_);
  const TaskLocation found = executions_.FindTaskRun(name);
  if (!found) {
    return Missing(
        name, "get task logs",
        absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name), " not found")));
  }
  const TaskEntry& task = found.entry();
  const int64_t wanted = attempt != 0 ? attempt : task.attempt;
  const std::map<int64_t, AttemptLogs>& logs = task.details_or_empty().logs;
  auto logged = logs.find(wanted);
  if (logged == logs.end()) {
    if (wanted < 1 || wanted > task.attempt) {
      return absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name),
                                              " has no attempt ", wanted,
                                              " (attempts: ", task.attempt, ")"));
    }
    if (found.execution->logs_expired != absl::InfinitePast()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task run ", QuoteClientText(name), " attempt ", wanted,
          ": its logs were removed by retention at ",
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", found.execution->logs_expired,
                           absl::UTCTimeZone()),
          " (retention_task_logs: logs are kept that long after their execution ends)"));
    }
    // The attempt exists but reported no output (yet).
  }
  v1::GetTaskLogsResponse response;
  response.set_attempt(wanted);
  if (logged != logs.end()) {
    response.set_stdout(logged->second.stdout_tail);
    response.set_stderr(logged->second.stderr_tail);
    response.set_truncated(logged->second.truncated);
  }
  return response;
}

// --- Watch ---

absl::StatusOr<std::shared_ptr<EventSubscription>> WorkflowEngine::Watch(
    absl::string_view execution, int64_t from_sequence, bool include_logs) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  auto subscription = std::make_shared<EventSubscription>(include_logs);
  absl::MutexLock lock(&mu_);
  if (execution.empty()) {
    publisher_.WatchAll(subscription);
    return subscription;
  }
  const ExecutionEntry* exec = executions_.Find(execution);
  if (exec == nullptr) {
    return Missing(
        execution, "watch",
        absl::NotFoundError(absl::StrCat("execution ", QuoteClientText(execution), " not found")));
  }
  SubscribeLocked(*exec, from_sequence, subscription);
  return subscription;
}

void WorkflowEngine::SubscribeLocked(const ExecutionEntry& exec, int64_t from_sequence,
                                     const std::shared_ptr<EventSubscription>& subscription) {
  publisher_.Subscribe(
      exec, from_sequence, subscription,
      [this, exec_index = exec.index](uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                                      std::vector<v1::Event*>* events) {
        ReplayEvents(exec_index, from, to, arena, events);
      });
}

void WorkflowEngine::ReplayEvents(uint32_t exec_index, uint32_t from, uint32_t to,
                                  google::protobuf::Arena* arena, std::vector<v1::Event*>* events) {
  // Kept per thread: the watcher threads that call this reuse the sources'
  // buffers batch after batch.
  thread_local std::vector<EventSource> sources;
  const size_t count = to - from;
  if (sources.size() < count) sources.resize(count);
  std::shared_ptr<const ExecutionEntry> exec;  // kept alive if retention forgets it meanwhile
  {
    // Only copies under the lock: the engine's thread waits for no event
    // being built.
    absl::MutexLock lock(&mu_);
    exec = executions_.Share(exec_index);
    if (exec == nullptr) return;  // forgotten by retention: nothing to replay
    // Its shard moved away meanwhile: its history left with it (the
    // subscription was ended).
    if (exec->released) return;
    for (size_t i = 0; i < count; ++i) {
      CollectEvent(*exec, from + static_cast<uint32_t>(i), arena, &sources[i]);
    }
  }
  events->reserve(events->size() + count);
  for (size_t i = 0; i < count; ++i) events->push_back(BuildEvent(*exec, sources[i], arena));
}

void WorkflowEngine::Unwatch(const std::shared_ptr<EventSubscription>& subscription) {
  absl::MutexLock lock(&mu_);
  publisher_.Unwatch(subscription);
}

std::vector<v1::QueueInfo> WorkflowEngine::ListQueues() {
  absl::MutexLock lock(&mu_);
  return dispatcher_.QueueInfos(/*cluster_wide=*/true);
}

void WorkflowEngine::RefreshQueueGauges() {
  absl::MutexLock lock(&mu_);
  dispatcher_.RefreshMetrics();
}

LoadSnapshot WorkflowEngine::SnapshotLoad(const LoadSnapshotOptions& options) {
  absl::MutexLock lock(&mu_);
  // This engine's own queues: the forecast is of its own executions' tasks.
  return TakeLoadSnapshot(executions_, dispatcher_.QueueInfos(/*cluster_wide=*/false),
                          clock_->Now(), options);
}

std::vector<v1::AgentInfo> WorkflowEngine::ListAgents() {
  absl::MutexLock lock(&mu_);
  return agents_.List();
}

std::string WorkflowEngine::DispatchStallForTest() {
  absl::MutexLock lock(&mu_);
  return dispatcher_.StallForTest();
}

// --- The agent protocol ---

absl::StatusOr<v1::Registered> WorkflowEngine::RegisterAgent(
    const v1::Register& registration, std::shared_ptr<AgentChannel> channel) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  if (absl::Status status = AgentManager::CheckRegistration(registration); !status.ok()) {
    return status;
  }
  const std::string& id = registration.agent_id();
  Outbox out;
  std::string took_over;  // why the old stream was replaced, for the log
  bool reconnected = false;
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    absl::StatusOr<AgentEntry*> agent =
        agents_.Register(registration, std::move(channel), clock_->Now(), &reconnected, &took_over);
    if (!agent.ok()) return agent.status();
    leases_.OnRegister(**agent, registration, reconnected, clock_->Now(), out);
    dispatcher_.Dispatch(out);
  }
  Deliver(out);
  if (!took_over.empty()) {
    logging::Warn("agent stream replaced", {{"agent", id}, {"why", took_over}});
  }
  logging::Info(reconnected ? "agent reconnected" : "agent registered",
                {{"agent", id},
                 {"slots", registration.slots()},
                 {"queues", absl::StrJoin(registration.queues(), ",")}});
  v1::Registered registered;
  registered.set_agent("agents/" + id);
  *registered.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
  *registered.mutable_lease_timeout() = ToProto(options_.lease_timeout);
  registered.set_credit_in_results(true);
  return registered;
}

absl::Status WorkflowEngine::HandleAgentMessage(const std::string& agent_id,
                                                const v1::AgentMessage& received,
                                                const AgentChannel* channel) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  // Results are cut to the documented limits on arrival, before anything is
  // applied.
  const std::optional<v1::AgentMessage> capped = ResultRecorder::CapOversized(received);
  const v1::AgentMessage& message = capped ? *capped : received;
  // Checked before the lock: what an agent names is bounded.
  switch (message.kind_case()) {
    case v1::AgentMessage::kHeartbeat:
      if (absl::Status status =
              AgentManager::CheckAttemptRefs(message.heartbeat().running(), "heartbeat");
          !status.ok()) {
        return status;
      }
      break;
    case v1::AgentMessage::kTaskStarted:
      if (absl::Status status =
              AgentManager::CheckAttemptRef(message.task_started().ref(), "task_started");
          !status.ok()) {
        return status;
      }
      break;
    case v1::AgentMessage::kLogChunk:
      if (absl::Status status =
              AgentManager::CheckAttemptRef(message.log_chunk().ref(), "log_chunk");
          !status.ok()) {
        return status;
      }
      break;
    default:
      break;
  }
  // Results' outputs are a task's JSON: parsed here, on the stream's own
  // thread, before the engine lock is taken. Most results have none, and
  // then nothing is allocated.
  std::vector<ParsedOutput> parsed;
  auto parse_outputs = [&parsed](absl::Span<const v1::TaskResult* const> results) {
    if (std::none_of(results.begin(), results.end(),
                     [](const v1::TaskResult* r) { return !r->output_json().empty(); })) {
      return;
    }
    parsed.reserve(results.size());
    for (const v1::TaskResult* result : results) {
      parsed.push_back(ParseTaskOutput(result->output_json()));
    }
  };
  if (message.has_task_result()) {
    const v1::TaskResult* result = &message.task_result();
    parse_outputs({&result, 1});
  } else if (message.has_task_results() &&
             message.task_results().results_size() <= kMaxResultsPerMessage) {
    const auto& results = message.task_results().results();
    parse_outputs(absl::MakeConstSpan(results.data(), results.size()));
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    AgentEntry* found = agents_.Find(agent_id);
    if (found == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent \"", agent_id, "\" is not registered (declared dead?)"));
    }
    AgentEntry& agent = *found;
    if (channel != nullptr && agent.channel.get() != channel) {
      // This stream fell silent and the id registered again on another:
      // what still comes on it must not act for the new session.
      return absl::FailedPreconditionError(absl::StrCat(
          "agent ", agent_id, ": this stream was replaced by a newer registration of the id"));
    }
    TickLocked();
    agent.last_seen = journal_.now();
    switch (message.kind_case()) {
      case v1::AgentMessage::kHeartbeat:
        if (leases_.Reconcile(agent, message.heartbeat(), journal_.now(), out)) {
          dispatcher_.Dispatch(out);
        }
        break;
      case v1::AgentMessage::kCredit:
        agent.credit += std::max(0, message.credit().tasks());
        dispatcher_.DispatchTo(agent, out);
        break;
      case v1::AgentMessage::kTaskStarted: {
        const TaskLocation started = executions_.FindTask(message.task_started().ref());
        // Only the lease holder says when its attempt started.
        if (!started || started.entry().agent != agent_id) break;
        if (machine_.StartAttempt(*started.execution, started.task,
                                  message.task_started().ref().attempt())) {
          metrics_.ObserveSubmitToStart(
              absl::ToDoubleSeconds(journal_.now() - started.entry().ready_time));
        }
        break;
      }
      case v1::AgentMessage::kTaskResult: {
        const v1::TaskResult* result = &message.task_result();
        if (result->sequence() == 0) return UnnumberedResult();
        // Refused whole, not applied and not acknowledged: the agent sends
        // it to the shard's owner.
        if (absl::Status owned = shards_.Check(result->ref().execution(), "task result");
            !owned.ok()) {
          return owned;
        }
        EngineJournal::CommitHold together(journal_);  // the result and the next leases
        results_.RecordResults(agent, {&result, 1}, absl::MakeSpan(parsed), out);
        dispatcher_.Dispatch(out);
        break;
      }
      case v1::AgentMessage::kTaskResults: {
        const auto& results = message.task_results().results();
        if (results.size() > kMaxResultsPerMessage) {
          return absl::InvalidArgumentError(absl::StrCat("task_results: ", results.size(),
                                                         " results in one message; at most ",
                                                         kMaxResultsPerMessage));
        }
        for (const v1::TaskResult& result : results) {
          if (result.sequence() == 0) return UnnumberedResult();
        }
        if (!shards_.all()) {
          // One result of a shard not owned refuses the message (nothing
          // applied, nothing acknowledged): acknowledgements are
          // cumulative, so none may pass over a result left unrecorded.
          for (const v1::TaskResult& result : results) {
            if (absl::Status owned = shards_.Check(result.ref().execution(), "task results");
                !owned.ok()) {
              return owned;
            }
          }
        }
        EngineJournal::CommitHold together(journal_);  // the results and the next leases
        results_.RecordResults(agent, absl::MakeConstSpan(results.data(), results.size()),
                               absl::MakeSpan(parsed), out);
        // The slots they freed, in the same pass: the next leases go with
        // the results' commit.
        agent.credit += std::max(0, message.task_results().credit());
        dispatcher_.Dispatch(out);
        break;
      }
      case v1::AgentMessage::kLogChunk: {
        // Live output goes to watchers that asked for it; the complete
        // (capped) output is stored with the result. Only for an attempt
        // this agent runs now: any other would put words in another
        // execution's output (a late chunk of an attempt just cancelled or
        // re-leased is dropped too).
        const v1::TaskLogChunk& chunk = message.log_chunk();
        if (!leases_.HoldsLiveLease(agent, chunk.ref())) break;
        publisher_.PublishLog(*executions_.Find(chunk.ref().execution()), chunk, clock_->Now());
        break;
      }
      case v1::AgentMessage::kDraining:
        agent.draining = true;
        out.Log(logging::Level::kInfo, "agent draining", {{"agent", agent_id}});
        break;
      case v1::AgentMessage::kRegister:
        return absl::FailedPreconditionError("register sent twice on one stream");
      default:
        return absl::InvalidArgumentError("empty agent message");
    }
    dispatcher_.RefreshMetrics();
  }
  Deliver(out);
  return absl::OkStatus();
}

void WorkflowEngine::DisconnectAgent(const std::string& agent_id, const AgentChannel* channel) {
  int64_t leases = 0;
  {
    absl::MutexLock lock(&mu_);
    AgentEntry* agent = agents_.Find(agent_id);
    if (agent == nullptr || agent->channel.get() != channel) return;
    agents_.Disconnect(*agent);
    leases = static_cast<int64_t>(agent->leases.size());
    dispatcher_.RefreshMetrics();
  }
  logging::Info("agent disconnected", {{"agent", agent_id}, {"leases", leases}});
}

void WorkflowEngine::ExpireLeases(absl::Time now) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    std::vector<std::string> dead;
    for (const auto& [id, agent] : agents_.all()) {
      if (now - agent->last_seen > options_.lease_timeout) dead.push_back(id);
    }
    for (const std::string& id : dead) {
      leases_.DeclareDead(*agents_.Find(id), out);
      agents_.Remove(id);
    }
    if (!dead.empty()) dispatcher_.Dispatch(out);
    // At every lease tick the gauges catch up with every agent.
    dispatcher_.RefreshMetrics(/*all_agents=*/true);
  }
  Deliver(out);
}

// --- After the lock ---

void WorkflowEngine::Deliver(Outbox& out) {
  for (const Outbox::LogLine& line : out.logs) {
    logging::LogFields(line.level, line.message, line.fields);
  }
  for (const Outbox::Ended& ended : out.ended) {
    logging::Info("execution ended", {{"execution", ended.execution},
                                      {"state", v1::ExecutionState_Name(ended.state)},
                                      {"succeeded", ended.succeeded},
                                      {"failed", ended.failed},
                                      {"skipped", ended.skipped}});
  }
  for (const Outbox::RetryTimer& retry : out.retries) {
    timers_.Schedule(retry.due, [this, retry] {
      Outbox due;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        TickLocked();
        if (executions_.Get(retry.execution) == nullptr) return;  // forgotten by retention
        ExecutionEntry& exec = executions_.at(retry.execution);
        TaskEntry& task = exec.tasks[retry.task];
        if (task.generation != retry.generation || task.state != v1::TASK_PENDING) return;
        machine_.RetryDue(exec, retry.task, due);
        dispatcher_.Dispatch(due);
      }
      Deliver(due);
    });
  }
  for (const v1::StartExecutionRequest& child : out.child_starts) {
    absl::StatusOr<v1::Execution> started = StartExecution(child);
    if (!started.ok()) {
      {
        absl::MutexLock lock(&mu_);
        evaluators_.ChildStarted(child.request_id());  // not transient: do not retry at restart
      }
      logging::Error("evaluator could not start a child workflow",
                     {{"parent", child.parent()},
                      {"workflow", child.workflow()},
                      {"error", std::string(started.status().message())}});
    }
  }
}

}  // namespace gyre::orchestrator
