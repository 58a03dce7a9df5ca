#include "services/orchestrator/postgres_shard_store.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/postgres_connection.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

constexpr absl::string_view kComponent = "postgres shard store";
// The stream of workflow definitions in shard_records.
constexpr int kDefinitionsShard = -1;
// Serializes the definitions' positions across orchestrators ("gyre", 3).
constexpr int64_t kDefinitionsLock = 0x67797265'00000003;
// As the state store's: one group commit's bounds, rows per INSERT, rows
// per page while loading.
constexpr size_t kMaxBatchRecords = 4096;
constexpr size_t kMaxBatchBytes = 16 << 20;
constexpr size_t kRowsPerStatement = 1000;
constexpr int kLoadPageRows = 1000;
// Records of a shard a snapshot keeps for a projection behind it, at most;
// one further behind catches up from the snapshot instead (without those
// events). A tenth of the single-writer store's bound: it is per shard.
constexpr int64_t kProjectionBacklogPerShard = 100'000;

struct Row {
  int shard = 0;
  int64_t position = 0;  // in its shard; a definition's is given at commit
  std::string bytes;     // a serialized StateRecord
};

// One Append.
struct Pending {
  uint64_t first_local = 0;  // this process's positions
  uint64_t count = 0;
  std::vector<Row> rows;
  std::set<std::pair<int, int64_t>> fences;  // (shard, token) to check
  size_t bytes = 0;
  absl::Status failure;  // failed before being written
  StateStore::Completion done;
};

// A shard this store writes to.
struct ShardState {
  int64_t token = 0;
  uint64_t last = 0;     // position of its last record appended
  uint64_t durable = 0;  // ... committed
  absl::Status failure;  // fenced out (or the store failed): later appends fail
};

class ShardStore final : public PostgresShardStore {
 public:
  explicit ShardStore(PostgresShardStoreOptions options)
      : options_(std::move(options)),
        where_(DescribeDsn(options_.store.dsn)),
        secrets_(postgres::Secrets(options_.store)) {}

