#include "services/orchestrator/shard_coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/logging/logger.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

// --- Directory ---

std::optional<OrchestratorMember> LeaseShardDirectory::OwnerOf(uint32_t shard) const {
  absl::MutexLock lock(&mutex_);
  if (shard >= membership_.owners.size() || membership_.owners[shard].empty()) {
    return std::nullopt;
  }
  OrchestratorMember owner{membership_.owners[shard], ""};
  for (const OrchestratorMember& member : membership_.members) {
    if (member.id == owner.id) owner.address = member.address;
  }
  return owner;
}

std::vector<OrchestratorMember> LeaseShardDirectory::Members() const {
  absl::MutexLock lock(&mutex_);
  return membership_.members;
}

void LeaseShardDirectory::Update(ShardMembership membership) {
  absl::MutexLock lock(&mutex_);
  membership_ = std::move(membership);
}

// --- Coordinator ---

absl::StatusOr<std::unique_ptr<ShardCoordinator>> ShardCoordinator::Start(
    ShardCoordinatorOptions options, WorkflowEngine* engine, PostgresShardStore* store) {
  std::unique_ptr<ShardCoordinator> coordinator(
      new ShardCoordinator(std::move(options), engine, store));
  ShardCoordinator* self = coordinator.get();
  // The callbacks only queue (they run on the manager's thread, which must
  // not wait for I/O); the order they came in is kept.
  ShardLeaseCallbacks callbacks;
  callbacks.acquired = [self](uint32_t shard, int64_t token) {
    self->Push({Event::kAcquired, shard, token, std::nullopt});
  };
  callbacks.releasing = [self](uint32_t shard) {
    self->Push({Event::kReleasing, shard, 0, std::nullopt});
  };
  callbacks.lost = [self](uint32_t shard) { self->Push({Event::kLost, shard, 0, std::nullopt}); };
  callbacks.observed = [self](ShardMembership membership) {
    self->Push({Event::kObserved, 0, 0, std::move(membership)});
  };
  absl::StatusOr<std::unique_ptr<ShardLeaseManager>> manager =
      ShardLeaseManager::Start(coordinator->options_.leases, std::move(callbacks));
  if (!manager.ok()) return manager.status();
  coordinator->manager_ = *std::move(manager);
  engine->SetShardDirectory(coordinator->directory_);
  coordinator->thread_ = std::thread([self] { self->Run(); });
  return coordinator;
}

ShardCoordinator::ShardCoordinator(ShardCoordinatorOptions options, WorkflowEngine* engine,
                                   PostgresShardStore* store)
    : options_(std::move(options)),
      engine_(engine),
      store_(store),
      own_directory_(options_.directory != nullptr
                         ? nullptr
                         : std::make_unique<LeaseShardDirectory>(options_.leases.orchestrator_id)),
      directory_(options_.directory != nullptr ? options_.directory : own_directory_.get()) {
  if (options_.metrics != nullptr) {
    owned_gauge_ = &prometheus::BuildGauge()
                        .Name("orchestrator_shards_owned")
                        .Help(
                            "Virtual shards whose executions this orchestrator holds now "
                            "(postgres_sharding)")
                        .Register(*options_.metrics)
                        .Add({});
    auto& handovers =
        prometheus::BuildCounter()
            .Name("orchestrator_shard_handovers_total")
            .Help(
                "Shards moved in (adopted) or out (released to a new member, or lost with "
                "a lease that lapsed) of this orchestrator")
            .Register(*options_.metrics);
    adopted_counter_ = &handovers.Add({{"kind", "adopted"}});
    released_counter_ = &handovers.Add({{"kind", "released"}});
    lost_counter_ = &handovers.Add({{"kind", "lost"}});
  }
}

ShardCoordinator::~ShardCoordinator() { Stop(); }

