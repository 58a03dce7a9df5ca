#include "services/orchestrator/shard_lease_manager.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/postgres_connection.h"

namespace gyre::orchestrator {
namespace {

constexpr absl::string_view kComponent = "shard leases";
// Bounds of the options (named in the errors).
constexpr size_t kMaxOrchestratorIdBytes = 200;
constexpr absl::Duration kMinTtl = absl::Milliseconds(300);

namespace pb = ::google::protobuf;

// `orchestrators.backlog`: {"<queue>": {"queued": n, "running": m,
// "forecast_workers_60s": f, "forecast_workers_300s": g}, ...}, queues with
// no backlog left out (the forecasts only from a member with a forecaster).
std::string BacklogJson(const std::map<std::string, QueueBacklog>& own) {
  pb::Struct document;
  for (const auto& [queue, backlog] : own) {
    pb::Struct& counts = *(*document.mutable_fields())[queue].mutable_struct_value();
    (*counts.mutable_fields())["queued"].set_number_value(static_cast<double>(backlog.queued));
    (*counts.mutable_fields())["running"].set_number_value(static_cast<double>(backlog.running));
    if (backlog.forecast_workers_60s != 0 || backlog.forecast_workers_300s != 0) {
      (*counts.mutable_fields())["forecast_workers_60s"].set_number_value(
          backlog.forecast_workers_60s);
      (*counts.mutable_fields())["forecast_workers_300s"].set_number_value(
          backlog.forecast_workers_300s);
    }
  }
  std::string json;
  if (!pb::util::MessageToJsonString(document, &json).ok()) return "{}";
  return json;
}

// Adds one member's published backlog to `sums`. A document this version
// cannot read (a later one's) counts zero, as a member that publishes none.
void AddBacklog(const std::string& json, QueueBacklogs& sums) {
  pb::Struct document;
  if (json.empty() || !pb::util::JsonStringToMessage(json, &document).ok()) return;
  for (const auto& [queue, value] : document.fields()) {
    if (!value.has_struct_value()) continue;
    const auto& counts = value.struct_value().fields();
    auto count = [&](const char* key) -> int64_t {
      auto it = counts.find(key);
      if (it == counts.end() || !it->second.has_number_value()) return 0;
      // A count out of range (negative, NaN, beyond any real backlog) is not
      // rounded: llround of it is undefined. It counts as zero or the bound.
      const double n = it->second.number_value();
      if (!(n > 0)) return 0;
      return std::llround(std::min(n, 1e15));
    };
    // A forecast is a number of workers: bounded the same way, not rounded.
    auto workers = [&](const char* key) -> double {
      auto it = counts.find(key);
      if (it == counts.end() || !it->second.has_number_value()) return 0;
      const double n = it->second.number_value();
      return n > 0 ? std::min(n, 1e15) : 0;
    };
    QueueBacklog& sum = sums[queue];
    sum.queued += count("queued");
    sum.running += count("running");
    sum.forecast_workers_60s += workers("forecast_workers_60s");
    sum.forecast_workers_300s += workers("forecast_workers_300s");
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardLeaseManager>> ShardLeaseManager::Start(
    ShardLeaseOptions options, ShardLeaseCallbacks callbacks) {
  if (options.orchestrator_id.empty() || options.orchestrator_id.size() > kMaxOrchestratorIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard leases: orchestrator_id must be 1..", kMaxOrchestratorIdBytes,
                     " bytes (kMaxOrchestratorIdBytes), got ", options.orchestrator_id.size()));
  }
  if (options.ttl < kMinTtl) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard leases: the lease ttl ", absl::FormatDuration(options.ttl),
                     " is below the minimum (kMinTtl) of ", absl::FormatDuration(kMinTtl)));
  }
  if (options.shard_count == 0) {
    return absl::InvalidArgumentError("shard leases: the shard count must be positive");
  }
  absl::StatusOr<std::string> conninfo = postgres::ConnectionString(options.store);
  if (!conninfo.ok()) return conninfo.status();
  // An unreachable server must not hold a round up past the leases'
  // deadlines (libpq waits for ever by default): bounded by ttl/3 unless
  // the DSN says otherwise.
  const absl::Duration renew_period = options.ttl / 3;
  const auto parsed = postgres::ParseDsn(options.store.dsn);
  auto has = [&](absl::string_view key) {
    return parsed && std::any_of(parsed->begin(), parsed->end(),
                                 [&](const auto& option) { return option.first == key; });
  };
  if (!has("connect_timeout")) {
    // libpq's unit is whole seconds (2 at least).
    absl::StrAppend(&*conninfo,
                    " connect_timeout=", std::max<int64_t>(2, absl::ToInt64Seconds(renew_period)));
  }
  if (!has("tcp_user_timeout")) {
    absl::StrAppend(&*conninfo, " tcp_user_timeout=", absl::ToInt64Milliseconds(renew_period));
  }
  if (absl::StatusOr<PostgresSchemaStatus> migrated = MigratePostgresSchema(options.store);
      !migrated.ok()) {
    return migrated.status();
  }
  std::unique_ptr<ShardLeaseManager> manager(
      new ShardLeaseManager(std::move(options), std::move(callbacks), *std::move(conninfo)));
  absl::Status status = postgres::GuardAs(
      kComponent, "connect", manager->where_, manager->secrets_, [&]() -> absl::Status {
        if (absl::Status connected = manager->Connect(); !connected.ok()) return connected;
        pqxx::nontransaction tx(*manager->connection_);
        const int64_t rows = tx.exec1("SELECT count(*) FROM shard_leases")[0].as<int64_t>();
        if (rows != manager->options_.shard_count) {
          return absl::FailedPreconditionError(absl::StrCat(
              "shard leases (", manager->where_, "): shard_leases has ", rows,
              " shards but this orchestrator is configured for ", manager->options_.shard_count));
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  manager->thread_ = std::thread([raw = manager.get()] { raw->Run(); });
  logging::Info("shard leases started",
                {{"orchestrator_id", manager->options_.orchestrator_id},
                 {"database", manager->where_},
                 {"ttl_ms", absl::ToInt64Milliseconds(manager->options_.ttl)}});
  return manager;
}

ShardLeaseManager::ShardLeaseManager(ShardLeaseOptions options, ShardLeaseCallbacks callbacks,
                                     std::string conninfo)
    : options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      conninfo_(std::move(conninfo)),
      where_(DescribeDsn(options_.store.dsn)),
      secrets_(postgres::Secrets(options_.store)) {}

ShardLeaseManager::~ShardLeaseManager() { Stop(); }

absl::Status ShardLeaseManager::Connect() {
  connection_.reset();
  connection_ = std::make_unique<pqxx::connection>(conninfo_);
  // A round never waits long on a row lock (a stalled transaction's):
  // it fails and the next one tries again.
  pqxx::nontransaction tx(*connection_);
  tx.exec0(absl::StrCat("SET lock_timeout = ",
                        std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.ttl / 3))));
  return absl::OkStatus();
}

