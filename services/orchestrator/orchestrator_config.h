#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_CONFIG_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/config_schema.h"
#include "services/orchestrator/desired_workers.h"
#include "services/orchestrator/retention.h"
#include "services/orchestrator/task_cost_meter.h"

namespace gyre::orchestrator {

// Settings of the orchestrator beyond the common server ones.
struct OrchestratorConfig {
  // Storage backend: "embedded" (event log + snapshots in data_dir) or
  // "postgres" (the database at postgres_dsn).
  std::string store = "embedded";
  // libpq connection string of the postgres store (key=value or URI;
  // multi-host lists work). Its password is better given apart: the
  // environment variable GYRE_POSTGRES_PASSWORD or postgres_password_file.
  std::string postgres_dsn;
  // File whose content (a trailing newline dropped) is the postgres
  // password, e.g. a mounted Kubernetes secret.
  std::string postgres_password_file;
  // With store: postgres, keep the relational tables (executions, tasks,
  // task_runs, events...) in step with the record stream, in a background
  // thread (postgres_projector.h).
  bool postgres_projection = true;
  // With store: postgres, several orchestrators share the database by
  // shard leases (issue 21, docs/architecture.md "Shards and leases"):
  // each holds the executions of the shards it leases. False (default):
  // one orchestrator, the single-writer store.
  bool postgres_sharding = false;
  // This orchestrator's id among those sharing the database. Empty:
  // DefaultOrchestratorId() (host:pid:nonce).
  std::string orchestrator_id;
  // Where the others and clients reach this orchestrator's gRPC API (named
  // in "not owned" answers, used for forwarding). Empty: AdvertisedAddress()
  // derives it from the listen address.
  std::string advertised_address;
  // How long a shard lease (and a membership heartbeat) lasts; renewed
  // every third of it. A dead orchestrator's shards are taken over within
  // about 4/3 of it.
  absl::Duration shard_lease_ttl = absl::Seconds(10);
  // How long the postgres store keeps reconnecting after losing its
  // connection (readiness NOT_SERVING, writes waiting) before the
  // orchestrator stops (fail-stop) and restarts from what is durable.
  absl::Duration postgres_retry_for = absl::Minutes(2);
  // How long a write waits while the store cannot commit before it answers
  // UNAVAILABLE (WorkflowEngine::Options::store_outage_wait).
  absl::Duration store_outage_wait = absl::Seconds(10);
  // Directory of the embedded store.
  std::string data_dir = "/var/lib/gyre";
  // Below this many bytes free in data_dir, new workflows and executions
  // are refused (RESOURCE_EXHAUSTED) while running ones go on; 0: no check.
  int64_t min_free_disk_bytes = 128 << 20;
  // fdatasync each group commit; turning it off trades durability for speed.
  bool fsync = true;
  // Records between periodic snapshots of the whole state (a restart then
  // replays at most about this many); 0 disables them.
  int64_t snapshot_every_records = 200000;
  // Retention (docs/operations.md, "Retention"): how long finished
  // executions and their attempts' logs are kept (0: for ever), and how the
  // background passes that forget them run.
  RetentionOptions retention;
  // An agent silent this long is declared dead and its tasks re-queued.
  absl::Duration lease_timeout = absl::Seconds(30);
  // How often agents send heartbeats; well below lease_timeout.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // Directory of task-library YAML files loaded at start; empty for none.
  std::string task_library_dir;
  // Tasks and dependencies (depends_on entries) one workflow definition may
  // hold; a larger one is refused with INVALID_ARGUMENT naming the limit.
  int64_t max_workflow_tasks = 100'000;
  int64_t max_workflow_edges = 1'000'000;
  // Executions one client (the gateway's forwarded principal, else the peer
  // address) may start per second, and in a burst; 0: unlimited (default).
  int64_t executions_per_second_per_client = 0;
  int64_t execution_burst_per_client = 0;  // 0: one second's worth
  // Streams (Watch, WatchBatches, RunExecution, agent Connect) and unary
  // calls in flight one client may hold at once; 0: unlimited (default).
  int64_t max_streams_per_client = 0;
  int64_t max_inflight_calls_per_client = 0;
  // Event streams (Watch, WatchBatches, RunExecution) open at once, all
  // clients together: each holds a subscription the engine feeds.
  int64_t max_event_streams = 1024;
  // Autoscaling policy per worker type; types not listed get the default.
  std::map<std::string, WorkerPoolPolicy> worker_pools;
  WorkerPoolPolicy default_worker_pool;
  // Prices per worker type (worker_prices: {TYPE: {core_hour, gib_hour,
  // gpu_hour}}) and the task label keys costs are broken down by
  // (cost_labels), for gyre_task_cost_total and gyre plan.
  TaskCostOptions task_cost;
  // Hashes ("sha256:<hex>", from `gyre hash-token`) of the join tokens an
  // agent must present before it is given any work; several for rotation.
  // Empty: registration is open (gyre dev), with a warning at start.
  std::vector<std::string> agent_join_token_hashes;
  // host:port of gyre-predictor: each attempt's observation is forwarded to
  // it once durable, and tasks declaring no resources are placed with its
  // predictions. Empty: no predictor.
  std::string predictor_address;
  // How often the load forecaster asks the predictor for each worker type's
  // load (orchestrator_forecast_workers); needs predictor_address.
  absl::Duration forecast_interval = absl::Seconds(15);
  // Expected duration of a task whose duration nothing predicts or
  // declares, for the load forecast.
  absl::Duration forecast_default_task_duration = absl::Seconds(60);

  // gyre-scheduler's address (host:port); empty: local dispatch order only.
  // Dialled with the server's TLS settings, like every Gyre client.
  std::string scheduler_address;
  // How long one RankAndPlace may take before its round is dropped.
  absl::Duration scheduler_deadline = absl::Seconds(2);
  // Observations held while the predictor is down or slow; past this the
  // oldest are dropped (gyre_orchestrator_predictor_observations_dropped_total).
  int64_t predictor_observation_buffer = 100'000;

  void Register(config::ConfigSchema* schema);
  // Cross-field checks (heartbeat below lease timeout, pool bounds).
  absl::Status Validate() const;
  // The id used when orchestrator_id is empty: "host:pid:nonce", where the
  // nonce is 8 random hex digits drawn once per process. Stable for the
  // process's life, unique per process: hostname:pid alone repeats across
  // incarnations of one pod (every container's main process is pid 1), and
  // an incarnation stopped (SIGSTOP, a frozen cgroup) but not yet dead would
  // then share its membership row with its successor.
  static std::string DefaultOrchestratorId();
  // orchestrator_id, or the default.
  std::string OrchestratorId() const;
  // advertised_address, or `listen_address` with its port replaced by
  // `bound_port` (the port actually bound, for ":0") and a wildcard host
  // (0.0.0.0, ::, empty) replaced by this machine's host name.
  std::string AdvertisedAddress(const std::string& listen_address, int bound_port) const;
  // The postgres password: GYRE_POSTGRES_PASSWORD when set, else the
  // content of postgres_password_file, else "" (the DSN's or libpq's own,
  // e.g. ~/.pgpass). Setting both is an error. Errors never quote it.
  absl::StatusOr<std::string> PostgresPassword() const;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_CONFIG_H_
