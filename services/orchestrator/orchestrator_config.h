#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_CONFIG_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_CONFIG_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/config_schema.h"
#include "services/orchestrator/desired_workers.h"

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
  // Autoscaling policy per worker type; types not listed get the default.
  std::map<std::string, WorkerPoolPolicy> worker_pools;
  WorkerPoolPolicy default_worker_pool;
  // Hashes ("sha256:<hex>", from `gyre hash-token`) of the join tokens an
  // agent must present before it is given any work; several for rotation.
  // Empty: registration is open (gyre dev), with a warning at start.
  std::vector<std::string> agent_join_token_hashes;

  void Register(config::ConfigSchema* schema);
  // Cross-field checks (heartbeat below lease timeout, pool bounds).
  absl::Status Validate() const;
  // The postgres password: GYRE_POSTGRES_PASSWORD when set, else the
  // content of postgres_password_file, else "" (the DSN's or libpq's own,
  // e.g. ~/.pgpass). Setting both is an error. Errors never quote it.
  absl::StatusOr<std::string> PostgresPassword() const;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_CONFIG_H_
