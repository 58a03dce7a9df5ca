#include "services/orchestrator/postgres_state_store.h"

#include <algorithm>
#include <deque>
#include <exception>
#include <functional>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/postgres_connection.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// One step of the schema. Versions are applied in order, each once, and
// recorded in schema_migrations; a released migration is never edited (a
// change is a new version), so a database at any earlier version upgrades.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "state records and snapshots", R"sql(
CREATE TABLE state_records (
  position bigint PRIMARY KEY,  -- 1, 2, 3... in append order
  record   bytea  NOT NULL      -- a serialized gyre.v1.StateRecord
);
CREATE TABLE snapshots (
  position bigint PRIMARY KEY,  -- the last record the snapshot covers
  snapshot bytea  NOT NULL      -- a serialized gyre.v1.EngineSnapshot
);
)sql"},
    // The relational view of the state (issue 21). The record stream above
    // stays the source of truth; these tables are filled from it by the
    // projection (postgres_projector.h), for SQL users, dashboards and
    // retention. Names are the API's ids ({workflow}, {execution}, task id).
    {2, "relational tables: definitions, executions, tasks, runs, events, decisions, audit",
     R"sql(
-- Every version of every workflow definition; the definition is the
-- gyre.v1.WorkflowDefinition in its canonical proto JSON.
CREATE TABLE workflow_definitions (
  workflow    text        NOT NULL,
  version     bigint      NOT NULL,
  tenant      text        NOT NULL DEFAULT '',
  definition  jsonb       NOT NULL,
  create_time timestamptz,
  deleted_at  timestamptz,  -- set when the workflow was deleted (DeleteWorkflow)
  PRIMARY KEY (workflow, version)
);

-- One row per execution, with its current state (EXECUTION_* without the
-- prefix) and the context it started with.
CREATE TABLE executions (
  id               text        PRIMARY KEY,
  workflow         text        NOT NULL,
  workflow_version bigint      NOT NULL,
  tenant           text        NOT NULL DEFAULT '',
  state            text        NOT NULL,
  reason           text        NOT NULL DEFAULT '',
  priority         integer     NOT NULL,
  parent           text        NOT NULL DEFAULT '',  -- the parent's id, '' if none
  request_id       text        NOT NULL DEFAULT '',
  task_count       integer     NOT NULL,
  create_time      timestamptz NOT NULL,
  start_time       timestamptz,  -- when its first task was leased
  end_time         timestamptz,  -- when it reached a final state
  context          jsonb       NOT NULL DEFAULT '{}'  -- secret values masked
);
-- Executions by workflow, state and time (ListExecutions filters, dashboards).
CREATE INDEX executions_by_workflow ON executions (workflow, state, create_time DESC);
CREATE INDEX executions_by_state ON executions (state, create_time DESC);
CREATE INDEX executions_by_tenant ON executions (tenant, create_time DESC);
-- Finished executions by end time: what retention deletes first.
CREATE INDEX executions_by_end ON executions (end_time) WHERE end_time IS NOT NULL;
CREATE INDEX executions_by_parent ON executions (parent) WHERE parent <> '';

-- One row per task of an execution: its current state (TASK_* without the
-- prefix), queue and priority.
CREATE TABLE tasks (
  execution_id text        NOT NULL,
  task_id      text        NOT NULL,
  queue        text        NOT NULL,
  priority     integer     NOT NULL,
  state        text        NOT NULL,
  attempts     bigint      NOT NULL DEFAULT 0,  -- the last attempt number given
  retries_used integer     NOT NULL DEFAULT 0,
  max_retries  integer     NOT NULL DEFAULT 0,
  identity     text        NOT NULL DEFAULT '',  -- set for global tasks
  ready_time   timestamptz,
  PRIMARY KEY (execution_id, task_id)
);
-- Ready tasks by queue, highest priority and oldest first (the dispatch order).
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, ready_time) WHERE state = 'READY';

-- The graph's edges: task_id waits for depends_on.
CREATE TABLE dependencies (
  execution_id text NOT NULL,
  task_id      text NOT NULL,
  depends_on   text NOT NULL,
  PRIMARY KEY (execution_id, task_id, depends_on)
);
CREATE INDEX dependencies_by_upstream ON dependencies (execution_id, depends_on);

