#include "services/orchestrator/orchestrator_config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/nearest_match.h"
#include "libs/postgres/postgres_password.h"

namespace gyre::orchestrator {
namespace {

absl::Status DecodePool(const YAML::Node& node, WorkerPoolPolicy* policy) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError("expected a map with min, max and factor");
  }
  static const std::vector<std::string> kKeys = {"min", "max", "factor"};
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    int64_t value = 0;
    if (key != "min" && key != "max" && key != "factor") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key \"", key, "\"", DidYouMean(key, kKeys)));
    }
    if (!entry.second.IsScalar() || !absl::SimpleAtoi(entry.second.Scalar(), &value)) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": expected an integer"));
    }
    if (key == "min") policy->min_workers = value;
    if (key == "max") policy->max_workers = value;
    if (key == "factor") policy->tasks_per_worker = value;
  }
  return policy->Validate();
}

absl::Status DecodePrice(const YAML::Node& node, ResourcePrices* price) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError("expected a map with core_hour, gib_hour and gpu_hour");
  }
  static const std::vector<std::string> kKeys = {"core_hour", "gib_hour", "gpu_hour"};
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    double value = 0;
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key \"", key, "\"", DidYouMean(key, kKeys)));
    }
    if (!entry.second.IsScalar() || !absl::SimpleAtod(entry.second.Scalar(), &value) || value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": expected a number >= 0"));
    }
    if (key == "core_hour") price->core_hour = value;
    if (key == "gib_hour") price->gib_hour = value;
    if (key == "gpu_hour") price->gpu_hour = value;
  }
  return absl::OkStatus();
}

}  // namespace

