#include "services/orchestrator/postgres_state_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <optional>
#include <pqxx/pqxx>
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
// Records read per query while loading (bounds the memory of a replay).
constexpr int kLoadPageRows = 1000;

// A libpq option value quoted for a key=value connection string.
std::string QuoteValue(const std::string& value) {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"'", "\\'"}}), "'");
}

// The DSN's options, parsed by libpq itself (key=value or URI form).
// nullopt when libpq cannot parse it; its message is not kept, since it may
// quote the DSN and so the password.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseDsn(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> out;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val != nullptr) out.emplace_back(option->keyword, option->val);
  }
  PQconninfoFree(options);
  return out;
}

// Runs `body`, turning the exceptions libpqxx throws into a Status that
// says what failed and where, with the password scrubbed out.
template <typename Body>
absl::Status Guard(absl::string_view what, const std::string& where,
                   const std::vector<std::string>& secrets, Body&& body) {
  std::string message;
  absl::StatusCode code = absl::StatusCode::kInternal;
  try {
    return body();
  } catch (const pqxx::broken_connection& e) {
    code = absl::StatusCode::kUnavailable;
    message = e.what();
  } catch (const pqxx::in_doubt_error& e) {
    code = absl::StatusCode::kUnavailable;
    message = absl::StrCat("commit outcome unknown: ", e.what());
  } catch (const std::exception& e) {
    message = e.what();
  }
  for (const std::string& secret : secrets) {
    if (!secret.empty()) absl::StrReplaceAll({{secret, "***"}}, &message);
  }
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return absl::Status(code, absl::StrCat("postgres state store (", where, "): ", what, ": ",
                                         absl::StrReplaceAll(message, {{"\n", " "}})));
}

// The connection string libpq gets: the DSN's options as libpq parsed
// them, with the separately given password in place of the DSN's.
absl::StatusOr<std::string> ConnectionString(const PostgresStoreOptions& options) {
  std::optional<std::vector<std::pair<std::string, std::string>>> parsed = ParseDsn(options.dsn);
  if (!parsed) {
    return absl::InvalidArgumentError(
        "postgres state store: the DSN is neither a libpq key=value string nor a "
        "postgresql:// URI (its text is not repeated here: it may hold a password)");
  }
  std::vector<std::string> parts;
  for (const auto& [key, value] : *parsed) {
    if (key == "password" && !options.password.empty()) continue;
    parts.push_back(absl::StrCat(key, "=", QuoteValue(value)));
  }
  if (!options.password.empty()) {
    parts.push_back(absl::StrCat("password=", QuoteValue(options.password)));
  }
  return absl::StrJoin(parts, " ");
}

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
absl::Status ApplyMigrations(pqxx::connection& connection, const std::string& where) {
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

// The password (the separately given one and the DSN's), scrubbed out of
// every error.
std::vector<std::string> Secrets(const PostgresStoreOptions& options) {
  std::vector<std::string> secrets;
  if (std::optional<std::vector<std::pair<std::string, std::string>>> parsed =
          ParseDsn(options.dsn)) {
    for (const auto& [key, value] : *parsed) {
      if (key == "password") secrets.push_back(value);
    }
  }
  secrets.push_back(options.password);
  return secrets;
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
                   {"schema_version", static_cast<int64_t>(std::size(kMigrations))}});
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
    work_.Signal();
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
        tx.exec_params("DELETE FROM state_records WHERE position <= $1", at);
        tx.commit();
        return absl::OkStatus();
      });
      if (status.ok()) break;
      snapshot_conn_.reset();
      if (status.code() != absl::StatusCode::kUnavailable) break;
    }
    return status;
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
    return absl::OkStatus();
  }

  // A new writer connection holding the writer lock; `stored` is the last
  // position the database holds (in records or covered by a snapshot).
  absl::Status Reconnect(uint64_t* stored) {
    writer_conn_.reset();
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
        while (queue_.empty() && !stopping_) work_.Wait(&mutex_);
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
  std::thread writer_;
};

}  // namespace

std::string DescribeDsn(const std::string& dsn) {
  std::optional<std::vector<std::pair<std::string, std::string>>> parsed = ParseDsn(dsn);
  if (!parsed) return "(unparsable DSN)";
  std::vector<std::string> parts;
  for (const char* key : {"host", "hostaddr", "port", "dbname", "user", "target_session_attrs"}) {
    for (const auto& [name, value] : *parsed) {
      if (name == key && !value.empty()) parts.push_back(absl::StrCat(name, "=", value));
    }
  }
  return parts.empty() ? "(libpq defaults)" : absl::StrJoin(parts, " ");
}

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
  return WithConnection(options, "migrate the schema",
                        [](pqxx::connection& connection,
                           const std::string& where) -> absl::StatusOr<PostgresSchemaStatus> {
                          if (absl::Status status = ApplyMigrations(connection, where);
                              !status.ok())
                            return status;
                          pqxx::read_transaction tx(connection);
                          return ReadSchemaStatus(tx);
                        });
}

}  // namespace gyre::orchestrator
