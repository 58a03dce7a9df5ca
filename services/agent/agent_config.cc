#include "services/agent/agent_config.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/security/join_token.h"

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
  schema->AddString("join_token", &join_token,
                    "token presented to the orchestrator before any work (secret)");
  schema->AddString("join_token_file", &join_token_file, "file holding the join token");
}

absl::StatusOr<std::string> AgentConfig::JoinToken() const {
  if (!join_token.empty() && !join_token_file.empty()) {
    return absl::InvalidArgumentError(
        "join_token and join_token_file (or GYRE_JOIN_TOKEN) are both set; keep one");
  }
  if (join_token_file.empty()) return join_token;
  std::ifstream file(join_token_file, std::ios::binary);
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("join_token_file ", join_token_file, ": cannot be read"));
  }
  std::string token(security::kMaxJoinTokenBytes + 1, '\0');
  file.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<size_t>(file.gcount()));
  if (token.size() > security::kMaxJoinTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat("join_token_file ", join_token_file,
                                                   ": larger than a join token may be (",
                                                   security::kMaxJoinTokenBytes, " bytes)"));
  }
  // A Secret written with `echo` ends with a newline that is not the token's.
  return std::string(absl::StripAsciiWhitespace(token));
}

}  // namespace gyre::agent