-- One row per attempt of a task: who ran it, when, how it ended and what it
-- used (cpu_seconds: user + system; peak_memory_bytes: peak RSS).
CREATE TABLE task_runs (
  execution_id      text        NOT NULL,
  task_id           text        NOT NULL,
  attempt           bigint      NOT NULL,
  agent_id          text        NOT NULL DEFAULT '',
  state             text        NOT NULL,  -- LEASED, RUNNING or the ATTEMPT_* outcome
  identity          text        NOT NULL DEFAULT '',  -- the task's content hash
  leased_at         timestamptz,
  started_at        timestamptz,
  ended_at          timestamptz,
  exit_code         integer,
  signal            integer,
  wall_seconds      double precision,
  cpu_seconds       double precision,
  peak_memory_bytes bigint,
  error             text        NOT NULL DEFAULT '',
  PRIMARY KEY (execution_id, task_id, attempt)
);
-- Runs by task identity and start time (what a task usually costs).
CREATE INDEX task_runs_by_identity ON task_runs (identity, started_at DESC) WHERE identity <> '';
CREATE INDEX task_runs_by_task ON task_runs (task_id, started_at DESC);
CREATE INDEX task_runs_by_agent ON task_runs (agent_id, leased_at DESC);

-- The event log: append-only, sequence 1, 2, 3... per execution.
CREATE TABLE events (
  execution_id text        NOT NULL,
  sequence     bigint      NOT NULL,
  kind         text        NOT NULL,  -- the StateRecord kind, e.g. task_result
  time         timestamptz NOT NULL,
  event        jsonb       NOT NULL,  -- the record in proto JSON
  PRIMARY KEY (execution_id, sequence)
);
-- Events are never changed (retention may delete whole executions' events).
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'events are append-only (execution %, sequence %)', OLD.execution_id, OLD.sequence;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
  FOR EACH ROW EXECUTE FUNCTION events_append_only();

-- What a paused execution looked like when it was paused: the checkpoint a
-- resume continues from (tasks: their states at the pause).
CREATE TABLE pause_checkpoints (
  execution_id text        NOT NULL,
  paused_at    timestamptz NOT NULL,
  resumed_at   timestamptz,
  reason       text        NOT NULL DEFAULT '',
  tasks        jsonb       NOT NULL DEFAULT '{}',
  PRIMARY KEY (execution_id, paused_at)
);

-- What a task attempt was measured to use (agents' reports, the cost meter).
CREATE TABLE resource_observations (
  id                bigserial   PRIMARY KEY,
  execution_id      text        NOT NULL,
  task_id           text        NOT NULL,
  attempt           bigint      NOT NULL DEFAULT 0,
  identity          text        NOT NULL DEFAULT '',
  observed_at       timestamptz NOT NULL,
  cpu_seconds       double precision,
  peak_memory_bytes bigint,
  wall_seconds      double precision,
  source            text        NOT NULL DEFAULT ''  -- e.g. "cgroup memory.peak"
);
CREATE INDEX resource_observations_by_identity ON resource_observations (identity, observed_at DESC);
CREATE INDEX resource_observations_by_task ON resource_observations (execution_id, task_id);

-- What the predictor said a task would use, to compare with the observations.
CREATE TABLE resource_predictions (
  id            bigserial   PRIMARY KEY,
  execution_id  text        NOT NULL,
  task_id       text        NOT NULL,
  identity      text        NOT NULL DEFAULT '',
  predicted_at  timestamptz NOT NULL,
  model_version text        NOT NULL DEFAULT '',
  cpu_seconds   double precision,
  memory_bytes  bigint,
  wall_seconds  double precision,
  confidence    double precision
);
CREATE INDEX resource_predictions_by_task ON resource_predictions (execution_id, task_id);
CREATE INDEX resource_predictions_by_identity ON resource_predictions (identity, predicted_at DESC);

-- Decisions of the scheduler, optimizer and predictor services: what they
-- were asked, what they answered, how sure, how fast and by which model.
CREATE TABLE orchestration_decisions (
  id            bigserial        PRIMARY KEY,
  service       text             NOT NULL,  -- scheduler, optimizer, predictor...
  decided_at    timestamptz      NOT NULL,
  execution_id  text             NOT NULL DEFAULT '',
  input         jsonb            NOT NULL,
  output        jsonb            NOT NULL,
  confidence    double precision,
  latency_ms    double precision NOT NULL,
  model_version text             NOT NULL DEFAULT ''
);
CREATE INDEX orchestration_decisions_by_service ON orchestration_decisions (service, decided_at DESC);
CREATE INDEX orchestration_decisions_by_execution ON orchestration_decisions (execution_id)
  WHERE execution_id <> '';

-- Who did what to which resource, and whether it was allowed.
CREATE TABLE audit_log (
  id       bigserial   PRIMARY KEY,
  at       timestamptz NOT NULL DEFAULT now(),
  actor    text        NOT NULL,  -- the principal (never a credential)
  tenant   text        NOT NULL DEFAULT '',
  action   text        NOT NULL,  -- e.g. the RPC, "StartExecution"
  resource text        NOT NULL DEFAULT '',
  outcome  text        NOT NULL,  -- "ok" or the status code
  details  jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_time ON audit_log (at);
CREATE INDEX audit_log_by_resource ON audit_log (resource, at DESC);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at DESC);

-- How far a projection has read the record stream: the last position it
-- applied, advanced in the same transaction as the rows it wrote.
CREATE TABLE projection_cursor (
  name       text        PRIMARY KEY,  -- "relational" for the tables above
  position   bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- From the start: snapshots keep the records it has not read yet.
INSERT INTO projection_cursor (name, position) VALUES ('relational', 0);
)sql"},
    {3, "orchestrators, shard leases, per-shard records and snapshots", R"sql(
CREATE TABLE orchestrators (
  id           text PRIMARY KEY,  -- config orchestrator_id (default hostname:pid)
  address      text NOT NULL,     -- where its gRPC API is reached
  heartbeat_at timestamptz NOT NULL
);
CREATE TABLE shard_leases (
  shard      integer PRIMARY KEY,  -- 0..255 (shard_map.h, kDefaultShardCount)
  owner      text,                 -- an orchestrators.id; NULL: free
  token      bigint NOT NULL,      -- the fencing token, +1 at every acquisition
  expires_at timestamptz           -- by PostgreSQL's clock; NULL: free
);
INSERT INTO shard_leases (shard, token) SELECT s, 0 FROM generate_series(0, 255) AS s;
CREATE TABLE shard_records (
  shard    integer NOT NULL,  -- -1: the workflow definitions every owner reads
  position bigint  NOT NULL,  -- 1, 2, 3... within the shard, in append order
  record   bytea   NOT NULL,  -- a serialized gyre.v1.StateRecord
  PRIMARY KEY (shard, position)
);
CREATE TABLE shard_snapshots (
  shard    integer NOT NULL,
  position bigint  NOT NULL,  -- the shard's last record the snapshot covers
  snapshot bytea   NOT NULL,  -- a serialized gyre.v1.EngineSnapshot of that shard
  PRIMARY KEY (shard, position)
);
)sql"},
    // Desired workers with several orchestrators: each publishes its backlog
    // with its heartbeat and adds the other live members' (issue 21).
    {4, "orchestrators publish their backlog per queue", R"sql(
-- {"<queue>": {"queued": n, "running": m}, ...}, queues with no backlog
-- left out; written with every heartbeat. NULL: a member older than this
-- migration, whose backlog counts zero.
ALTER TABLE orchestrators ADD COLUMN backlog jsonb;
)sql"},
};

// Advisory lock keys ("gyre" in ASCII, then the purpose).
constexpr int64_t kMigrationLock = 0x67797265'00000001;
constexpr int64_t kWriterLock = 0x67797265'00000002;

// How much one group commit takes from the queue: at least one Append,
// then more while under both bounds.
constexpr size_t kMaxBatchRecords = 4096;
constexpr size_t kMaxBatchBytes = 16 << 20;
// Rows per INSERT statement (PostgreSQL allows 65535 parameters).
constexpr size_t kRowsPerStatement = 1000;
// Commits of up to this many records, the latency-bound ones (a single
// task's are 1-2 records), use a statement prepared once per connection and
// row count: the server then skips parsing and planning the INSERT at every
// commit (0.09-0.17 ms of each in the server's statement log, 2026-12-04).
// Bounded so a connection holds at most this many prepared statements.
constexpr size_t kMaxPreparedRows = 16;
// Records read per query while loading (bounds the memory of a replay).
constexpr int kLoadPageRows = 1000;
// Records a snapshot keeps for a projection behind it, at most; one further
// behind catches up from the snapshot instead (without those events).
constexpr int64_t kProjectionBacklog = 1'000'000;

using postgres::ConnectionString;
using postgres::Guard;
using postgres::Secrets;

// The schema's version and the migrations still to apply; `tx` sees a
// database whose schema_migrations may not exist yet.
template <typename Transaction>
absl::StatusOr<PostgresSchemaStatus> ReadSchemaStatus(Transaction& tx) {
  PostgresSchemaStatus status;
  status.newest_version = kMigrations[std::size(kMigrations) - 1].version;
  if (!tx.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL")[0].template as<bool>()) {
    status.current_version = 0;
  } else {
    status.current_version =
        tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].template as<int>();
    for (const pqxx::row& row :
         tx.exec("SELECT version, description, to_char(applied_at AT TIME ZONE 'UTC', "
                 "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY version")) {
      status.applied.push_back(absl::StrCat(row[0].template as<int>(), ": ",
                                            row[1].template as<std::string>(), " (applied ",
                                            row[2].template as<std::string>(), ")"));
    }
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version > status.current_version) {
      status.pending.push_back(absl::StrCat(migration.version, ": ", migration.description));
    }
  }
  return status;
}

