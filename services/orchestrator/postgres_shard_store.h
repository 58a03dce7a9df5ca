#ifndef GYRE_SERVICES_ORCHESTRATOR_POSTGRES_SHARD_STORE_H_
#define GYRE_SERVICES_ORCHESTRATOR_POSTGRES_SHARD_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator {

struct PostgresShardStoreOptions {
  // The database (password apart, never logged); retry_for bounds how long
  // a lost connection is retried before the store fails. writer_lock_wait
  // is unused: shards replace the single writer lock.
  PostgresStoreOptions store;
  // The orchestrator whose leases fence the writes (ShardLeaseOptions's id).
  std::string orchestrator_id;
  uint32_t shard_count = kDefaultShardCount;
  // The lease ttl: a transaction of this store left open longer than ttl/2
  // (this process stopped mid-commit) is ended by PostgreSQL
  // (idle_in_transaction_session_timeout), so that its lock on a
  // lease cannot hold a take-over off for ever.
  absl::Duration ttl = absl::Seconds(10);
  // postgres_projection on: a shard's snapshot keeps the shard's records
  // its projection cursor ("shard:<n>" in projection_cursor) has not passed
  // (boundedly), as the single-writer store's snapshots do; off, it drops
  // every record it covers.
  bool keep_records_for_projection = false;
};

// The store of one orchestrator among several sharing a database: records
// are kept per virtual shard in `shard_records(shard, position, record)`
// (positions 1, 2, 3... within a shard; shard -1 is the stream of workflow
// definitions every orchestrator reads), snapshots per shard in
// `shard_snapshots` (migration 3).
//
// How the engine is meant to use it (the engine side is not built yet):
//  - Load() at start: replays the definitions stream; no shard is held.
//  - On ShardLeaseManager's `acquired(shard, token)`: LoadShard(shard,
//    token, restore, apply) gives the shard's newest snapshot and its
//    records after it (after catching up with definitions others stored);
//    from then on Append accepts that shard's records, fenced by `token`.
//  - Append(): each record goes to ShardOfRecord's shard (definitions to
//    -1). One writer thread commits whatever is queued in one transaction
//    (group commit) that first checks, for every (shard, token) in the
//    batch, that shard_leases still names this orchestrator with that token
//    and an unexpired lease (one SELECT ... FOR KEY SHARE, so a concurrent
//    take-over waits for the commit or is seen by it). A shard that fails
//    the check fails its appends with FAILED_PRECONDITION naming the shard
//    and the token, writes nothing, and fails every later append to it
//    until it is loaded again; the other shards of the batch are committed
//    in a new transaction.
//  - On `releasing(shard)` or `lost(shard)`: stop appending to the shard,
//    AwaitShardDurable(shard, last_shard_position(shard)) (releasing only),
//    ForgetShard(shard), then ShardLeaseManager::Release(shard).
//  - Snapshots are per shard: read last_shard_position(shard) in the same
//    critical section as the shard's snapshot is taken, then
//    WriteShardSnapshot(shard, position, snapshot) off the engine lock.
//    StateStore::WriteSnapshot (one snapshot of everything) is refused.
//  - last_position()/AwaitDurable() count this process's appends (across
//    its shards; not stored): AwaitDurable(p) fails if any record up to p
//    failed, fenced ones included.
// Definitions are not fenced (no shard owns them): their positions are
// given in the commit under a transaction advisory lock, so the stream has
// no gap and readers see it in order.
//
// Thread-safe.
class PostgresShardStore : public StateStore {
 public:
  static std::unique_ptr<PostgresShardStore> Create(PostgresShardStoreOptions options);
  ~PostgresShardStore() override = default;

  // StateStore: Load replays the definitions stream only (restore is not
  // called: snapshots are per shard); WriteSnapshot is FAILED_PRECONDITION
  // (use WriteShardSnapshot).

  // Takes `shard` on with fencing `token`: catches up with definitions
  // (CatchUpDefinitions), then hands the shard's newest snapshot to
  // `restore` (if any) and its records after it to `apply`, in order.
  // FAILED_PRECONDITION if the shard is held already (ForgetShard first).
  virtual absl::Status LoadShard(uint32_t shard, int64_t token, const RestoreFn& restore,
                                 const ApplyFn& apply) = 0;
  // Definitions appended by other orchestrators since the last catch-up,
  // in order, to `apply` (this store's own are skipped: the engine has them).
  virtual absl::Status CatchUpDefinitions(const ApplyFn& apply) = 0;
  // Stops accepting `shard`'s records (its queued ones are still written).
  virtual void ForgetShard(uint32_t shard) = 0;
  // The shard's last position appended (durable or not); 0 if not held.
  virtual uint64_t last_shard_position(uint32_t shard) = 0;
  // Waits until the shard's records up to `position` are durable, or for
  // the error that keeps them from being so.
  virtual absl::Status AwaitShardDurable(uint32_t shard, uint64_t position) = 0;
  // Stores `snapshot` of `shard` covering its records up to `position`
  // (waits for them to be durable), fenced like an append, then drops the
  // records (but those kept for the projection, Options::
  // keep_records_for_projection) and older snapshots it covers. Does I/O on
  // the calling thread.
  virtual absl::Status WriteShardSnapshot(uint32_t shard, uint64_t position,
                                          const gyre::v1::EngineSnapshot& snapshot) = 0;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_POSTGRES_SHARD_STORE_H_
