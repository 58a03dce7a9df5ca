#ifndef GYRE_SERVICES_ORCHESTRATOR_SHARD_LEASE_MANAGER_H_
#define GYRE_SERVICES_ORCHESTRATOR_SHARD_LEASE_MANAGER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/shard_directory.h"
#include "services/orchestrator/shard_map.h"

namespace gyre::orchestrator {

struct ShardLeaseOptions {
  // The database, as for the state store (password apart, never logged).
  PostgresStoreOptions store;
  // This orchestrator's id (config orchestrator_id, default hostname:pid);
  // members are ranked by it for the fair share.
  std::string orchestrator_id;
  // Where its gRPC API is reached (kept in `orchestrators.address` so that
  // others can name, forward or redirect to the owner of a shard).
  std::string address;
  // Must equal the number of rows of shard_leases (migration 3 seeds 256).
  uint32_t shard_count = kDefaultShardCount;
  // How long a lease and a membership heartbeat last, by PostgreSQL's clock.
  // Renewed every ttl/3. A dead orchestrator's shards are taken over within
  // about ttl + ttl/3.
  absl::Duration ttl = absl::Seconds(10);
  // Where this member's backlog per queue is read from for each heartbeat
  // (`orchestrators.backlog`, migration 4) and the other live members'
  // sums are stored; null: an empty backlog is published and the others'
  // are not read. Not owned; must outlive the manager.
  ClusterBacklog* backlog = nullptr;
};

// A shard this orchestrator holds, and the fencing token every write to it
// must carry (PostgresShardStore checks it in the write's transaction).
struct ShardLease {
  uint32_t shard = 0;
  int64_t token = 0;
  friend bool operator==(const ShardLease&, const ShardLease&) = default;
};

// What one round read of the others: the live members (heartbeat within
// the ttl, ranked by id) and each shard's owner by an unexpired lease, as
// PostgreSQL said in the round's transaction.
struct ShardMembership {
  std::vector<OrchestratorMember> members;
  // Indexed by shard (shard_count entries); "" when no lease is live.
  std::vector<std::string> owners;
};

// What the manager tells its owner (the engine). Called on the manager's
// thread, one at a time; each must return quickly (no I/O, no waiting for
// the engine lock's holder to do I/O) and may call Release().
struct ShardLeaseCallbacks {
  // The shard is ours with `token`: load it (PostgresShardStore::LoadShard)
  // and serve its executions.
  std::function<void(uint32_t shard, int64_t token)> acquired;
  // Hand-over: another member's fair share needs this shard. Stop writing
  // to it, let its appends become durable, drop it, then call Release(shard).
  // Until then the lease is still renewed (the shard stays ours).
  std::function<void(uint32_t shard)> releasing;
  // The lease is gone (a renewal found it expired or taken), or is about to
  // lapse by this process's conservative reckoning (no renewal succeeded in
  // time: PostgreSQL unreachable, this process stalled): stop writing to the
  // shard and drop it. Reported before PostgreSQL's expiry when the manager's
  // thread runs; a write that races it is refused by fencing anyway.
  std::function<void(uint32_t shard)> lost;
  // After every successful round (after the calls above): who is live and
  // who owns what (ShardDirectory). Optional.
  std::function<void(ShardMembership membership)> observed;
};

// Holds time-bound leases on the virtual shards in PostgreSQL (tables
// `orchestrators` and `shard_leases`, migration 3), with no leader and no
// consensus protocol of its own: PostgreSQL's row locks and clock decide.
//
// Its thread, every ttl/3, in one transaction: heartbeats `orchestrators`
// with its backlog per queue (options.backlog); renews its leases
// (expires_at = now() + ttl where owner and token are still its own);
// releases the shards handed over; computes its fair share
// from the live members (heartbeat within ttl; ranked by id, the first
// shard_count % L members get ceil(shard_count / L), the others the floor,
// so the shares sum to shard_count); acquires free or expired shards up to
// that share (UPDATE ... token = token + 1 WHERE shard IN (SELECT ... FOR
// UPDATE SKIP LOCKED LIMIT k)). Holding more than its share, it asks for
// the extra ones back through `releasing`. The read of the live members also
// reads their published backlogs: their sums go to options.backlog (a member
// that published none, one older than migration 4, counts zero). When no
// round succeeds for as long as a lease's local deadline, those sums are
// dropped (this member is cut off: it cannot tell who is still live).
//
// Every renewal's local deadline is counted from before the transaction
// began, minus a margin (ttl/5), on the steady clock: PostgreSQL's expiry is
// later. When that deadline passes with no renewal (a lost connection, a
// stall), the lease is reported lost and leaves owned(). A lost connection is
// retried with backoff and jitter (50 ms doubling to ttl/3) for ever.
//
// Thread-safe. The callbacks run on the manager's thread.
class ShardLeaseManager {
 public:
  // Connects, applies pending migrations (as the state store does), checks
  // that shard_leases has options.shard_count rows, and starts the thread.
  static absl::StatusOr<std::unique_ptr<ShardLeaseManager>> Start(ShardLeaseOptions options,
                                                                  ShardLeaseCallbacks callbacks);
  // Stop().
  ~ShardLeaseManager();
  ShardLeaseManager(const ShardLeaseManager&) = delete;
  ShardLeaseManager& operator=(const ShardLeaseManager&) = delete;

  // Leaves: stops the thread, releases every lease and removes this member,
  // so that the others take the shards at once instead of after the ttl.
  // Call once the engine has stopped writing. Idempotent. No callback runs.
  void Stop();

  // The leases held now (deadline not passed), by shard.
  std::vector<ShardLease> owned() const;

  // Gives `shard` up (after `releasing`, once the engine has dropped it; or
  // at any time). It leaves owned() at once; the database is told on the
  // manager's next round, which this wakes.
  void Release(uint32_t shard);

  // Tests only: a paused manager's thread does nothing (as if the process
  // were stopped) until resumed; owned() still drops what has lapsed.
  void PauseForTesting(bool paused);

 private:
  using Clock = std::chrono::steady_clock;
  struct Held {
    int64_t token = 0;
    Clock::time_point deadline;  // local, conservative
    bool releasing = false;      // `releasing` was called
  };

  ShardLeaseManager(ShardLeaseOptions options, ShardLeaseCallbacks callbacks, std::string conninfo);
  void Run();
  // Reports (and drops) the leases whose deadline has passed.
  void ReportLapsed();
  // Drops the others' backlog from options.backlog once no round stored
  // it for as long as a lease's local deadline.
  void ForgetStaleBacklog();
  // One round with PostgreSQL; UNAVAILABLE when the connection is lost.
  absl::Status Round();
  absl::Status Connect();

  const ShardLeaseOptions options_;
  const ShardLeaseCallbacks callbacks_;
  const std::string conninfo_;
  const std::string where_;
  const std::vector<std::string> secrets_;
  std::unique_ptr<pqxx::connection> connection_;  // the manager's thread's

  mutable absl::Mutex mutex_;
  absl::CondVar wake_;
  absl::flat_hash_map<uint32_t, Held> held_ ABSL_GUARDED_BY(mutex_);
  // Release() asked for these (token to release with); done next round.
  absl::flat_hash_map<uint32_t, int64_t> to_release_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool paused_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopped_ = false;  // Stop() has run
  // The manager's thread's: until when the others' backlog stored in
  // options.backlog stands without a new round (as a lease's deadline).
  std::optional<Clock::time_point> others_deadline_;
  std::thread thread_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SHARD_LEASE_MANAGER_H_
