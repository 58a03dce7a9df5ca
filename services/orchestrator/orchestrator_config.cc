#include "services/orchestrator/orchestrator_config.h"

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
  schema->AddBool("fsync", &fsync, "fdatasync every group commit");
  schema->AddInt("snapshot_every_records", &snapshot_every_records, 0, int64_t{1} << 40,
                 "records between snapshots of the whole state (0: never)");
  schema->AddDuration("lease_timeout", &lease_timeout,
                      "silence after which an agent is declared dead");
  schema->AddDuration("heartbeat_interval", &heartbeat_interval, "agent heartbeat period");
  schema->AddString("task_library_dir", &task_library_dir,
                    "directory of task-library YAML files loaded at start");
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
  return absl::OkStatus();
}

}  // namespace gyre::orchestrator