void ShardLeaseManager::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  std::vector<int> shards;
  std::vector<int64_t> tokens;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [shard, held] : held_) {
      shards.push_back(static_cast<int>(shard));
      tokens.push_back(held.token);
    }
    for (const auto& [shard, token] : to_release_) {
      shards.push_back(static_cast<int>(shard));
      tokens.push_back(token);
    }
    held_.clear();
    to_release_.clear();
  }
  const absl::Status left =
      postgres::GuardAs(kComponent, "leave", where_, secrets_, [&]() -> absl::Status {
        if (connection_ == nullptr) {
          if (absl::Status connected = Connect(); !connected.ok()) return connected;
        }
        pqxx::work tx(*connection_);
        tx.exec_params0(
            "UPDATE shard_leases l SET owner = NULL, expires_at = NULL "
            "FROM unnest($1::int[], $2::bigint[]) AS r(shard, token) "
            "WHERE l.shard = r.shard AND l.token = r.token AND l.owner = $3",
            postgres::IntArrayLiteral(shards), postgres::IntArrayLiteral(tokens),
            options_.orchestrator_id);
        tx.exec_params0("DELETE FROM orchestrators WHERE id = $1", options_.orchestrator_id);
        tx.commit();
        return absl::OkStatus();
      });
  if (!left.ok()) {
    // The leases then lapse by themselves after the ttl.
    logging::Warn("shard leases not released on stop", {{"error", std::string(left.message())}});
  }
  connection_.reset();
}