// Applies the migrations `connection`'s database lacks, in one transaction
// under pg_advisory_xact_lock: a second orchestrator starting now waits
// here, then finds them done.
// `up_to` (> 0) stops at that version (tests of a later migration start
// from the one before it).
absl::Status ApplyMigrations(pqxx::connection& connection, const std::string& where,
                             int up_to = 0) {
  pqxx::work tx(connection);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
  tx.exec0(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      "  version integer PRIMARY KEY,"
      "  description text NOT NULL,"
      "  applied_at timestamptz NOT NULL DEFAULT now())");
  absl::StatusOr<PostgresSchemaStatus> status = ReadSchemaStatus(tx);
  if (!status.ok()) return status.status();
  if (status->current_version > status->newest_version) {
    return absl::FailedPreconditionError(
        absl::StrCat("the database's schema is at version ", status->current_version,
                     ", newer than this Gyre knows (", status->newest_version, "): upgrade Gyre"));
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version <= status->current_version) continue;
    if (up_to > 0 && migration.version > up_to) break;
    tx.exec0(migration.sql);
    tx.exec_params0("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                    migration.version, std::string(migration.description));
    logging::Info("schema migrated", {{"store", "postgres"},
                                      {"database", where},
                                      {"version", migration.version},
                                      {"description", migration.description}});
  }
  tx.commit();
  return absl::OkStatus();
}