  ~ShardStore() override {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
      work_.Signal();
    }
    if (writer_.joinable()) writer_.join();
  }

  absl::Status Load(const RestoreFn&, const ApplyFn& apply) override {
    if (loaded_) return absl::FailedPreconditionError("postgres shard store: Load called twice");
    absl::StatusOr<std::string> conninfo = postgres::ConnectionString(options_.store);
    if (!conninfo.ok()) return conninfo.status();
    conninfo_ = *std::move(conninfo);
    if (absl::StatusOr<PostgresSchemaStatus> migrated = MigratePostgresSchema(options_.store);
        !migrated.ok()) {
      return migrated.status();
    }
    absl::Status status = Guard("connect", [&] {
      writer_conn_ = Connect();
      absl::MutexLock lock(&reader_mutex_);
      reader_conn_ = Connect();
      return absl::OkStatus();
    });
    if (status.ok()) status = CatchUpDefinitions(apply);
    if (!status.ok()) return status;
    loaded_ = true;
    writer_ = std::thread([this] { WriterLoop(); });
    logging::Info("shard store opened", {{"store", "postgres"},
                                         {"database", where_},
                                         {"orchestrator_id", options_.orchestrator_id}});
    return absl::OkStatus();
  }

  void Append(absl::Span<const v1::StateRecord> records, Completion done) override {
    if (!loaded_) {
      done(absl::FailedPreconditionError("postgres shard store appended to before Load"));
      return;
    }
    if (records.empty()) {
      done(absl::OkStatus());
      return;
    }
    Pending pending;
    pending.rows.reserve(records.size());
    for (const v1::StateRecord& record : records) {
      const std::optional<uint32_t> shard = ShardOfRecord(record, options_.shard_count);
      pending.bytes += record.ByteSizeLong();
      pending.rows.push_back(
          {shard ? static_cast<int>(*shard) : kDefinitionsShard, 0, record.SerializeAsString()});
    }
    pending.count = records.size();
    pending.done = std::move(done);
    absl::MutexLock lock(&mutex_);
    pending.first_local = last_local_ + 1;
    last_local_ += pending.count;
    if (!failure_.ok()) pending.failure = failure_;
    for (Row& row : pending.rows) {
      if (!pending.failure.ok() || row.shard == kDefinitionsShard) continue;
      auto it = shards_.find(static_cast<uint32_t>(row.shard));
      if (it == shards_.end()) {
        pending.failure = absl::FailedPreconditionError(absl::StrCat(
            "postgres shard store: shard ", row.shard,
            " is not held by this orchestrator (never loaded, or dropped after a hand-over or a "
            "lost lease): nothing written"));
      } else if (!it->second.failure.ok()) {
        pending.failure = it->second.failure;
      }
    }
    if (pending.failure.ok()) {
      for (Row& row : pending.rows) {
        if (row.shard == kDefinitionsShard) continue;
        ShardState& state = shards_[static_cast<uint32_t>(row.shard)];
        row.position = static_cast<int64_t>(++state.last);
        pending.fences.emplace(row.shard, state.token);
      }
    }
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
    return last_local_;
  }

  absl::Status AwaitDurable(uint64_t position) override {
    if (position == 0) return absl::OkStatus();
    absl::MutexLock lock(&mutex_);
    if (position > last_local_) {
      return absl::FailedPreconditionError(absl::StrCat("postgres shard store: position ", position,
                                                        " awaited but the last record appended is ",
                                                        last_local_));
    }
    while (processed_local_ < position && failure_.ok()) durable_changed_.Wait(&mutex_);
    if (first_failed_local_ != 0 && first_failed_local_ <= position) return first_failure_;
    if (processed_local_ >= position) return absl::OkStatus();
    return failure_;
  }

  absl::Status WriteSnapshot(uint64_t, const v1::EngineSnapshot&) override {
    return absl::FailedPreconditionError(
        "postgres shard store: snapshots are per shard (WriteShardSnapshot)");
  }

  absl::Status LoadShard(uint32_t shard, int64_t token, const RestoreFn& restore,
                         const ApplyFn& apply) override {
    if (!loaded_)
      return absl::FailedPreconditionError("postgres shard store: LoadShard before Load");
    if (shard >= options_.shard_count) {
      return absl::InvalidArgumentError(absl::StrCat("postgres shard store: shard ", shard,
                                                     " is out of range (shard count ",
                                                     options_.shard_count, ")"));
    }
    {
      absl::MutexLock lock(&mutex_);
      if (shards_.contains(shard)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "postgres shard store: shard ", shard, " is loaded already (ForgetShard it first)"));
      }
    }
    if (absl::Status status = CatchUpDefinitions(apply); !status.ok()) return status;
    uint64_t last = 0;
    absl::Status status = WithReader(absl::StrCat("load shard ", shard), [&](pqxx::connection& c) {
      return ReplayShard(c, shard, restore, apply, &last);
    });
    if (!status.ok()) return status;
    absl::MutexLock lock(&mutex_);
    shards_[shard] = ShardState{token, last, last, absl::OkStatus()};
    return absl::OkStatus();
  }

  absl::Status CatchUpDefinitions(const ApplyFn& apply) override {
    // Held across the read: the writer holds it from a commit with
    // definitions until their positions are in own_definitions_, so a
    // record of ours is never taken for another orchestrator's.
    absl::MutexLock definitions(&definitions_mutex_);
    // The lambda runs under the lock taken here (WithReader calls it before
    // returning); the analysis cannot follow a lock into a lambda.
    return WithReader(
        "catch up with definitions",
        [&](pqxx::connection& c) ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
          pqxx::read_transaction tx(c);
          for (;;) {
            const pqxx::result page = tx.exec_params(
                "SELECT position, record FROM shard_records WHERE shard = $1 AND position > $2 "
                "ORDER BY position LIMIT $3",
                kDefinitionsShard, definitions_seen_, kLoadPageRows);
            for (const pqxx::row& row : page) {
              const int64_t at = row[0].as<int64_t>();
              if (at != definitions_seen_ + 1) {
                return absl::DataLossError(absl::StrCat("definition record ", definitions_seen_ + 1,
                                                        " is missing (the next one is ", at, ")"));
              }
              definitions_seen_ = at;
              if (own_definitions_.erase(at) > 0) continue;
              absl::Status applied = ApplyRow(row, apply, kDefinitionsShard);
              if (!applied.ok()) return applied;
            }
            if (page.size() < static_cast<size_t>(kLoadPageRows)) break;
          }
          tx.commit();
          return absl::OkStatus();
        });
  }

  void ForgetShard(uint32_t shard) override {
    absl::MutexLock lock(&mutex_);
    shards_.erase(shard);
  }

  uint64_t last_shard_position(uint32_t shard) override {
    absl::MutexLock lock(&mutex_);
    auto it = shards_.find(shard);
    return it == shards_.end() ? 0 : it->second.last;
  }

  absl::Status AwaitShardDurable(uint32_t shard, uint64_t position) override {
    absl::MutexLock lock(&mutex_);
    for (;;) {
      auto it = shards_.find(shard);
      if (it == shards_.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("postgres shard store: shard ", shard, " is not held here"));
      }
      if (position > it->second.last) {
        return absl::FailedPreconditionError(
            absl::StrCat("postgres shard store: shard ", shard, " position ", position,
                         " awaited but its last record appended is ", it->second.last));
      }
      if (it->second.durable >= position) return absl::OkStatus();
      if (!it->second.failure.ok()) return it->second.failure;
      if (!failure_.ok()) return failure_;
      durable_changed_.Wait(&mutex_);
    }
  }

  absl::Status WriteShardSnapshot(uint32_t shard, uint64_t position,
                                  const v1::EngineSnapshot& snapshot) override {
    if (absl::Status status = AwaitShardDurable(shard, position); !status.ok()) return status;
    int64_t token = 0;
    {
      absl::MutexLock lock(&mutex_);
      auto it = shards_.find(shard);
      if (it == shards_.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("postgres shard store: shard ", shard, " is not held here"));
      }
      token = it->second.token;
    }
    const std::string bytes = snapshot.SerializeAsString();
    return WithReader(
        absl::StrCat("write a snapshot of shard ", shard),
        [&](pqxx::connection& c) -> absl::Status {
          pqxx::work tx(c);
          const std::vector<std::pair<int, int64_t>> fence = {{static_cast<int>(shard), token}};
          if (!CheckFences(tx, fence).empty()) {
            return FencedOut(static_cast<int>(shard), token, "the snapshot");
          }
          const pqxx::binarystring blob(bytes.data(), bytes.size());
          const int64_t at = static_cast<int64_t>(position);
          const int s = static_cast<int>(shard);
          tx.exec_params0(
              "INSERT INTO shard_snapshots (shard, position, snapshot) "
              "VALUES ($1, $2, $3) ON CONFLICT (shard, position) "
              "DO UPDATE SET snapshot = excluded.snapshot",
              s, at, blob);
          tx.exec_params0("DELETE FROM shard_snapshots WHERE shard = $1 AND position < $2", s, at);
          if (options_.keep_records_for_projection) {
            // Except the records the shard's projection (postgres_projector.h,
            // cursor "shard:<n>") has not read yet, up to
            // kProjectionBacklogPerShard of them, so that its events have
            // no gap; LoadShard reads only the records after the snapshot.
            // No cursor yet: the projection has not started on the shard.
            tx.exec_params0(
                "DELETE FROM shard_records WHERE shard = $1 AND position <= "
                "greatest($2::bigint - $3, least($2, coalesce((SELECT position FROM "
                "projection_cursor WHERE name = 'shard:' || $1::int), 0)))",
                s, at, kProjectionBacklogPerShard);
          } else {
            tx.exec_params0("DELETE FROM shard_records WHERE shard = $1 AND position <= $2", s, at);
          }
          tx.commit();
          return absl::OkStatus();
        });
  }

 private:
  template <typename Body>
  absl::Status Guard(absl::string_view what, Body&& body) {
    return postgres::GuardAs(kComponent, what, where_, secrets_, std::forward<Body>(body));
  }

  // A connection whose transactions PostgreSQL ends when left open past
  // ttl/2 (this process stopped mid-commit), releasing its lease locks.
  std::unique_ptr<pqxx::connection> Connect() {
    auto connection = std::make_unique<pqxx::connection>(conninfo_);
    pqxx::nontransaction tx(*connection);
    tx.exec0(absl::StrCat("SET idle_in_transaction_session_timeout = ",
                          std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.ttl / 2))));
    return connection;
  }

  // Runs `body` on the reader connection; a connection lost since its last
  // use (a server restart) is only found out by using it: then once more
  // on a new one.
  template <typename Body>
  absl::Status WithReader(const std::string& what, Body&& body) {
    absl::MutexLock lock(&reader_mutex_);
    absl::Status status;
    for (int attempt = 0; attempt < 2; ++attempt) {
      // Runs here, under the lock; the analysis cannot follow it into a lambda.
      status = Guard(what, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
        if (reader_conn_ == nullptr) reader_conn_ = Connect();
        return body(*reader_conn_);
      });
      if (status.code() != absl::StatusCode::kUnavailable) return status;
      reader_conn_.reset();
    }
    return status;
  }

  static absl::Status ApplyRow(const pqxx::row& row, const ApplyFn& apply, int shard) {
    const int64_t at = row[0].as<int64_t>();
    const pqxx::binarystring bytes(row[1]);
    v1::StateRecord record;
    if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat("shard ", shard, ": undecodable record ", at));
    }
    if (absl::Status status = apply(record); !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("shard ", shard, " record ", at, ": ", status.message()));
    }
    return absl::OkStatus();
  }

  absl::Status ReplayShard(pqxx::connection& connection, uint32_t shard, const RestoreFn& restore,
                           const ApplyFn& apply, uint64_t* last) {
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        connection);
    const int s = static_cast<int>(shard);
    int64_t position = 0;
    const pqxx::result snapshot = tx.exec_params(
        "SELECT position, snapshot FROM shard_snapshots WHERE shard = $1 "
        "ORDER BY position DESC LIMIT 1",
        s);
    if (!snapshot.empty()) {
      position = snapshot[0][0].as<int64_t>();
      const pqxx::binarystring bytes(snapshot[0][1]);
      v1::EngineSnapshot state;
      if (!state.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(
            absl::StrCat("shard ", shard, ": undecodable snapshot at position ", position));
      }
      if (absl::Status status = restore(std::move(state)); !status.ok()) return status;
    }
    for (;;) {
      const pqxx::result page = tx.exec_params(
          "SELECT position, record FROM shard_records WHERE shard = $1 AND position > $2 "
          "ORDER BY position LIMIT $3",
          s, position, kLoadPageRows);
      for (const pqxx::row& row : page) {
        const int64_t at = row[0].as<int64_t>();
        if (at != position + 1) {
          return absl::DataLossError(absl::StrCat("shard ", shard, ": record ", position + 1,
                                                  " is missing (the next one is ", at, ")"));
        }
        if (absl::Status status = ApplyRow(row, apply, s); !status.ok()) return status;
        position = at;
      }
      if (page.size() < static_cast<size_t>(kLoadPageRows)) break;
    }
    tx.commit();
    *last = static_cast<uint64_t>(position);
    return absl::OkStatus();
  }

  // The (shard, token) pairs of `fences` that are no longer ours; the ones
  // that are stay locked until `tx` ends, so a take-over (whose SELECT ...
  // FOR UPDATE SKIP LOCKED conflicts) happens after this commit, or is seen
  // by this check. FOR KEY SHARE rather than FOR SHARE: the owner's own
  // renewals (an UPDATE of expires_at, no key) do not conflict with it, so
  // a stream of commits cannot starve them.
  std::vector<std::pair<int, int64_t>> CheckFences(
      pqxx::transaction_base& tx, const std::vector<std::pair<int, int64_t>>& fences) {
    std::vector<int> shards;
    std::vector<int64_t> tokens;
    for (const auto& [shard, token] : fences) {
      shards.push_back(shard);
      tokens.push_back(token);
    }
    const pqxx::result rows = tx.exec_params(
        "SELECT l.shard, l.token FROM shard_leases l "
        "JOIN unnest($1::int[], $2::bigint[]) AS f(shard, token) "
        "ON l.shard = f.shard AND l.token = f.token "
        "WHERE l.owner = $3 AND l.expires_at > now() FOR KEY SHARE OF l",
        postgres::IntArrayLiteral(shards), postgres::IntArrayLiteral(tokens),
        options_.orchestrator_id);
    std::set<std::pair<int, int64_t>> held;
    for (const pqxx::row& row : rows) held.emplace(row[0].as<int>(), row[1].as<int64_t>());
    std::vector<std::pair<int, int64_t>> out;
    for (const auto& fence : fences) {
      if (!held.contains(fence)) out.push_back(fence);
    }
    return out;
  }

  absl::Status FencedOut(int shard, int64_t token, absl::string_view what) const {
    return absl::FailedPreconditionError(absl::StrCat(
        "postgres shard store (", where_, "): shard ", shard, ": fencing token ", token,
        " is no longer this orchestrator's lease (shard_leases names another owner, a newer "
        "token or an expired lease): ",
        what, " not written"));
  }

  // One transaction for `live`: the fencing check, then every row. OK with
  // `fenced` empty: committed; OK with `fenced` filled: rolled back, nothing
  // written. `definitions` gets the positions given to definition records.
  absl::Status CommitOnce(const std::vector<Pending*>& live,
                          std::vector<std::pair<int, int64_t>>* fenced,
                          std::vector<int64_t>* definitions) {
    fenced->clear();
    definitions->clear();
    return Guard("append", [&]() -> absl::Status {
      std::set<std::pair<int, int64_t>> all;
      std::vector<const Row*> rows;
      size_t definition_rows = 0;
      for (const Pending* pending : live) {
        all.insert(pending->fences.begin(), pending->fences.end());
        for (const Row& row : pending->rows) {
          rows.push_back(&row);
          if (row.shard == kDefinitionsShard) ++definition_rows;
        }
      }
      pqxx::work tx(*writer_conn_);
      if (!all.empty()) {
        *fenced = CheckFences(tx, {all.begin(), all.end()});
        if (!fenced->empty()) {
          tx.abort();
          return absl::OkStatus();
        }
      }
      int64_t next_definition = 0;
      if (definition_rows > 0) {
        tx.exec_params("SELECT pg_advisory_xact_lock($1)", kDefinitionsLock);
        next_definition = tx.exec_params1(
                                "SELECT coalesce(max(position), 0) FROM shard_records "
                                "WHERE shard = $1",
                                kDefinitionsShard)[0]
                              .as<int64_t>() +
                          1;
      }
      for (size_t at = 0; at < rows.size(); at += kRowsPerStatement) {
        const size_t count = std::min(kRowsPerStatement, rows.size() - at);
        std::string sql = "INSERT INTO shard_records (shard, position, record) VALUES ";
        std::vector<pqxx::binarystring> blobs;
        blobs.reserve(count);
        for (size_t i = 0; i < count; ++i) {
          const Row& row = *rows[at + i];
          int64_t position = row.position;
          if (row.shard == kDefinitionsShard) {
            position = next_definition++;
            definitions->push_back(position);
          }
          // Shards and positions are this process's integers: inlined.
          absl::StrAppend(&sql, i == 0 ? "" : ", ", "(", row.shard, ", ", position, ", $", i + 1,
                          ")");
          blobs.emplace_back(row.bytes.data(), row.bytes.size());
        }
        tx.exec_params0(sql, pqxx::prepare::make_dynamic_params(blobs));
      }
      tx.commit();
      return absl::OkStatus();
    });
  }

  // Whether `live`'s transaction, cut off by a lost connection, committed:
  // its first shard row is there. nullopt when it has only definitions (not
  // told apart: sent again, a definition may then be stored twice).
  std::optional<bool> Committed(const std::vector<Pending*>& live) {
    for (const Pending* pending : live) {
      for (const Row& row : pending->rows) {
        if (row.shard == kDefinitionsShard) continue;
        pqxx::nontransaction tx(*writer_conn_);
        return !tx.exec_params("SELECT 1 FROM shard_records WHERE shard = $1 AND position = $2",
                               row.shard, row.position)
                    .empty();
      }
    }
    return std::nullopt;
  }

  // Commits the pendings of `batch` that have not failed yet, setting the
  // failure of those fenced out; rides out a lost connection for up to
  // retry_for (reconnecting with backoff and jitter). A failure returned
  // fails the store.
  absl::Status CommitBatch(std::vector<Pending>& batch) {
    std::vector<Pending*> live;
    bool has_definitions = false;
    for (Pending& pending : batch) {
      if (!pending.failure.ok()) continue;
      live.push_back(&pending);
      for (const Row& row : pending.rows) has_definitions |= row.shard == kDefinitionsShard;
    }
    std::optional<absl::MutexLock> definitions_lock;
    if (has_definitions) definitions_lock.emplace(&definitions_mutex_);
    std::vector<std::pair<int, int64_t>> fenced;
    std::vector<int64_t> definitions;
    const absl::Time give_up = absl::Now() + options_.store.retry_for;
    absl::Duration backoff = absl::Milliseconds(50);
    absl::BitGen random;
    while (!live.empty()) {
      absl::Status status = CommitOnce(live, &fenced, &definitions);
      for (int attempt = 1; status.code() == absl::StatusCode::kUnavailable; ++attempt) {
        logging::Warn("shard store connection lost; retrying",
                      {{"store", "postgres"},
                       {"database", where_},
                       {"attempt", attempt},
                       {"error", std::string(status.message())}});
        const absl::Duration wait = absl::Milliseconds(absl::Uniform(random, 0.5, 1.0) *
                                                       absl::ToDoubleMilliseconds(backoff));
        backoff = std::min(backoff * 2, absl::Seconds(5));
        {
          absl::MutexLock lock(&mutex_);
          if (absl::Now() + wait > give_up || stopping_) return status;
          work_.WaitWithTimeout(&mutex_, wait);
          if (stopping_) return status;
        }
        std::optional<bool> committed;
        status = Guard("reconnect", [&] {
          writer_conn_ = Connect();
          committed = Committed(live);
          return absl::OkStatus();
        });
        if (!status.ok()) continue;
        if (committed.value_or(false)) {
          fenced.clear();
          break;
        }
        status = CommitOnce(live, &fenced, &definitions);
      }
      if (!status.ok()) return status;
      if (fenced.empty()) break;
      const std::set<std::pair<int, int64_t>> out(fenced.begin(), fenced.end());
      std::vector<Pending*> rest;
      for (Pending* pending : live) {
        const auto hit = std::find_if(pending->fences.begin(), pending->fences.end(),
                                      [&](const auto& fence) { return out.contains(fence); });
        if (hit == pending->fences.end()) {
          rest.push_back(pending);
        } else {
          pending->failure =
              FencedOut(hit->first, hit->second, absl::StrCat(pending->rows.size(), " record(s)"));
        }
      }
      live = std::move(rest);
    }
    if (!definitions.empty()) {
      definitions_mutex_.AssertHeld();  // definitions_lock, taken when the batch had some
      own_definitions_.insert(definitions.begin(), definitions.end());
    }
    return absl::OkStatus();
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Pending> batch;
      {
        absl::MutexLock lock(&mutex_);
        while ((queue_.empty() || holds_ > 0) && !stopping_) work_.Wait(&mutex_);
        if (queue_.empty()) return;
        size_t records = 0;
        size_t bytes = 0;
        while (!queue_.empty() &&
               (batch.empty() || (records + queue_.front().count <= kMaxBatchRecords &&
                                  bytes + queue_.front().bytes <= kMaxBatchBytes))) {
          records += queue_.front().count;
          bytes += queue_.front().bytes;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        // A shard fenced out earlier fails its later appends (no holes),
        // and after a store failure nothing more is written.
        for (Pending& pending : batch) {
          if (!failure_.ok()) pending.failure = failure_;
          for (const auto& [shard, token] : pending.fences) {
            if (!pending.failure.ok()) break;
            auto it = shards_.find(static_cast<uint32_t>(shard));
            if (it != shards_.end() && it->second.token == token && !it->second.failure.ok()) {
              pending.failure = it->second.failure;
            }
          }
        }
      }
      const absl::Status status = CommitBatch(batch);
      {
        absl::MutexLock lock(&mutex_);
        if (!status.ok() && failure_.ok()) {
          failure_ = status;
          logging::Error("shard store failed", {{"store", "postgres"},
                                                {"database", where_},
                                                {"error", std::string(status.message())}});
        }
        for (Pending& pending : batch) {
          if (pending.failure.ok() && !status.ok()) pending.failure = status;
          if (!pending.failure.ok() && first_failed_local_ == 0) {
            first_failed_local_ = pending.first_local;
            first_failure_ = pending.failure;
          }
          for (const Row& row : pending.rows) {
            if (row.shard == kDefinitionsShard) continue;
            auto it = shards_.find(static_cast<uint32_t>(row.shard));
            if (it == shards_.end() || !pending.fences.contains({row.shard, it->second.token})) {
              continue;  // dropped, or loaded again since
            }
            if (pending.failure.ok()) {
              it->second.durable = std::max<uint64_t>(it->second.durable, row.position);
            } else if (it->second.failure.ok()) {
              it->second.failure = pending.failure;
            }
          }
        }
        processed_local_ = batch.back().first_local + batch.back().count - 1;
        durable_changed_.SignalAll();
      }
      for (Pending& pending : batch) pending.done(pending.failure);
    }
  }

  const PostgresShardStoreOptions options_;
  const std::string where_;
  const std::vector<std::string> secrets_;
  bool loaded_ = false;                            // set by Load before the writer starts
  std::string conninfo_;                           // with the password; set by Load
  std::unique_ptr<pqxx::connection> writer_conn_;  // the writer thread's, after Load

  absl::Mutex reader_mutex_;  // loads and snapshots
  std::unique_ptr<pqxx::connection> reader_conn_ ABSL_PT_GUARDED_BY(reader_mutex_);

  // Ordered before reader_mutex_ and mutex_.
  absl::Mutex definitions_mutex_;
  int64_t definitions_seen_ ABSL_GUARDED_BY(definitions_mutex_) = 0;
  // Positions of this store's own definitions not yet passed by a catch-up.
  std::set<int64_t> own_definitions_ ABSL_GUARDED_BY(definitions_mutex_);

  absl::Mutex mutex_;
  absl::CondVar work_;
  absl::CondVar durable_changed_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<uint32_t, ShardState> shards_ ABSL_GUARDED_BY(mutex_);
  uint64_t last_local_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t processed_local_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t first_failed_local_ ABSL_GUARDED_BY(mutex_) = 0;  // 0: none
  absl::Status first_failure_ ABSL_GUARDED_BY(mutex_);
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);  // the store's (not a shard's)
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  int holds_ ABSL_GUARDED_BY(mutex_) = 0;  // HoldCommits not yet released
  std::thread writer_;
};

}  // namespace

std::unique_ptr<PostgresShardStore> PostgresShardStore::Create(PostgresShardStoreOptions options) {
  return std::make_unique<ShardStore>(std::move(options));
}

}  // namespace gyre::orchestrator
