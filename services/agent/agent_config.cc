#include "services/agent/agent_config.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/security/join_token.h"
#include "services/agent/orchestrator_members.h"

namespace gyre::agent {

void AgentConfig::Register(config::ConfigSchema* schema) {
  schema->AddCustom(
      "orchestrator_address",
      [this](const YAML::Node& value) -> absl::Status {
        const std::string text = value.IsScalar() ? value.Scalar() : "";
        if (absl::StatusOr<std::vector<std::string>> entries = ParseOrchestratorAddresses(text);
            !entries.ok()) {
          return entries.status();
        }
        orchestrator_address = text;
        return absl::OkStatus();
      },
      /*structured=*/false,
      "orchestrator gRPC address(es) to connect to: host:port, comma-separated for several; a "
      "DNS name connects to each of its addresses",
      [this] { return orchestrator_address; });
  schema->AddDuration("orchestrator_resolve_interval", &orchestrator_resolve_interval,
                      "how often DNS names in orchestrator_address are resolved again");
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
      /*structured=*/false, "agent id, stable across restarts (default: name + random suffix)",
      [this] { return id; });
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
      /*structured=*/true, "labels matched against task requirements",
      [this] {
        return absl::StrCat("{", absl::StrJoin(labels, ", ", absl::PairFormatter(": ")), "}");
      });
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
      /*structured=*/false, "CPU cores offered (0: detect)", [this] { return absl::StrCat(cpu); });
  schema->AddInt("memory_bytes", &memory_bytes, 0, int64_t{1} << 50,
                 "memory offered in bytes (0: detect)");
  schema->AddInt("gpus", &gpus, 0, 1024, "GPUs offered (0: detect)");
  schema->AddString("work_dir", &work_dir, "root of per-task working directories");
  schema->AddBool("keep_work_dirs", &keep_work_dirs,
                  "keep each attempt's working directory after it ends");
  schema->AddInt("max_output_bytes", &max_output_bytes, 0, int64_t{1} << 30,
                 "stdout/stderr kept per task and stream, in bytes");
  schema->AddDuration("kill_grace", &kill_grace, "time between SIGTERM and SIGKILL");
  schema->AddDuration("start_report_delay", &start_report_delay,
                      "how long a task runs before it is reported started (a task that ends "
                      "sooner sends only its result)");
  schema->AddDuration("result_linger", &result_linger,
                      "how long a result waits for others to share its message while more "
                      "processes run than the agent has CPUs (0: at once)");
  schema->AddString("run_as_user", &run_as_user,
                    "user tasks run as, a name or number (default: the agent's)");
  schema->AddString("run_as_group", &run_as_group,
                    "group tasks run as (default: run_as_user's primary group)");
  schema->AddBool("allow_root_tasks", &allow_root_tasks,
                  "let tasks run as root (else a root agent needs run_as_user)");
  schema->AddInt("rlimit_open_files", &rlimit_open_files, 0, int64_t{1} << 20,
                 "open files per task, RLIMIT_NOFILE (0: unchanged)");
  schema->AddInt("rlimit_core_bytes", &rlimit_core_bytes, -1, int64_t{1} << 50,
                 "core dump size per task in bytes, RLIMIT_CORE (-1: unchanged)");
  schema->AddInt("rlimit_processes", &rlimit_processes, 0, int64_t{1} << 22,
                 "processes of the task's user, RLIMIT_NPROC (0: unchanged)");
  schema->AddBool("cgroups", &cgroups,
                  "enforce tasks' declared memory and CPU in a cgroup per task when possible");
  schema->AddStringList("gpu_devices", &gpu_devices,
                        "GPU device ids handed out, one task per device (default: 0..gpus-1)");
  schema->AddString("join_token", &join_token,
                    "token presented to the orchestrator before any work (secret)");
  schema->AddString("join_token_file", &join_token_file, "file holding the join token");
  schema->AddString("detection_root", &detection_root,
                    "directory /dev, /proc and /sys/fs/cgroup are read under to detect cpu, "
                    "memory and GPUs (a test's fake tree)");
}

absl::StatusOr<std::optional<RunAs>> ResolveTaskUser(const AgentConfig& config) {
  std::optional<RunAs> run_as;
  if (!config.run_as_user.empty()) {
    const long size_hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(size_hint > 0 ? static_cast<size_t>(size_hint) : 16384);
    passwd entry{};
    passwd* found = nullptr;
    uint32_t uid = 0;
    if (absl::SimpleAtoi(config.run_as_user, &uid)) {
      getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
    } else {
      getpwnam_r(config.run_as_user.c_str(), &entry, buffer.data(), buffer.size(), &found);
      if (found == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("run_as_user: no user \"", config.run_as_user, "\" on this machine"));
      }
      uid = found->pw_uid;
    }
    run_as =
        RunAs{uid, found != nullptr ? found->pw_gid : uid, found != nullptr ? found->pw_dir : "/"};
  }
  if (!config.run_as_group.empty()) {
    if (!run_as.has_value()) {
      return absl::InvalidArgumentError("run_as_group needs run_as_user");
    }
    uint32_t gid = 0;
    if (!absl::SimpleAtoi(config.run_as_group, &gid)) {
      const long size_hint = sysconf(_SC_GETGR_R_SIZE_MAX);
      std::vector<char> buffer(size_hint > 0 ? static_cast<size_t>(size_hint) : 16384);
      group entry{};
      group* found = nullptr;
      getgrnam_r(config.run_as_group.c_str(), &entry, buffer.data(), buffer.size(), &found);
      if (found == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("run_as_group: no group \"", config.run_as_group, "\" on this machine"));
      }
      gid = found->gr_gid;
    }
    run_as->gid = gid;
  }
  const bool as_root = run_as.has_value() ? run_as->uid == 0 : geteuid() == 0;
  if (as_root && !config.allow_root_tasks) {
    return absl::FailedPreconditionError(
        "refusing to run tasks as root: set run_as_user to an unprivileged user (e.g. nobody), "
        "or allow_root_tasks: true to accept it");
  }
  // Running as oneself needs no switch.
  if (run_as.has_value() && run_as->uid == geteuid() && run_as->gid == getegid()) {
    return std::optional<RunAs>();
  }
  return run_as;
}

std::vector<ResourceLimit> TaskRlimits(const AgentConfig& config) {
  std::vector<ResourceLimit> limits;
  if (config.rlimit_open_files > 0) {
    limits.push_back({RLIMIT_NOFILE, static_cast<rlim_t>(config.rlimit_open_files)});
  }
  if (config.rlimit_core_bytes >= 0) {
    limits.push_back({RLIMIT_CORE, static_cast<rlim_t>(config.rlimit_core_bytes)});
  }
  if (config.rlimit_processes > 0) {
    limits.push_back({RLIMIT_NPROC, static_cast<rlim_t>(config.rlimit_processes)});
  }
  return limits;
}

std::vector<std::string> GpuDeviceList(const AgentConfig& config) {
  if (!config.gpu_devices.empty()) return config.gpu_devices;
  std::vector<std::string> devices;
  for (int64_t i = 0; i < config.gpus; ++i) devices.push_back(absl::StrCat(i));
  return devices;
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
