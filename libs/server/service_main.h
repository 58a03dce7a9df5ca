#ifndef GYRE_LIBS_SERVER_SERVICE_MAIN_H_
#define GYRE_LIBS_SERVER_SERVICE_MAIN_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/config/config_loader.h"
#include "libs/config/config_schema.h"
#include "libs/server/service_host.h"

namespace gyre::server {

// What one service binary contributes to the shared main(). The shared part
// parses flags, loads and validates config, sets up logging, hosts the gRPC
// server with health/reflection/metrics, and handles SIGTERM/SIGINT.
class ServiceModule {
 public:
  virtual ~ServiceModule() = default;

  // Declares the service's own config keys, beyond ServerConfig's.
  virtual void RegisterConfig(config::ConfigSchema* schema) = 0;

  // Cross-field validation after all sources are loaded.
  virtual absl::Status ValidateConfig() { return absl::OkStatus(); }

  // Creates the service objects and registers them on `host`, before it
  // starts serving. FailedPrecondition or PermissionDenied (IsSetupError)
  // mean the machine is not as the config needs it (data_dir locked by
  // another process or not writable): the message is printed as one line
  // and the process exits 2, like a config error.
  virtual absl::Status AddServices(ServiceHost* host) = 0;

  // Starts background work once the host is serving.
  virtual absl::Status OnServing(ServiceHost* /*host*/) { return absl::OkStatus(); }

  // Called on SIGTERM/SIGINT before the gRPC server drains: stop taking new
  // work and finish or hand back what is in flight within `grace`.
  virtual void OnShutdown(absl::Duration /*grace*/) {}

  // Called once the server has drained and no RPC runs any more: the last
  // chance to leave state tidy (e.g. a snapshot for a fast next start).
  virtual void OnStopped() {}
};

// Static facts about one service binary.
struct ServiceMainInfo {
  std::string binary_name;   // "gyre-orchestrator", prefixes config errors
  std::string service_name;  // "orchestrator", the service field of logs
  std::string default_grpc_address;
  std::string default_metrics_address;
};

// Exit codes of every Gyre binary.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntimeError = 1;
inline constexpr int kExitConfigError = 2;

// The whole main() of a service binary. Returns the process exit code:
// 0 after a clean shutdown, 2 for bad flags or config and for a setup the
// operator must fix (a listen port in use, data_dir locked or not writable)
// (one line on stderr naming the flag, key, file or directory), 1 when the
// service cannot start for another reason.
int RunServiceMain(int argc, char** argv, const ServiceMainInfo& info, ServiceModule* module);

// Turns Abseil's mutex deadlock detector off for a long-running process.
// Debian builds libabsl without NDEBUG, which leaves the detector on: every
// Lock() updates a global lock-order graph, about 4% of the gateway's CPU
// under load. Service mains and `gyre` call this first; unit tests do not,
// so lock-order cycles are still caught there.
void DisableMutexDeadlockDetection();

// True for the start-up failures that are the operator's to fix rather
// than Gyre's (see ServiceModule::AddServices).
bool IsSetupError(const absl::Status& status);

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_SERVICE_MAIN_H_