void ShardCoordinator::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  // The engine stops writing to each shard and its records become durable
  // before the leases go: the next owners read everything.
  std::vector<uint32_t> shards = adopted();
  for (uint32_t shard : shards) {
    if (absl::Status released = engine_->ReleaseShard(shard); !released.ok()) {
      logging::Warn(
          "shard not released cleanly on stop",
          {{"shard", static_cast<int64_t>(shard)}, {"error", std::string(released.message())}});
    }
    store_->ForgetShard(shard);
  }
  {
    absl::MutexLock lock(&mutex_);
    adopted_.clear();
  }
  UpdateGauge();
  engine_->SetShardDirectory(nullptr);
  if (manager_ != nullptr) manager_->Stop();
  logging::Info("left the orchestrators sharing the database",
                {{"orchestrator_id", options_.leases.orchestrator_id},
                 {"shards_released", static_cast<int64_t>(shards.size())}});
}

std::vector<uint32_t> ShardCoordinator::adopted() const {
  absl::MutexLock lock(&mutex_);
  std::vector<uint32_t> out;
  for (const auto& [shard, snapshot] : adopted_) out.push_back(shard);
  return out;
}

void ShardCoordinator::Push(Event event) {
  absl::MutexLock lock(&mutex_);
  events_.push_back(std::move(event));
  wake_.Signal();
}

void ShardCoordinator::Run() {
  const absl::Time ready_by = absl::Now() + options_.ready_within;
  absl::Time next_poll = absl::Now() + options_.poll_every;
  for (;;) {
    std::optional<Event> event;
    {
      absl::MutexLock lock(&mutex_);
      const absl::Time until = ready_ ? next_poll : std::min(next_poll, ready_by);
      while (events_.empty() && !stopping_ && absl::Now() < until) {
        wake_.WaitWithDeadline(&mutex_, until);
      }
      if (stopping_) return;
      if (!events_.empty()) {
        event = std::move(events_.front());
        events_.pop_front();
      }
    }
    if (event.has_value()) Handle(*event);
    if (!ready_ && absl::Now() >= ready_by) {
      logging::Warn("no shard lease round completed in time: reporting ready with the shards held",
                    {{"waited_seconds", absl::ToDoubleSeconds(options_.ready_within)}});
      Ready();
    }
    if (absl::Now() >= next_poll) {
      CatchUpDefinitions();
      SnapshotDue();
      next_poll = absl::Now() + options_.poll_every;
    }
  }
}

void ShardCoordinator::Handle(Event& event) {
  switch (event.kind) {
    case Event::kAcquired:
      Adopt(event.shard, event.token);
      break;
    case Event::kReleasing:
      Drop(event.shard, /*handover=*/true);
      break;
    case Event::kLost:
      Drop(event.shard, /*handover=*/false);
      break;
    case Event::kObserved:
      directory_->Update(*std::move(event.membership));
      // The round read the other members' backlog: desired workers move
      // with it even when nothing changes here.
      if (options_.leases.backlog != nullptr) engine_->RefreshQueueGauges();
      // The round's acquisitions were queued before it: adopted by now.
      if (!ready_) Ready();
      break;
  }
}

void ShardCoordinator::Ready() {
  ready_ = true;
  logging::Info("shards adopted: ready", {{"orchestrator_id", options_.leases.orchestrator_id},
                                          {"shards", static_cast<int64_t>(adopted().size())}});
  if (options_.on_ready) options_.on_ready();
}

