#include "libs/server/service_main.h"

#include <signal.h>

#include <cstdio>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/common/nearest_match.h"
#include "libs/logging/logger.h"
#include "libs/server/listen_check.h"
#include "libs/server/termination_signals.h"

ABSL_FLAG(std::string, config, "",
          "YAML config file; GYRE_* environment variables and flags override it");
ABSL_FLAG(std::string, grpc_address, "", "gRPC listen address (host:port)");
ABSL_FLAG(std::string, metrics_address, "", "Prometheus /metrics listen address (host:port)");
ABSL_FLAG(std::string, log_level, "", "minimum log level: debug, info, warn, error");
ABSL_FLAG(std::string, log_format, "",
          "log lines: auto (text when stderr is a terminal, else JSON), json or text");
ABSL_FLAG(std::string, shutdown_grace, "", "time in-flight RPCs get after SIGTERM, e.g. 10s");

namespace gyre::server {
namespace {

std::vector<std::string> AllFlagNames() {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) names.push_back(absl::StrCat("--", name));
  return names;
}

bool AsksForHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "-help" || arg == "--helpfull") return true;
  }
  return false;
}

// The flags a service binary takes, with their help and defaults, on stdout.
void PrintUsage(const ServiceMainInfo& info) {
  std::vector<std::pair<std::string, std::string>> flags = {
      {"config", ""},
      {"grpc_address", info.default_grpc_address},
      {"metrics_address", info.default_metrics_address},
      {"log_level", "info"},
      {"log_format", "auto"},
      {"shutdown_grace", ""}};
  for (const FlagBinding& binding : info.flags) flags.emplace_back(binding.key, "");
  std::string usage = absl::StrCat(
      "usage: ", info.binary_name, " [--flag=value]...\n",
      "Settings come from a YAML file (--config), then GYRE_* environment variables (e.g.\n"
      "GYRE_LOG_LEVEL), then flags; docs/configuration.md lists every key. Flags:\n");
  for (const auto& [name, fallback] : flags) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    absl::StrAppend(&usage, "  --", name, "\n      ", flag->Help(),
                    fallback.empty() ? "" : absl::StrCat(" (default ", fallback, ")"), "\n");
  }
  std::fputs(usage.c_str(), stdout);
}

int ConfigError(const ServiceMainInfo& info, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", info.binary_name.c_str(), std::string(status.message()).c_str());
  return kExitConfigError;
}

}  // namespace

bool IsSetupError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition ||
         status.code() == absl::StatusCode::kPermissionDenied;
}

void AppendFlagOverride(std::vector<config::ConfigOverride>* overrides, absl::string_view key,
                        const absl::Flag<std::string>& flag) {
  std::string value = absl::GetFlag(flag);
  if (value.empty()) return;
  overrides->push_back({std::string(key), std::move(value), absl::StrCat("flag --", key)});
}

absl::Status CheckFlagsAreKnown(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::StartsWith(arg, "-") || arg == "-") continue;
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    const absl::string_view name = arg.substr(0, arg.find('='));
    if (absl::FindCommandLineFlag(name) != nullptr) continue;
    if (absl::StartsWith(name, "no") && absl::FindCommandLineFlag(name.substr(2)) != nullptr) {
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag --", name, DidYouMean(absl::StrCat("--", name), AllFlagNames()),
                     "; see --help"));
  }
  return absl::OkStatus();
}

int RunServiceMain(int argc, char** argv, const ServiceMainInfo& info, ServiceModule* module) {
  if (AsksForHelp(argc, argv)) {
    PrintUsage(info);
    return kExitOk;
  }
  BlockTerminationSignals();
  signal(SIGPIPE, SIG_IGN);  // a closed peer is an error on the socket, not a crash

  if (absl::Status status = CheckFlagsAreKnown(argc, argv); !status.ok()) {
    return ConfigError(info, status);
  }
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return ConfigError(info, absl::InvalidArgumentError(
                                 absl::StrCat("unexpected argument \"", positional[1],
                                              "\" (settings are flags such as --config=FILE)")));
  }

  ServerConfig server_config;
  server_config.grpc_address = info.default_grpc_address;
  server_config.metrics_address = info.default_metrics_address;
  config::ConfigSchema schema;
  server_config.Register(&schema);
  module->RegisterConfig(&schema);

  config::ConfigSources sources;
  sources.file_path = absl::GetFlag(FLAGS_config);
  AppendFlagOverride(&sources.flags, "grpc_address", FLAGS_grpc_address);
  AppendFlagOverride(&sources.flags, "metrics_address", FLAGS_metrics_address);
  AppendFlagOverride(&sources.flags, "log_level", FLAGS_log_level);
  AppendFlagOverride(&sources.flags, "log_format", FLAGS_log_format);
  AppendFlagOverride(&sources.flags, "shutdown_grace", FLAGS_shutdown_grace);
  for (const FlagBinding& binding : info.flags) {
    AppendFlagOverride(&sources.flags, binding.key, *binding.flag);
  }
  if (absl::Status status = config::LoadConfig(schema, sources); !status.ok()) {
    return ConfigError(info, status);
  }
  if (absl::Status status = module->ValidateConfig(); !status.ok()) {
    return ConfigError(info, status);
  }
  if (absl::Status status = server_config.tls.Validate(/*as_server=*/true); !status.ok()) {
    return ConfigError(info, status);
  }

  // Every port this process will listen on, before anything starts: a
  // taken one is one line and exit 2, not a library's text half-way up.
  for (const config::ConfigSchema::Field& field : schema.fields()) {
    if (field.listen_address == nullptr) continue;
    if (absl::Status status = CheckListenAddressFree(field.key, *field.listen_address);
        !status.ok()) {
      return ConfigError(info, status);
    }
  }

  logging::Init(info.service_name, *logging::ParseLevel(server_config.log_level));
  logging::SetFormat(*logging::ParseFormat(server_config.log_format));
  logging::CaptureGrpcLogs();
  for (const std::string& warning :
       config::UnknownEnvironmentWarnings(schema, config::EnvironmentNames())) {
    logging::Warn(warning);
  }

  ServiceHost host(info.service_name, server_config);
  absl::Status status = module->AddServices(&host);
  if (status.ok()) status = host.Start();
  if (status.ok()) status = module->OnServing(&host);
  if (IsSetupError(status)) return ConfigError(info, status);
  if (!status.ok()) {
    logging::Error("cannot start", {{"error", std::string(status.message())}});
    return kExitRuntimeError;
  }

  const int signal_number = WaitForTerminationSignal();
  logging::Info("termination signal received", {{"signal", strsignal(signal_number)}});
  module->OnShutdown(server_config.shutdown_grace);
  host.Shutdown();
  module->OnStopped();
  return kExitOk;
}

}  // namespace gyre::server