void OrchestratorConfig::Register(config::ConfigSchema* schema) {
  schema->AddChoice("store", &store, {"embedded", "postgres"}, "state store backend");
  schema->AddString("data_dir", &data_dir, "directory of the embedded store");
  schema->AddString("postgres_dsn", &postgres_dsn,
                    "libpq connection string of the postgres store (password apart)");
  schema->AddString("postgres_password_file", &postgres_password_file,
                    "file holding the postgres password (or env GYRE_POSTGRES_PASSWORD)");
  schema->AddBool("postgres_projection", &postgres_projection,
                  "store: postgres: keep the relational tables in step with the records");
  schema->AddBool("postgres_sharding", &postgres_sharding,
                  "store: postgres: several orchestrators share the database by shard leases");
  schema->AddString("orchestrator_id", &orchestrator_id,
                    "this orchestrator's id among those sharing the database "
                    "(empty: host:pid:nonce)");
  schema->AddString("advertised_address", &advertised_address,
                    "host:port others and clients reach this orchestrator's gRPC API at "
                    "(empty: the listen address, with the host name for 0.0.0.0)");
  schema->AddDuration("shard_lease_ttl", &shard_lease_ttl,
                      "how long a shard lease lasts (renewed every third of it)");
  schema->AddDuration("postgres_retry_for", &postgres_retry_for,
                      "how long the postgres store reconnects before the orchestrator stops");
  schema->AddDuration("store_outage_wait", &store_outage_wait,
                      "how long a write waits while the store cannot commit (then UNAVAILABLE)");
  schema->AddBool("fsync", &fsync, "fdatasync every group commit");
  schema->AddInt("min_free_disk_bytes", &min_free_disk_bytes, 0, int64_t{1} << 50,
                 "free bytes in data_dir below which new executions are refused (0: no check)");
  schema->AddStringList("agent_join_token_hashes", &agent_join_token_hashes,
                        "hashes (gyre hash-token) of the join tokens agents must present; "
                        "empty: any agent may register");
  schema->AddString("predictor_address", &predictor_address,
                    "host:port of gyre-predictor (empty: no predictor)");
  schema->AddInt("predictor_observation_buffer", &predictor_observation_buffer, 1, 10'000'000,
                 "observations held for gyre-predictor while it is unreachable; the oldest "
                 "are dropped past it");
  schema->AddInt("snapshot_every_records", &snapshot_every_records, 0, int64_t{1} << 40,
                 "records between snapshots of the whole state (0: never)");
  schema->AddDuration("retention_finished_executions", &retention.finished_executions,
                      "a finished execution, its task runs, events and logs are forgotten "
                      "this long after it ended (0: kept for ever)");
  schema->AddDuration("retention_task_logs", &retention.task_logs,
                      "attempts' stdout/stderr tails are dropped this long after their "
                      "execution ended (0: kept for ever)");
  schema->AddInt("retention_batch", &retention.batch, 1, 100'000,
                 "executions one retention pass forgets (and whose logs it drops) at most");
  schema->AddDuration("retention_interval", &retention.interval,
                      "between background retention passes (0: no passes)");
  schema->AddDuration("lease_timeout", &lease_timeout,
                      "silence after which an agent is declared dead");
  schema->AddDuration("heartbeat_interval", &heartbeat_interval, "agent heartbeat period");
  schema->AddString("scheduler_address", &scheduler_address,
                    "gyre-scheduler host:port ranking ready tasks (empty: local order only)");
  schema->AddDuration("scheduler_deadline", &scheduler_deadline,
                      "how long one RankAndPlace call to the scheduler may take");
  schema->AddString("task_library_dir", &task_library_dir,
                    "directory of task-library YAML files loaded at start");
  schema->AddInt("max_workflow_tasks", &max_workflow_tasks, 1, 10'000'000,
                 "tasks one workflow definition may hold");
  schema->AddInt("max_workflow_edges", &max_workflow_edges, 0, 100'000'000,
                 "dependencies (depends_on entries) one workflow definition may hold");
  schema->AddInt("executions_per_second_per_client", &executions_per_second_per_client, 0,
                 1'000'000, "executions one client may start per second (0: unlimited)");
  schema->AddInt("execution_burst_per_client", &execution_burst_per_client, 0, 1'000'000,
                 "executions one client may start at once (0: one second's worth)");
  schema->AddInt("max_streams_per_client", &max_streams_per_client, 0, 1'000'000,
                 "streams (watch, run execution, agent connect) one client may hold open "
                 "(0: unlimited)");
  schema->AddInt("max_inflight_calls_per_client", &max_inflight_calls_per_client, 0, 1'000'000,
                 "unary calls one client may have in flight (0: unlimited)");
  schema->AddInt("max_event_streams", &max_event_streams, 1, 1'000'000,
                 "event streams (watch, run execution) open at once, all clients together");
  schema->AddCustom(
      "worker_pools",
      [this](const YAML::Node& value) -> absl::Status {
        if (!value.IsMap()) {
          return absl::InvalidArgumentError("expected a map of worker type to {min, max, factor}");
        }
        std::map<std::string, WorkerPoolPolicy> pools;
        for (const auto& entry : value) {
          const std::string name = entry.first.Scalar();
          if (absl::Status status = DecodePool(entry.second, &pools[name]); !status.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(name, ": ", status.message()));
          }
        }
        worker_pools = std::move(pools);
        return absl::OkStatus();
      },
      /*structured=*/true, "autoscaling policy per worker type: {min, max, factor}",
      [this] {
        std::vector<std::string> pools;
        for (const auto& [name, policy] : worker_pools) {
          pools.push_back(absl::StrCat(name, ": {min: ", policy.min_workers,
                                       ", max: ", policy.max_workers,
                                       ", factor: ", policy.tasks_per_worker, "}"));
        }
        return absl::StrCat("{", absl::StrJoin(pools, ", "), "}");
      });
  schema->AddCustom(
      "worker_prices",
      [this](const YAML::Node& value) -> absl::Status {
        if (!value.IsMap()) {
          return absl::InvalidArgumentError(
              "expected a map of worker type to {core_hour, gib_hour, gpu_hour}");
        }
        std::map<std::string, ResourcePrices> prices;
        for (const auto& entry : value) {
          const std::string name = entry.first.Scalar();
          if (absl::Status status = DecodePrice(entry.second, &prices[name]); !status.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(name, ": ", status.message()));
          }
        }
        task_cost.prices = std::move(prices);
        return absl::OkStatus();
      },
      /*structured=*/true,
      "price per worker type: {core_hour, gib_hour, gpu_hour} (gyre_task_cost_total, gyre plan)");
  schema->AddDuration("forecast_interval", &forecast_interval,
                      "how often orchestrator_forecast_workers is refreshed from the predictor");
  schema->AddDuration("forecast_default_task_duration", &forecast_default_task_duration,
                      "a task's expected duration in the load forecast when nothing else says");
  schema->AddStringList("cost_labels", &task_cost.label_keys,
                        "task label keys gyre_task_cost_total is broken down by (at most 8)");
}