void ShardCoordinator::Adopt(uint32_t shard, int64_t token) {
  const uint32_t count = std::max<uint32_t>(1, options_.leases.shard_count);
  std::optional<v1::EngineSnapshot> snapshot;
  std::vector<v1::StateRecord> definitions;
  std::vector<v1::StateRecord> records;
  absl::Status status = store_->LoadShard(
      shard, token,
      [&](v1::EngineSnapshot state) {
        snapshot = std::move(state);
        return absl::OkStatus();
      },
      [&](const v1::StateRecord& record) {
        // Definitions others stored come first (caught up before the
        // shard's history); they are applied before the shard is adopted.
        (ShardOfRecord(record, count).has_value() ? records : definitions).push_back(record);
        return absl::OkStatus();
      });
  if (status.ok()) status = engine_->ApplyDefinitions(definitions);
  if (status.ok()) status = engine_->AdoptShard(shard, std::move(snapshot), records);
  if (!status.ok()) {
    // Given back: the next round (here or elsewhere) tries again.
    logging::Error(
        "shard not adopted; its lease is given back",
        {{"shard", static_cast<int64_t>(shard)}, {"error", std::string(status.message())}});
    store_->ForgetShard(shard);
    manager_->Release(shard);
    return;
  }
  {
    absl::MutexLock lock(&mutex_);
    adopted_[shard] = store_->last_shard_position(shard);
  }
  if (adopted_counter_ != nullptr) adopted_counter_->Increment();
  UpdateGauge();
}

void ShardCoordinator::Drop(uint32_t shard, bool handover) {
  bool was_adopted = false;
  {
    absl::MutexLock lock(&mutex_);
    was_adopted = adopted_.erase(shard) > 0;
  }
  absl::Status released = absl::OkStatus();
  if (was_adopted) released = engine_->ReleaseShard(shard);
  store_->ForgetShard(shard);
  UpdateGauge();
  if (!handover) {
    if (lost_counter_ != nullptr && was_adopted) lost_counter_->Increment();
    logging::Warn("shard lease lost: its executions were dropped here",
                  {{"shard", static_cast<int64_t>(shard)}});
    return;
  }
  if (!released.ok()) {
    // Its records are not all durable (the store failed: the engine stops
    // and the process restarts). The lease is left to lapse rather than
    // handed to a new owner that would miss them.
    logging::Error(
        "shard not handed over: its records are not durable",
        {{"shard", static_cast<int64_t>(shard)}, {"error", std::string(released.message())}});
    return;
  }
  manager_->Release(shard);
  if (released_counter_ != nullptr && was_adopted) released_counter_->Increment();
}

void ShardCoordinator::CatchUpDefinitions() {
  std::vector<v1::StateRecord> definitions;
  absl::Status status = store_->CatchUpDefinitions([&](const v1::StateRecord& record) {
    definitions.push_back(record);
    return absl::OkStatus();
  });
  if (status.ok()) status = engine_->ApplyDefinitions(definitions);
  if (!status.ok()) {
    logging::Warn("definitions of the other orchestrators not caught up; retrying",
                  {{"error", std::string(status.message())}});
  }
}

void ShardCoordinator::SnapshotDue() {
  if (options_.snapshot_every_records == 0) return;
  std::vector<std::pair<uint32_t, uint64_t>> due;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [shard, snapshotted] : adopted_) {
      if (store_->last_shard_position(shard) >= snapshotted + options_.snapshot_every_records) {
        due.emplace_back(shard, snapshotted);
      }
    }
  }
  for (const auto& [shard, snapshotted] : due) {
    // The shard's position is read under the engine lock with the copy.
    absl::StatusOr<v1::EngineSnapshot> snapshot = engine_->SnapshotShard(
        shard, [this, shard = shard] { return store_->last_shard_position(shard); });
    absl::Status status = snapshot.status();
    if (status.ok()) {
      status = store_->WriteShardSnapshot(shard, snapshot->position(), *snapshot);
    }
    if (!status.ok()) {
      logging::Warn(
          "shard snapshot not written; retried later",
          {{"shard", static_cast<int64_t>(shard)}, {"error", std::string(status.message())}});
      continue;
    }
    absl::MutexLock lock(&mutex_);
    auto it = adopted_.find(shard);
    if (it != adopted_.end()) it->second = snapshot->position();
  }
}

void ShardCoordinator::UpdateGauge() {
  if (owned_gauge_ == nullptr) return;
  absl::MutexLock lock(&mutex_);
  owned_gauge_->Set(static_cast<double>(adopted_.size()));
}

}  // namespace gyre::orchestrator