std::vector<ShardLease> ShardLeaseManager::owned() const {
  const Clock::time_point now = Clock::now();
  std::vector<ShardLease> out;
  absl::MutexLock lock(&mutex_);
  for (const auto& [shard, held] : held_) {
    if (held.deadline > now) out.push_back({shard, held.token});
  }
  std::sort(out.begin(), out.end(),
            [](const ShardLease& a, const ShardLease& b) { return a.shard < b.shard; });
  return out;
}

void ShardLeaseManager::Release(uint32_t shard) {
  absl::MutexLock lock(&mutex_);
  auto it = held_.find(shard);
  if (it == held_.end()) return;
  to_release_[shard] = it->second.token;
  held_.erase(it);
  wake_.SignalAll();
}

void ShardLeaseManager::PauseForTesting(bool paused) {
  absl::MutexLock lock(&mutex_);
  paused_ = paused;
  wake_.SignalAll();
}

void ShardLeaseManager::ReportLapsed() {
  const Clock::time_point now = Clock::now();
  std::vector<uint32_t> lapsed;
  {
    absl::MutexLock lock(&mutex_);
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->second.deadline <= now) {
        lapsed.push_back(it->first);
        held_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  if (lapsed.empty()) return;
  logging::Warn("shard leases lapsed without renewal",
                {{"orchestrator_id", options_.orchestrator_id},
                 {"shards", static_cast<int64_t>(lapsed.size())}});
  for (uint32_t shard : lapsed) {
    if (callbacks_.lost) callbacks_.lost(shard);
  }
}

void ShardLeaseManager::ForgetStaleBacklog() {
  if (options_.backlog == nullptr || !others_deadline_.has_value() ||
      Clock::now() < *others_deadline_) {
    return;
  }
  // Cut off from PostgreSQL for as long as a lease lasts: who is still
  // live, and with what, is unknown; only this member's own backlog counts.
  others_deadline_.reset();
  options_.backlog->SetOthers({});
  logging::Warn(
      "the other orchestrators' backlog is no longer known: desired workers count "
      "this orchestrator's alone until a lease round succeeds",
      {{"orchestrator_id", options_.orchestrator_id}});
}

void ShardLeaseManager::Run() {
  const absl::Duration renew_period = options_.ttl / 3;
  Clock::time_point next_round = Clock::now();
  absl::Duration backoff = absl::Milliseconds(50);
  absl::BitGen random;
  bool release_due = false;
  bool healthy = true;  // the last round succeeded (else only backoff wakes it)
  for (;;) {
    ReportLapsed();
    ForgetStaleBacklog();
    if (Clock::now() >= next_round || (release_due && healthy)) {
      const absl::Status status = Round();
      healthy = status.ok();
      if (status.ok()) {
        next_round = Clock::now() + absl::ToChronoMilliseconds(renew_period);
        backoff = absl::Milliseconds(50);
      } else {
        logging::Warn("shard lease round failed; retrying",
                      {{"orchestrator_id", options_.orchestrator_id},
                       {"error", std::string(status.message())}});
        connection_.reset();
        next_round = Clock::now() +
                     absl::ToChronoMilliseconds(absl::Milliseconds(
                         absl::Uniform(random, 0.5, 1.0) * absl::ToDoubleMilliseconds(backoff)));
        backoff = std::min(backoff * 2, renew_period);
      }
      ReportLapsed();
    }
    absl::MutexLock lock(&mutex_);
    while (paused_ && !stopping_) wake_.Wait(&mutex_);
    if (stopping_) return;
    // Wakes for the next round, the first deadline, a Release or a stop.
    Clock::time_point until = next_round;
    for (const auto& [shard, held] : held_) until = std::min(until, held.deadline);
    const Clock::time_point now = Clock::now();
    if ((to_release_.empty() || !healthy) && until > now) {
      wake_.WaitWithTimeout(&mutex_, absl::FromChrono(until - now));
    }
    release_due = !to_release_.empty();
    while (paused_ && !stopping_) wake_.Wait(&mutex_);
    if (stopping_) return;
  }
}

absl::Status ShardLeaseManager::Round() {
  return postgres::GuardAs(kComponent, "renew", where_, secrets_, [&]() -> absl::Status {
    if (connection_ == nullptr) {
      if (absl::Status connected = Connect(); !connected.ok()) return connected;
    }
    std::vector<int> renew_shards, release_shards;
    std::vector<int64_t> renew_tokens, release_tokens;
    {
      absl::MutexLock lock(&mutex_);
      for (const auto& [shard, held] : held_) {
        renew_shards.push_back(static_cast<int>(shard));
        renew_tokens.push_back(held.token);
      }
      for (const auto& [shard, token] : to_release_) {
        release_shards.push_back(static_cast<int>(shard));
        release_tokens.push_back(token);
      }
    }
    const int64_t ttl_ms = absl::ToInt64Milliseconds(options_.ttl);
    const std::string& me = options_.orchestrator_id;
    // This member's backlog as the engine last published it (a moment
    // older than the heartbeat, by the engine's last change at most).
    const std::string backlog =
        options_.backlog != nullptr ? BacklogJson(options_.backlog->Own()) : "{}";
    // Before the transaction: PostgreSQL's now() (its start) is later, so a
    // deadline counted from here passes before the server-side expiry.
    const Clock::time_point began = Clock::now();
    pqxx::work tx(*connection_);
    tx.exec_params0(
        "INSERT INTO orchestrators (id, address, heartbeat_at, backlog) "
        "VALUES ($1, $2, now(), $3::jsonb) "
        "ON CONFLICT (id) DO UPDATE SET address = excluded.address, "
        "heartbeat_at = excluded.heartbeat_at, backlog = excluded.backlog",
        me, options_.address, backlog);
    if (!release_shards.empty()) {
      tx.exec_params0(
          "UPDATE shard_leases l SET owner = NULL, expires_at = NULL "
          "FROM unnest($1::int[], $2::bigint[]) AS r(shard, token) "
          "WHERE l.shard = r.shard AND l.token = r.token AND l.owner = $3",
          postgres::IntArrayLiteral(release_shards), postgres::IntArrayLiteral(release_tokens), me);
    }
    absl::flat_hash_set<uint32_t> renewed;
    if (!renew_shards.empty()) {
      const pqxx::result rows = tx.exec_params(
          "UPDATE shard_leases l SET expires_at = now() + $4 * interval '1 millisecond' "
          "FROM unnest($1::int[], $2::bigint[]) AS o(shard, token) "
          "WHERE l.shard = o.shard AND l.token = o.token AND l.owner = $3 "
          "AND l.expires_at > now() RETURNING l.shard",
          postgres::IntArrayLiteral(renew_shards), postgres::IntArrayLiteral(renew_tokens), me,
          ttl_ms);
      for (const pqxx::row& row : rows) renewed.insert(row[0].as<uint32_t>());
    }
    // The live members, and what each published with its heartbeat (a
    // member that stopped heartbeating drops out of both after the ttl).
    const pqxx::result members = tx.exec_params(
        "SELECT id, address, backlog::text FROM orchestrators "
        "WHERE heartbeat_at > now() - $1 * interval '1 millisecond' ORDER BY id",
        ttl_ms);
    ShardMembership membership;
    QueueBacklogs others;
    uint32_t rank = 0;
    bool ranked = false;
    for (const pqxx::row& row : members) {
      membership.members.push_back({row[0].as<std::string>(), row[1].as<std::string>("")});
      if (membership.members.back().id == me) {
        ranked = true;
      } else if (options_.backlog != nullptr) {
        AddBacklog(row[2].as<std::string>(""), others);  // NULL: none published
      }
      if (!ranked) ++rank;
    }
    const uint32_t live = std::max<uint32_t>(1, static_cast<uint32_t>(members.size()));
    const uint32_t share =
        options_.shard_count / live + (rank < options_.shard_count % live ? 1 : 0);
    std::vector<ShardLease> acquired;
    if (share > renewed.size()) {
      const pqxx::result rows = tx.exec_params(
          "UPDATE shard_leases SET owner = $1, token = token + 1, "
          "expires_at = now() + $2 * interval '1 millisecond' "
          "WHERE shard IN (SELECT shard FROM shard_leases "
          "WHERE owner IS NULL OR expires_at IS NULL OR expires_at <= now() "
          "ORDER BY shard FOR UPDATE SKIP LOCKED LIMIT $3) "
          "RETURNING shard, token",
          me, ttl_ms, static_cast<int64_t>(share - renewed.size()));
      for (const pqxx::row& row : rows) {
        acquired.push_back({row[0].as<uint32_t>(), row[1].as<int64_t>()});
      }
    }
    // Who owns what, for the directory (named in "not owned" answers):
    // shard_count small rows, read in the round's snapshot.
    membership.owners.resize(options_.shard_count);
    if (callbacks_.observed) {
      for (const pqxx::row& row : tx.exec("SELECT shard, owner FROM shard_leases "
                                          "WHERE owner IS NOT NULL AND expires_at > now()")) {
        const int shard = row[0].as<int>();
        if (shard >= 0 && static_cast<uint32_t>(shard) < options_.shard_count) {
          membership.owners[shard] = row[1].as<std::string>();
        }
      }
      for (const ShardLease& lease : acquired) membership.owners[lease.shard] = me;
    }
    tx.commit();

    const Clock::time_point deadline =
        began + absl::ToChronoMilliseconds(options_.ttl - options_.ttl / 5);
    if (options_.backlog != nullptr) {
      options_.backlog->SetOthers(std::move(others));
      others_deadline_ = deadline;
    }
    std::vector<uint32_t> lost, releasing;
    {
      absl::MutexLock lock(&mutex_);
      for (size_t i = 0; i < release_shards.size(); ++i) {
        auto it = to_release_.find(static_cast<uint32_t>(release_shards[i]));
        if (it != to_release_.end() && it->second == release_tokens[i]) to_release_.erase(it);
      }
      for (size_t i = 0; i < renew_shards.size(); ++i) {
        const uint32_t shard = static_cast<uint32_t>(renew_shards[i]);
        auto it = held_.find(shard);
        if (it == held_.end() || it->second.token != renew_tokens[i]) continue;  // released
        if (renewed.contains(shard)) {
          it->second.deadline = deadline;
        } else {
          held_.erase(it);
          lost.push_back(shard);
        }
      }
      for (const ShardLease& lease : acquired) {
        held_[lease.shard] = Held{lease.token, deadline, false};
      }
      // Hand-over: the shards above the fair share, highest first, are
      // asked back once each.
      size_t keeping = 0;
      std::vector<uint32_t> candidates;
      for (const auto& [shard, held] : held_) {
        if (!held.releasing) {
          ++keeping;
          candidates.push_back(shard);
        }
      }
      if (keeping > share) {
        std::sort(candidates.begin(), candidates.end(), std::greater<>());
        for (size_t i = 0; i < keeping - share; ++i) {
          held_[candidates[i]].releasing = true;
          releasing.push_back(candidates[i]);
        }
      }
    }
    if (!lost.empty() || !acquired.empty() || !releasing.empty()) {
      logging::Info("shard leases changed",
                    {{"orchestrator_id", me},
                     {"members", static_cast<int64_t>(live)},
                     {"share", static_cast<int64_t>(share)},
                     {"acquired", static_cast<int64_t>(acquired.size())},
                     {"lost", static_cast<int64_t>(lost.size())},
                     {"releasing", static_cast<int64_t>(releasing.size())}});
    }
    for (uint32_t shard : lost) {
      if (callbacks_.lost) callbacks_.lost(shard);
    }
    for (const ShardLease& lease : acquired) {
      if (callbacks_.acquired) callbacks_.acquired(lease.shard, lease.token);
    }
    for (uint32_t shard : releasing) {
      if (callbacks_.releasing) callbacks_.releasing(shard);
    }
    if (callbacks_.observed) callbacks_.observed(std::move(membership));
    return absl::OkStatus();
  });
}

}  // namespace gyre::orchestrator
