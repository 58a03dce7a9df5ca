#include "services/orchestrator/orchestrator_config.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/nearest_match.h"

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

}  // namespace

void OrchestratorConfig::Register(config::ConfigSchema* schema) {
  schema->AddChoice("store", &store, {"embedded", "postgres"}, "state store backend");
  schema->AddString("data_dir", &data_dir, "directory of the embedded store");
  schema->AddString("postgres_dsn", &postgres_dsn,
                    "libpq connection string of the postgres store (password apart)");
  schema->AddString("postgres_password_file", &postgres_password_file,
                    "file holding the postgres password (or env GYRE_POSTGRES_PASSWORD)");
  schema->AddBool("fsync", &fsync, "fdatasync every group commit");
  schema->AddInt("min_free_disk_bytes", &min_free_disk_bytes, 0, int64_t{1} << 50,
                 "free bytes in data_dir below which new executions are refused (0: no check)");
  schema->AddStringList("agent_join_token_hashes", &agent_join_token_hashes,
                        "hashes (gyre hash-token) of the join tokens agents must present; "
                        "empty: any agent may register");
  schema->AddInt("snapshot_every_records", &snapshot_every_records, 0, int64_t{1} << 40,
                 "records between snapshots of the whole state (0: never)");
  schema->AddDuration("lease_timeout", &lease_timeout,
                      "silence after which an agent is declared dead");
  schema->AddDuration("heartbeat_interval", &heartbeat_interval, "agent heartbeat period");
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
      /*structured=*/true, "autoscaling policy per worker type: {min, max, factor}");
}

absl::Status OrchestratorConfig::Validate() const {
  if (heartbeat_interval >= lease_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat_interval (", absl::FormatDuration(heartbeat_interval),
        ") must be shorter than lease_timeout (", absl::FormatDuration(lease_timeout), ")"));
  }
  if (store == "embedded" && data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: must not be empty for the embedded store");
  }
  if (store == "postgres" && postgres_dsn.empty()) {
    return absl::InvalidArgumentError(
        "postgres_dsn: must be set for store: postgres (e.g. \"host=db dbname=gyre user=gyre\")");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> OrchestratorConfig::PostgresPassword() const {
  const char* from_env = std::getenv("GYRE_POSTGRES_PASSWORD");
  if (from_env != nullptr && !postgres_password_file.empty()) {
    return absl::InvalidArgumentError(
        "postgres password: both GYRE_POSTGRES_PASSWORD and postgres_password_file are set; "
        "keep one");
  }
  if (from_env != nullptr) return std::string(from_env);
  if (postgres_password_file.empty()) return std::string();
  std::ifstream file(postgres_password_file, std::ios::binary);
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("postgres_password_file: cannot read ", postgres_password_file));
  }
  // A password is short; a large file is the wrong file.
  constexpr size_t kMaxPasswordBytes = 4096;
  std::string password(kMaxPasswordBytes + 1, '\0');
  file.read(password.data(), static_cast<std::streamsize>(password.size()));
  password.resize(static_cast<size_t>(file.gcount()));
  if (password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("postgres_password_file: ", postgres_password_file, " is over ",
                     kMaxPasswordBytes, " bytes: not a password"));
  }
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("postgres_password_file: ", postgres_password_file, " is empty"));
  }
  return password;
}

}  // namespace gyre::orchestrator