absl::Status OrchestratorConfig::Validate() const {
  if (absl::Status status = task_cost.Validate(); !status.ok()) return status;
  if (forecast_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "forecast_interval (", absl::FormatDuration(forecast_interval), ") must be at least 1s"));
  }
  if (forecast_default_task_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("forecast_default_task_duration: must be positive");
  }
  if (heartbeat_interval >= lease_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat_interval (", absl::FormatDuration(heartbeat_interval),
        ") must be shorter than lease_timeout (", absl::FormatDuration(lease_timeout), ")"));
  }
  if (postgres_retry_for <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("postgres_retry_for: must be positive");
  }
  if (store_outage_wait <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("store_outage_wait: must be positive");
  }
  if (store == "embedded" && data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: must not be empty for the embedded store");
  }
  if (store == "postgres" && postgres_dsn.empty()) {
    return absl::InvalidArgumentError(
        "postgres_dsn: must be set for store: postgres (e.g. \"host=db dbname=gyre user=gyre\")");
  }
  if (postgres_sharding) {
    if (store != "postgres") {
      return absl::InvalidArgumentError(
          absl::StrCat("postgres_sharding: needs store: postgres (store is ", store, ")"));
    }
    // The lease manager's floor (kMinTtl there); a ceiling keeps a typo
    // ("10m") from leaving a dead orchestrator's shards unserved for long.
    if (shard_lease_ttl < absl::Milliseconds(300) || shard_lease_ttl > absl::Minutes(5)) {
      return absl::InvalidArgumentError(absl::StrCat("shard_lease_ttl (",
                                                     absl::FormatDuration(shard_lease_ttl),
                                                     ") must be between 300ms and 5m"));
    }
    constexpr size_t kMaxOrchestratorIdBytes = 200;  // as the lease manager's
    if (orchestrator_id.size() > kMaxOrchestratorIdBytes) {
      return absl::InvalidArgumentError(absl::StrCat("orchestrator_id: ", orchestrator_id.size(),
                                                     " bytes; at most ", kMaxOrchestratorIdBytes));
    }
    for (const char c : orchestrator_id) {
      if (c <= ' ' || c > '~') {
        return absl::InvalidArgumentError(
            "orchestrator_id: printable ASCII without spaces only (it is logged and shown)");
      }
    }
    if (!advertised_address.empty() && advertised_address.rfind(':') == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("advertised_address: \"", advertised_address,
                                                     "\" has no port (host:port expected)"));
    }
  }
  return absl::OkStatus();
}

std::string OrchestratorConfig::DefaultOrchestratorId() {
  static const std::string id = [] {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
      std::snprintf(host, sizeof(host), "localhost");
    }
    absl::BitGen random;
    char nonce[9];
    std::snprintf(nonce, sizeof(nonce), "%08x", absl::Uniform<uint32_t>(random));
    return absl::StrCat(host, ":", getpid(), ":", nonce);
  }();
  return id;
}

std::string OrchestratorConfig::OrchestratorId() const {
  return orchestrator_id.empty() ? DefaultOrchestratorId() : orchestrator_id;
}

std::string OrchestratorConfig::AdvertisedAddress(const std::string& listen_address,
                                                  int bound_port) const {
  if (!advertised_address.empty()) return advertised_address;
  std::string host = listen_address;
  const size_t colon = host.rfind(':');
  if (colon != std::string::npos) host.resize(colon);
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty()) {
    char name[256] = {};
    host = gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0' ? name : "localhost";
  }
  return absl::StrCat(host, ":", bound_port);
}

absl::StatusOr<std::string> OrchestratorConfig::PostgresPassword() const {
  return ::gyre::postgres::ReadPostgresPassword(postgres_password_file);
}

}  // namespace gyre::orchestrator