class PostgresStateStore : public StateStore {
 public:
  explicit PostgresStateStore(PostgresStoreOptions options)
      : options_(std::move(options)),
        where_(DescribeDsn(options_.dsn)),
        secrets_(Secrets(options_)) {}

  ~PostgresStateStore() override {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
      work_.Signal();
    }
    // The writer commits what is queued before it returns.
    if (writer_.joinable()) writer_.join();
  }

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override {
    if (loaded_) return absl::FailedPreconditionError("postgres state store: Load called twice");
    absl::StatusOr<std::string> conninfo = ConnectionString(options_);
    if (!conninfo.ok()) return conninfo.status();
    conninfo_ = *std::move(conninfo);
    absl::Status status = Guard("connect", where_, secrets_, [&] {
      writer_conn_ = std::make_unique<pqxx::connection>(conninfo_);
      absl::MutexLock lock(&snapshot_mutex_);
      snapshot_conn_ = std::make_unique<pqxx::connection>(conninfo_);
      return absl::OkStatus();
    });
    if (status.ok())
      status = Guard("migrate the schema", where_, secrets_, [&] { return Migrate(); });
    if (status.ok()) {
      status = Guard("take the writer lock", where_, secrets_, [&] { return TakeWriterLock(); });
    }
    uint64_t last = 0;
    if (status.ok()) {
      status = Guard("load", where_, secrets_, [&] { return Replay(restore, apply, &last); });
    }
    if (!status.ok()) {
      writer_conn_.reset();
      absl::MutexLock lock(&snapshot_mutex_);
      snapshot_conn_.reset();
      return status;
    }
    {
      absl::MutexLock lock(&mutex_);
      last_position_ = last;
      durable_position_ = last;
    }
    loaded_ = true;
    writer_ = std::thread([this] { WriterLoop(); });
    logging::Info("state recovered",
                  {{"store", "postgres"},
                   {"database", where_},
                   {"last_position", last},
                   {"schema_version", kMigrations[std::size(kMigrations) - 1].version}});
    return absl::OkStatus();
  }

  void Append(absl::Span<const v1::StateRecord> records, Completion done) override {
    if (!loaded_) {
      done(absl::FailedPreconditionError("postgres state store appended to before Load"));
      return;
    }
    if (records.empty()) {
      done(absl::OkStatus());
      return;
    }
    Pending pending;
    pending.records.reserve(records.size());
    for (const v1::StateRecord& record : records) {
      pending.bytes += record.ByteSizeLong();
      pending.records.push_back(record.SerializeAsString());
    }
    pending.done = std::move(done);
    absl::MutexLock lock(&mutex_);
    pending.first_position = last_position_ + 1;
    last_position_ += records.size();
    queue_.push_back(std::move(pending));
    if (holds_ == 0) work_.Signal();
  }

  void HoldCommits() override {
    absl::MutexLock lock(&mutex_);
    ++holds_;
  }

  void ReleaseCommits() override {
    absl::MutexLock lock(&mutex_);
    if (--holds_ == 0 && !queue_.empty()) work_.Signal();
  }

  uint64_t last_position() override {
    absl::MutexLock lock(&mutex_);
    return last_position_;
  }

  absl::Status AwaitDurable(uint64_t position) override {
    if (position == 0) return absl::OkStatus();
    absl::MutexLock lock(&mutex_);
    if (position > last_position_) {
      return absl::FailedPreconditionError(absl::StrCat("postgres state store: position ", position,
                                                        " awaited but the last record appended is ",
                                                        last_position_));
    }
    while (durable_position_ < position && failure_.ok()) durable_changed_.Wait(&mutex_);
    if (durable_position_ >= position) return absl::OkStatus();
    return failure_;
  }

  absl::Status WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) override {
    if (!loaded_) {
      return absl::FailedPreconditionError("postgres state store: snapshot before Load");
    }
    if (absl::Status status = AwaitDurable(position); !status.ok()) return status;
    const std::string bytes = snapshot.SerializeAsString();
    absl::MutexLock lock(&snapshot_mutex_);
    absl::Status status;
    // A connection lost since the last snapshot (a server restart) is only
    // found out by using it: then once more on a new one.
    for (int attempt = 0; attempt < 2; ++attempt) {
      status = Guard("write the snapshot", where_, secrets_, [&] {
        if (snapshot_conn_ == nullptr) {
          snapshot_conn_ = std::make_unique<pqxx::connection>(conninfo_);
        }
        // snapshot_mutex_ is held (above); the analysis cannot see into
        // this lambda.
        pqxx::connection* connection = snapshot_conn_.get();
        pqxx::work tx(*connection);
        const pqxx::binarystring blob(bytes.data(), bytes.size());
        const int64_t at = static_cast<int64_t>(position);
        tx.exec_params(
            "INSERT INTO snapshots (position, snapshot) VALUES ($1, $2) "
            "ON CONFLICT (position) DO UPDATE SET snapshot = EXCLUDED.snapshot",
            at, blob);
        // The new snapshot covers these: what Load would never read again.
        tx.exec_params("DELETE FROM snapshots WHERE position < $1", at);
        // Except records the projection (postgres_projector.h) has not
        // read yet, up to kProjectionBacklog of them, so that its events
        // have no gap; Load reads only the records after the snapshot.
        tx.exec_params(
            "DELETE FROM state_records WHERE position <= greatest($1::bigint - $2, least($1, "
            "coalesce((SELECT position FROM projection_cursor WHERE name = 'relational'), $1)))",
            at, kProjectionBacklog);
        tx.commit();
        return absl::OkStatus();
      });
      if (status.ok()) break;
      snapshot_conn_.reset();
      if (status.code() != absl::StatusCode::kUnavailable) break;
    }
    return status;
  }

  absl::Status Availability() override {
    absl::MutexLock lock(&mutex_);
    if (!failure_.ok()) {
      return absl::UnavailableError(
          absl::StrCat("state store failed: ", failure_.message(), "; the orchestrator restarts"));
    }
    if (!reconnecting_) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(
        "state store unavailable: reconnecting to ", where_, " since ",
        absl::FormatDuration(absl::Trunc(absl::Now() - unavailable_since_, absl::Seconds(1))), " (",
        last_error_, ")"));
  }

  void SetAvailabilityObserver(std::function<void(bool available)> observer) override {
    observer_ = std::move(observer);
  }

 private:
  // One Append waiting for the writer.
  struct Pending {
    uint64_t first_position = 0;
    size_t bytes = 0;
    std::vector<std::string> records;
    Completion done;
  };

  absl::Status Migrate() { return ApplyMigrations(*writer_conn_, where_); }

  // One writer per database until shards split the work (issue 21): a
  // second orchestrator on the same database would interleave positions.
  // A session lock: released when this store's connection closes, also
  // when the process is killed. Waits a little for a predecessor that is
  // still disconnecting.
  absl::Status TakeWriterLock() {
    const int64_t wait_ms =
        std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.writer_lock_wait));
    pqxx::nontransaction tx(*writer_conn_);
    tx.exec0(absl::StrCat("SET lock_timeout = ", wait_ms));
    try {
      tx.exec_params("SELECT pg_advisory_lock($1)", kWriterLock);
    } catch (const pqxx::sql_error&) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another orchestrator is writing to this database (its writer lock is still held after ",
          absl::FormatDuration(options_.writer_lock_wait),
          "); run one orchestrator per database until shared shards exist"));
    }
    tx.exec0("RESET lock_timeout");
    return absl::OkStatus();
  }

  absl::Status Replay(const RestoreFn& restore, const ApplyFn& apply, uint64_t* last) {
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        *writer_conn_);
    int64_t position = 0;
    const pqxx::result snapshot =
        tx.exec("SELECT position, snapshot FROM snapshots ORDER BY position DESC LIMIT 1");
    if (!snapshot.empty()) {
      position = snapshot[0][0].as<int64_t>();
      const pqxx::binarystring bytes(snapshot[0][1]);
      v1::EngineSnapshot state;
      if (!state.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(absl::StrCat("undecodable snapshot at position ", position));
      }
      if (absl::Status status = restore(std::move(state)); !status.ok()) return status;
    }
    for (;;) {
      const pqxx::result page = tx.exec_params(
          "SELECT position, record FROM state_records WHERE position > $1 "
          "ORDER BY position LIMIT $2",
          position, kLoadPageRows);
      for (const pqxx::row& row : page) {
        const int64_t at = row[0].as<int64_t>();
        if (at != position + 1) {
          return absl::DataLossError(
              absl::StrCat("record ", position + 1, " is missing (the next one is ", at, ")"));
        }
        const pqxx::binarystring bytes(row[1]);
        v1::StateRecord record;
        if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::DataLossError(absl::StrCat("undecodable record ", at));
        }
        if (absl::Status status = apply(record); !status.ok()) {
          return absl::Status(status.code(), absl::StrCat("record ", at, ": ", status.message()));
        }
        position = at;
      }
      if (page.size() < static_cast<size_t>(kLoadPageRows)) break;
    }
    tx.commit();
    *last = static_cast<uint64_t>(position);
    return absl::OkStatus();
  }

  // Commits `batch` (consecutive positions) atomically. A batch that fits
  // one INSERT is sent alone, in autocommit: one round trip instead of
  // three (BEGIN, INSERT, COMMIT), which is most of a small commit's time.
  absl::Status Commit(const std::vector<Pending>& batch) {
    return Guard("append", where_, secrets_, [&] {
      std::vector<pqxx::binarystring> rows;
      for (const Pending& pending : batch) {
        for (const std::string& record : pending.records) {
          rows.emplace_back(record.data(), record.size());
        }
      }
      const int64_t first = static_cast<int64_t>(batch.front().first_position);
      if (rows.size() <= kMaxPreparedRows) {
        const std::string name = absl::StrCat("gyre_append_", rows.size());
        // pqxx prepares it on the server at its first use.
        if (prepared_rows_.insert(rows.size()).second) {
          writer_conn_->prepare(name, InsertStatement(rows.size()));
        }
        pqxx::nontransaction tx(*writer_conn_);
        tx.exec_prepared0(name, first, pqxx::prepare::make_dynamic_params(rows));
        return absl::OkStatus();
      }
      if (rows.size() <= kRowsPerStatement) {
        pqxx::nontransaction tx(*writer_conn_);
        tx.exec_params0(InsertStatement(rows.size()), first,
                        pqxx::prepare::make_dynamic_params(rows));
        return absl::OkStatus();
      }
      pqxx::work tx(*writer_conn_);
      for (size_t at = 0; at < rows.size(); at += kRowsPerStatement) {
        const size_t count = std::min(kRowsPerStatement, rows.size() - at);
        tx.exec_params0(
            InsertStatement(count), first + static_cast<int64_t>(at),
            pqxx::prepare::make_dynamic_params(rows.begin() + at, rows.begin() + at + count));
      }
      tx.commit();
      return absl::OkStatus();
    });
  }

  // "INSERT ... VALUES ($1 + 0, $2), ($1 + 1, $3), ...": `rows` records at
  // consecutive positions from $1.
  static std::string InsertStatement(size_t rows) {
    std::string sql = "INSERT INTO state_records (position, record) VALUES ";
    for (size_t i = 0; i < rows; ++i) {
      absl::StrAppend(&sql, i == 0 ? "" : ", ", "($1::bigint + ", i, ", $", i + 2, ")");
    }
    return sql;
  }

  // Commits `batch`, riding out a lost connection (a restarted server, a
  // failover to another host of a multi-host DSN): reconnects with
  // exponential backoff and jitter for up to options_.retry_for, meanwhile
  // the batch and everything after it waits (nothing is acknowledged, so
  // nothing is lost). Whether a commit cut off mid-way happened is read back
  // from the database after reconnecting (positions are unique keys).
  absl::Status CommitRetrying(const std::vector<Pending>& batch) {
    absl::Status status = Commit(batch);
    if (status.ok() || status.code() != absl::StatusCode::kUnavailable) return status;
    const uint64_t before = batch.front().first_position - 1;
    const uint64_t after = batch.back().first_position + batch.back().records.size() - 1;
    const absl::Time give_up = absl::Now() + options_.retry_for;
    absl::Duration backoff = absl::Milliseconds(50);
    absl::BitGen random;
    SetReconnecting(true, status);
    for (int attempt = 1;; ++attempt) {
      logging::Warn("state store connection lost; retrying",
                    {{"store", "postgres"},
                     {"database", where_},
                     {"attempt", attempt},
                     {"error", std::string(status.message())}});
      const absl::Duration wait =
          absl::Milliseconds(absl::Uniform(random, 0.5, 1.0) * absl::ToDoubleMilliseconds(backoff));
      backoff = std::min(backoff * 2, absl::Seconds(5));
      {
        absl::MutexLock lock(&mutex_);
        last_error_ = std::string(status.message());
        if (absl::Now() + wait > give_up || stopping_) return status;
        // Interruptible: a store being destroyed stops retrying at once.
        work_.WaitWithTimeout(&mutex_, wait);
        if (stopping_) return status;
      }
      uint64_t stored = 0;
      status = Guard("reconnect", where_, secrets_, [&] { return Reconnect(&stored); });
      if (status.ok()) {
        if (stored == after) break;  // the cut-off commit had happened
        if (stored != before) {
          return absl::DataLossError(absl::StrCat(
              "postgres state store (", where_, "): after reconnecting the database holds records ",
              "up to ", stored, ", but this orchestrator had ", before, " durable and ", after,
              " sent: another writer moved it on; stopping"));
        }
        status = Commit(batch);
      }
      if (status.ok()) break;
      if (status.code() != absl::StatusCode::kUnavailable) return status;
    }
    logging::Info("state store reconnected", {{"store", "postgres"}, {"database", where_}});
    SetReconnecting(false, absl::OkStatus());
    return absl::OkStatus();
  }

  // Records whether the writer is riding out a lost connection (what
  // Availability says) and tells the observer when that turns. On the
  // writer thread, without mutex_ around the observer.
  void SetReconnecting(bool reconnecting, const absl::Status& why) {
    {
      absl::MutexLock lock(&mutex_);
      if (reconnecting_ == reconnecting) return;
      reconnecting_ = reconnecting;
      if (reconnecting) {
        unavailable_since_ = absl::Now();
        last_error_ = std::string(why.message());
      }
    }
    if (observer_) observer_(!reconnecting);
  }

  // A new writer connection holding the writer lock; `stored` is the last
  // position the database holds (in records or covered by a snapshot).
  absl::Status Reconnect(uint64_t* stored) {
    writer_conn_.reset();
    prepared_rows_.clear();  // a new connection has none
    writer_conn_ = std::make_unique<pqxx::connection>(conninfo_);
    if (absl::Status status = TakeWriterLock(); !status.ok()) return status;
    pqxx::nontransaction tx(*writer_conn_);
    *stored =
        static_cast<uint64_t>(tx.exec1("SELECT greatest((SELECT max(position) FROM state_records), "
                                       "(SELECT max(position) FROM snapshots), 0)")[0]
                                  .as<int64_t>());
    return absl::OkStatus();
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Pending> batch;
      absl::Status failure;
      {
        absl::MutexLock lock(&mutex_);
        while ((queue_.empty() || holds_ > 0) && !stopping_) work_.Wait(&mutex_);
        if (queue_.empty()) return;
        size_t records = 0;
        size_t bytes = 0;
        while (!queue_.empty() &&
               (batch.empty() || (records + queue_.front().records.size() <= kMaxBatchRecords &&
                                  bytes + queue_.front().bytes <= kMaxBatchBytes))) {
          records += queue_.front().records.size();
          bytes += queue_.front().bytes;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        failure = failure_;
      }
      // After a failure nothing more is written: no holes.
      const absl::Status status = failure.ok() ? CommitRetrying(batch) : failure;
      {
        absl::MutexLock lock(&mutex_);
        if (status.ok()) {
          durable_position_ = batch.back().first_position + batch.back().records.size() - 1;
        } else if (failure_.ok()) {
          failure_ = status;
          logging::Error("state store failed", {{"store", "postgres"},
                                                {"database", where_},
                                                {"error", std::string(status.message())}});
        }
        durable_changed_.SignalAll();
      }
      for (Pending& pending : batch) pending.done(status);
    }
  }

  const PostgresStoreOptions options_;
  const std::string where_;                        // the DSN without its password
  const std::vector<std::string> secrets_;         // scrubbed out of every error
  bool loaded_ = false;                            // set by Load before the writer starts
  std::string conninfo_;                           // with the password; set by Load
  std::unique_ptr<pqxx::connection> writer_conn_;  // the writer thread's, after Load
  std::set<size_t> prepared_rows_;                 // the writer's statements on writer_conn_
  absl::Mutex snapshot_mutex_;
  std::unique_ptr<pqxx::connection> snapshot_conn_ ABSL_PT_GUARDED_BY(snapshot_mutex_);

  absl::Mutex mutex_;
  absl::CondVar work_;             // the queue grew, or stopping_
  absl::CondVar durable_changed_;  // durable_position_ or failure_ changed
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mutex_);
  uint64_t last_position_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t durable_position_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  int holds_ ABSL_GUARDED_BY(mutex_) = 0;  // HoldCommits not yet released
  // While the writer retries a lost connection: since when, and the last
  // error it got (already scrubbed of the password by Guard).
  bool reconnecting_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Time unavailable_since_ ABSL_GUARDED_BY(mutex_);
  std::string last_error_ ABSL_GUARDED_BY(mutex_);
  std::function<void(bool)> observer_;  // set before Load; called by the writer
  std::thread writer_;
};

}  // namespace

