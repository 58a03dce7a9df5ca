#include "libs/server/service_main.h"

#include <signal.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/common/version.h"
#include "libs/logging/logger.h"
#include "libs/server/listen_check.h"
#include "libs/server/termination_signals.h"

namespace gyre::server {
namespace {

bool AsksFor(int argc, char** argv, std::initializer_list<absl::string_view> names) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    for (absl::string_view name : names) {
      if (arg == name) return true;
    }
  }
  return false;
}

// Every setting as a flag, with its help and default, on stdout: generated
// from the schema, so a key cannot be left out.
void PrintUsage(const ServiceMainInfo& info, const config::ConfigSchema& schema) {
  std::string usage = absl::StrCat(
      "usage: ", info.binary_name, " [--flag=value]...\n",
      "Settings come from a YAML file (--config=FILE), then GYRE_* environment variables\n"
      "(GYRE_ + the key in upper case, e.g. GYRE_LOG_LEVEL), then flags, each later source\n"
      "overriding the earlier; docs/configuration.md describes every key. Flags:\n"
      "  --config=FILE\n      YAML file of settings (keys as below)\n");
  absl::StrAppend(&usage, config::SettingsFlagsHelp(schema));
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

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

int RunServiceMain(int argc, char** argv, const ServiceMainInfo& info, ServiceModule* module) {
  DisableMutexDeadlockDetection();
  ServerConfig server_config;
  server_config.grpc_address = info.default_grpc_address;
  server_config.metrics_address = info.default_metrics_address;
  config::ConfigSchema schema;
  server_config.Register(&schema);
  module->RegisterConfig(&schema);

  if (AsksFor(argc, argv, {"-h", "--help", "-help", "--helpfull"})) {
    PrintUsage(info, schema);
    return kExitOk;
  }
  if (AsksFor(argc, argv, {"--version", "-version"})) {
    std::printf("%s %s\n", info.binary_name.c_str(), kGyreVersion);
    return kExitOk;
  }
  BlockTerminationSignals();
  signal(SIGPIPE, SIG_IGN);  // a closed peer is an error on the socket, not a crash

  absl::StatusOr<config::CommandLineSettings> flags =
      config::ParseSettingsFlags(schema, std::vector<std::string>(argv + 1, argv + argc));
  if (!flags.ok()) return ConfigError(info, flags.status());
  config::ConfigSources sources;
  sources.file_path = flags->config_file;
  sources.flags = std::move(flags->flags);
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
