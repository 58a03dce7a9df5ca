#ifndef GYRE_SERVICES_ORCHESTRATOR_POSTGRES_PROJECTOR_H_
#define GYRE_SERVICES_ORCHESTRATOR_POSTGRES_PROJECTOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <pqxx/connection>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/orchestrator/postgres_state_store.h"

namespace prometheus {
class Gauge;
class Registry;
}  // namespace prometheus

namespace gyre::orchestrator {

struct PostgresProjectorOptions {
  // The database of the PostgreSQL state store (schema version 2 or later).
  PostgresStoreOptions store;
  // How long the thread sleeps when it has caught up with the stream.
  absl::Duration poll_interval = absl::Milliseconds(250);
  // Records per batch (one transaction); bounds the memory of a batch.
  int max_batch_records = 2000;
  // When set: gyre_projection_lag_records and gyre_projection_position.
  prometheus::Registry* metrics = nullptr;
  // Sharded mode (postgres_sharding): the shards this orchestrator owns
  // now, asked once per ProjectBatch. Set, the projector reads
  // `shard_records`/`shard_snapshots`: one stream per shard it returns plus
  // the workflow definitions (shard -1), each with its own cursor row
  // ("shard:17", "shard:-1"). Unset: the single-writer stream
  // (`state_records`/`snapshots`, cursor "relational").
  std::function<std::vector<uint32_t>()> held_shards;
};

// How far the projection is. Sharded, position and stream_position are
// sums over the streams the last ProjectBatch looked at (their difference is
// still the lag).
struct ProjectionProgress {
  uint64_t position = 0;           // the last record projected (the stored cursor)
  uint64_t stream_position = 0;    // the last record in the stream when last looked
  uint64_t records_projected = 0;  // by this projector since it started
  absl::Status last_error;         // of the last batch; OK once one succeeds again
};

// Keeps the relational tables of migration 2 (executions, tasks,
// dependencies, task_runs, events, workflow_definitions, pause_checkpoints,
// resource_observations) in step with the record stream, which stays the
// source of truth. Its own thread and connection, off the engine's path: it
// reads `state_records` after the cursor stored in `projection_cursor`,
// decodes the records and writes what they say in one transaction per
// batch, the cursor advanced in that same transaction, so each record is
// projected exactly once across restarts (the cursor row is locked FOR
// UPDATE: two projectors on one database take turns). Sharded (Options::
// held_shards), each shard's records are a stream of their own with its own
// cursor, projected by the shard's owner; its cursor row is locked FOR
// UPDATE SKIP LOCKED, so two projectors never project one stream at once and
// never wait for each other (a shard that moved is continued from its
// cursor by its new owner; a former owner projecting it meanwhile is
// harmless: the cursor serialises them). Records a snapshot
// dropped before they were projected are made up for from that snapshot
// (its executions, tasks and attempts; not their events). Execution and
// task states follow the engine's rules (task_state_machine.cc) as far as
// the records tell them (docs/operations.md says where they stop).
class PostgresProjector {
 public:
  explicit PostgresProjector(PostgresProjectorOptions options);
  ~PostgresProjector();  // Stop()
  PostgresProjector(const PostgresProjector&) = delete;
  PostgresProjector& operator=(const PostgresProjector&) = delete;

  // Starts the thread: batches until caught up, then polls.
  void Start();
  // Stops the thread after its current batch.
  void Stop();

  // Projects one batch on the calling thread (the thread's step; tests):
  // the number of records projected, 0 when caught up.
  absl::StatusOr<int> ProjectBatch();

  ProjectionProgress progress() const;

 private:
  // One record stream and its cursor row.
  struct Stream {
    std::string cursor;     // its projection_cursor.name
    std::string records;    // the table of its records
    std::string snapshots;  // the table of its snapshots
    std::string where;      // the SQL condition picking its rows of both
    // Sharded: a stream another projector holds is skipped, not waited for.
    bool skip_locked = false;
  };
  // What one batch of a stream did.
  struct StreamStep {
    int projected = 0;
    int64_t cursor = 0;    // after the batch
    int64_t end = 0;       // the stream's last position when looked
    bool skipped = false;  // another projector held its cursor
  };

  void Loop();
  absl::StatusOr<int> ProjectSingleWriter();
  // One batch of each stream sharded mode projects.
  absl::StatusOr<int> ProjectShards();
  // One batch of `stream`, in one transaction with its cursor's advance.
  absl::StatusOr<StreamStep> ProjectStreamOnce(const Stream& stream);
  // Progress and gauges after a ProjectBatch.
  void Report(uint64_t position, uint64_t stream_position, int projected, bool sharded);
  // Runs `body` (PostgreSQL I/O) turning its exceptions into a Status; a
  // lost connection is dropped, to be made again next time.
  template <typename Body>
  absl::Status Guard(const std::string& what, Body&& body);

  const PostgresProjectorOptions options_;
  const std::string where_;      // the DSN without its password
  std::string conninfo_;         // with the password
  absl::Status conninfo_error_;  // an unparsable DSN
  // Used by ProjectBatch alone (the thread's, or a test's while no thread runs).
  std::unique_ptr<pqxx::connection> connection_;
  prometheus::Gauge* lag_gauge_ = nullptr;
  prometheus::Gauge* position_gauge_ = nullptr;
  // Sharded: the cursor rows this projector made sure exist (used by
  // ProjectBatch alone, as connection_).
  absl::flat_hash_set<std::string> cursors_made_;

  mutable absl::Mutex mutex_;
  absl::CondVar wake_;
  ProjectionProgress progress_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_POSTGRES_PROJECTOR_H_
