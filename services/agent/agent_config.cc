#include "services/agent/agent_config.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gyre::agent {

void AgentConfig::Register(config::ConfigSchema* schema) {
  schema->AddAddress("orchestrator_address", &orchestrator_address,
                     "orchestrator gRPC address to connect to");
  schema->AddString("name", &name, "agent name (default: host name)");
  schema->AddCustom(
      "id",
      [this](const YAML::Node& value) -> absl::Status {
        const std::string parsed = value.IsScalar() ? value.Scalar() : "";
        const bool valid = !parsed.empty() && parsed.size() <= 63 &&
                           absl::ascii_isalnum(parsed[0]) &&
                           std::all_of(parsed.begin(), parsed.end(), [](char c) {
                             return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
                           });
        if (!valid) {
          return absl::InvalidArgumentError(absl::StrCat(
              "invalid agent id \"", parsed,
              "\" (expected 1 to 63 lowercase letters, digits and '-', starting with a letter "
              "or digit)"));
        }
        id = parsed;
        return absl::OkStatus();
      },
      /*structured=*/false, "agent id, stable across restarts (default: name + random suffix)");
  schema->AddInt("slots", &slots, 1, 4096, "tasks run at once");
  schema->AddStringList("queues", &queues, "queues (worker types) served");
  schema->AddCustom(
      "labels",
      [this](const YAML::Node& value) -> absl::Status {
        if (!value.IsMap() && !value.IsNull()) {
          return absl::InvalidArgumentError("expected a map of label names to values");
        }
        std::map<std::string, std::string> parsed;
        for (const auto& entry : value) {
          if (!entry.second.IsScalar()) {
            return absl::InvalidArgumentError(
                absl::StrCat("label \"", entry.first.Scalar(), "\" must have a string value"));
          }
          parsed[entry.first.Scalar()] = entry.second.Scalar();
        }
        labels = std::move(parsed);
        return absl::OkStatus();
      },
      /*structured=*/true, "labels matched against task requirements");
  schema->AddCustom(
      "cpu",
      [this](const YAML::Node& value) -> absl::Status {
        double parsed = 0;
        if (!value.IsScalar() || !absl::SimpleAtod(value.Scalar(), &parsed) || parsed < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid CPU count \"", value.IsScalar() ? value.Scalar() : "",
                           "\" (expected a non-negative number of cores)"));
        }
        cpu = parsed;
        return absl::OkStatus();
      },
      /*structured=*/false, "CPU cores offered (0: detect)");
  schema->AddInt("memory_bytes", &memory_bytes, 0, int64_t{1} << 50,
                 "memory offered in bytes (0: detect)");
  schema->AddInt("gpus", &gpus, 0, 1024, "GPUs offered");
  schema->AddString("work_dir", &work_dir, "root of per-task working directories");
  schema->AddBool("keep_work_dirs", &keep_work_dirs,
                  "keep each attempt's working directory after it ends");
  schema->AddInt("max_output_bytes", &max_output_bytes, 0, int64_t{1} << 30,
                 "stdout/stderr kept per task and stream, in bytes");
  schema->AddDuration("kill_grace", &kill_grace, "time between SIGTERM and SIGKILL");
}

}  // namespace gyre::agent
