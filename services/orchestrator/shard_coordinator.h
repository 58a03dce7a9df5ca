#ifndef GYRE_SERVICES_ORCHESTRATOR_SHARD_COORDINATOR_H_
#define GYRE_SERVICES_ORCHESTRATOR_SHARD_COORDINATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/orchestrator/postgres_shard_store.h"
#include "services/orchestrator/shard_directory.h"
#include "services/orchestrator/shard_lease_manager.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace gyre::orchestrator {

class WorkflowEngine;

// The ShardDirectory fed by the lease manager's rounds (what each read of
// `orchestrators` and `shard_leases` found). Made before the process serves
// (the service layer's forwarding holds it from the start, when no round has
// run yet and it knows no owner), fed by the ShardCoordinator once started.
// Thread-safe.
class LeaseShardDirectory final : public ShardDirectory {
 public:
  explicit LeaseShardDirectory(std::string self) : self_(std::move(self)) {}
  std::optional<OrchestratorMember> OwnerOf(uint32_t shard) const override;
  std::vector<OrchestratorMember> Members() const override;
  const std::string& self_id() const override { return self_; }
  void Update(ShardMembership membership);

 private:
  const std::string self_;
  mutable absl::Mutex mutex_;
  ShardMembership membership_ ABSL_GUARDED_BY(mutex_);
};

struct ShardCoordinatorOptions {
  // The database, this orchestrator's id and advertised address, the shard
  // count (the engine's), the lease ttl and the cluster backlog the engine
  // publishes to (WorkflowEngine::Options::cluster_backlog).
  ShardLeaseOptions leases;
  // A shard's snapshot is written once this many records were appended to
  // it since its last one (so shard_records stay bounded and an adoption
  // replays at most about this many); 0: never.
  uint64_t snapshot_every_records = 0;
  // How often definitions stored by the other orchestrators are caught up
  // with (and snapshots looked at).
  absl::Duration poll_every = absl::Seconds(1);
  // Readiness: called once, on the coordinator's thread, when the first
  // lease round's shards are adopted, or after `ready_within` at the latest
  // (PostgreSQL unreachable: the engine serves no shard meanwhile).
  std::function<void()> on_ready;
  absl::Duration ready_within = absl::Seconds(20);
  // orchestrator_shards_owned and orchestrator_shard_handovers_total;
  // optional, must outlive the coordinator.
  prometheus::Registry* metrics = nullptr;
  // Where each round's membership goes (not owned; must outlive the
  // coordinator; its self id must be leases.orchestrator_id). Null: the
  // coordinator keeps its own.
  LeaseShardDirectory* directory = nullptr;
};

// Drives several orchestrators' sharing of one PostgreSQL database in one
// orchestrator process (issue 21; docs/architecture.md "Shards and
// leases"): owns the ShardLeaseManager and moves shards in and out of the
// WorkflowEngine through the PostgresShardStore, as that store's header
// describes.
//
// The lease manager's callbacks only queue; the coordinator's own thread
// does the I/O, one event at a time in the order the manager reported them:
//  - acquired(shard, token): store.LoadShard (definitions caught up first,
//    then the shard's snapshot and records) -> engine.AdoptShard. A shard
//    that does not load or replay is given back (another try next round).
//  - releasing(shard) (hand-over to a new member): engine.ReleaseShard
//    (returns once the shard's records are durable) -> store.ForgetShard ->
//    manager.Release, so the next owner reads everything.
//  - lost(shard): engine.ReleaseShard (stop and drop; a write that raced it
//    is refused by fencing) -> store.ForgetShard.
//  - every round: the directory (who owns which shard, who is live) and,
//    with leases.backlog, the engine's queue gauges (the others' backlog
//    the round read moves desired workers).
// Between events, every poll_every: definitions other orchestrators stored
// are applied to the engine (CatchUpDefinitions), and shards with more than
// snapshot_every_records records since their last snapshot are snapshotted
// (engine.SnapshotShard under its lock, WriteShardSnapshot off it).
//
// Owns: the lease manager and which shards are adopted. Must not touch:
// the engine's state (only its shard calls) or the store's writes.
class ShardCoordinator {
 public:
  // Starts the lease manager (connecting, migrating) and the thread. The
  // engine must have recovered with no shard owned (Options::owned_shards
  // empty) over `store`; both must outlive the coordinator.
  static absl::StatusOr<std::unique_ptr<ShardCoordinator>> Start(ShardCoordinatorOptions options,
                                                                 WorkflowEngine* engine,
                                                                 PostgresShardStore* store);
  // Stop().
  ~ShardCoordinator();
  ShardCoordinator(const ShardCoordinator&) = delete;
  ShardCoordinator& operator=(const ShardCoordinator&) = delete;

  // Leaves: stops the thread, releases every adopted shard from the engine
  // (its records durable), then stops the lease manager, which gives every
  // lease back and removes this member, so the others take the shards at
  // once rather than after the ttl. Call once the services stopped taking
  // calls. Idempotent.
  void Stop();

  // Who owns which shard, as the last lease round read it.
  ShardDirectory* directory() { return directory_; }
  // Shards adopted now (the coordinator's view; for tests and logs).
  std::vector<uint32_t> adopted() const;

 private:
  struct Event {
    enum Kind { kAcquired, kReleasing, kLost, kObserved } kind;
    uint32_t shard = 0;
    int64_t token = 0;
    std::optional<ShardMembership> membership;
  };

  ShardCoordinator(ShardCoordinatorOptions options, WorkflowEngine* engine,
                   PostgresShardStore* store);
  void Push(Event event);
  void Run();
  void Handle(Event& event);
  void Adopt(uint32_t shard, int64_t token);
  // Drops `shard` from the engine and the store; `durable`: a hand-over
  // (the records must be durable before the lease is given back).
  void Drop(uint32_t shard, bool handover);
  void CatchUpDefinitions();
  void SnapshotDue();
  void Ready();
  void UpdateGauge();

  const ShardCoordinatorOptions options_;
  WorkflowEngine* const engine_;
  PostgresShardStore* const store_;
  std::unique_ptr<LeaseShardDirectory> own_directory_;  // when options.directory is null
  LeaseShardDirectory* directory_;
  std::unique_ptr<ShardLeaseManager> manager_;
  prometheus::Gauge* owned_gauge_ = nullptr;
  prometheus::Counter* adopted_counter_ = nullptr;
  prometheus::Counter* released_counter_ = nullptr;
  prometheus::Counter* lost_counter_ = nullptr;

  mutable absl::Mutex mutex_;
  absl::CondVar wake_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Written by the coordinator's thread only (read by adopted()).
  std::map<uint32_t, uint64_t> adopted_ ABSL_GUARDED_BY(mutex_);  // shard -> last snapshot
  bool ready_ = false;                                            // the coordinator's thread's
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SHARD_COORDINATOR_H_