std::string DescribeDsn(const std::string& dsn) { return ::gyre::postgres::DescribeDsn(dsn); }

std::unique_ptr<StateStore> NewPostgresStateStore(PostgresStoreOptions options) {
  return std::make_unique<PostgresStateStore>(std::move(options));
}

namespace {

// Runs `body` on a new connection to `options`' database.
template <typename Body>
absl::StatusOr<PostgresSchemaStatus> WithConnection(const PostgresStoreOptions& options,
                                                    absl::string_view what, Body&& body) {
  absl::StatusOr<std::string> conninfo = ConnectionString(options);
  if (!conninfo.ok()) return conninfo.status();
  const std::string where = DescribeDsn(options.dsn);
  PostgresSchemaStatus result;
  absl::Status status = Guard(what, where, Secrets(options), [&]() -> absl::Status {
    pqxx::connection connection(*conninfo);
    absl::StatusOr<PostgresSchemaStatus> read = body(connection, where);
    if (!read.ok()) return read.status();
    result = *std::move(read);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

}  // namespace

absl::StatusOr<PostgresSchemaStatus> GetPostgresSchemaStatus(const PostgresStoreOptions& options) {
  return WithConnection(options, "read the schema version",
                        [](pqxx::connection& connection, const std::string&) {
                          pqxx::read_transaction tx(connection);
                          return ReadSchemaStatus(tx);
                        });
}

absl::StatusOr<PostgresSchemaStatus> MigratePostgresSchema(const PostgresStoreOptions& options) {
  return MigratePostgresSchemaTo(options, 0);
}

absl::StatusOr<PostgresSchemaStatus> MigratePostgresSchemaTo(const PostgresStoreOptions& options,
                                                             int version) {
  return WithConnection(
      options, "migrate the schema",
      [version](pqxx::connection& connection,
                const std::string& where) -> absl::StatusOr<PostgresSchemaStatus> {
        if (absl::Status status = ApplyMigrations(connection, where, version); !status.ok())
          return status;
        pqxx::read_transaction tx(connection);
        return ReadSchemaStatus(tx);
      });
}

}  // namespace gyre::orchestrator
