#ifndef GYRE_CMD_GYRE_DEV_SUITE_MODULE_H_
#define GYRE_CMD_GYRE_DEV_SUITE_MODULE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "libs/server/service_main.h"

namespace gyre::cli {

// Settings of `gyre dev` beyond the common server ones.
struct DevConfig {
  // Directory of the embedded durable store (and of the agent's work).
  std::string data_dir = ".gyre-dev";
  // The orchestrator's store: "embedded" or "postgres" (then postgres_dsn,
  // and the password by GYRE_POSTGRES_PASSWORD or postgres_password_file),
  // as for gyre-orchestrator (docs/configuration.md, "PostgreSQL").
  std::string store = "embedded";
  std::string postgres_dsn;
  std::string postgres_password_file;
  // REST/WebSocket address of the embedded gateway.
  std::string http_address = "127.0.0.1:8080";
  // Task slots of the embedded agent; 0 means one per CPU core.
  int64_t agent_slots = 0;
  // A workflow file to run once the suite is up (the suite keeps serving).
  std::string run;
  // Directory of task-library YAML files for ScheduleOutcome (`gyre
  // schedule`); empty: none.
  std::string task_library_dir;
  // Admin API key of the embedded gateway; generated (and printed with an
  // example curl) when empty. Only its hash is kept once the suite is up.
  std::string dev_api_key;
};

// `gyre dev`: the whole suite in one process. Every service module
// (orchestrator, agent, scheduler, optimizer, predictor, gateway) registers
// on one gRPC server; components that call each other do so over in-process
// channels, with no network hop. Once up, it checks all six health names
// over gRPC and prints one summary line.
class DevSuiteModule : public server::ServiceModule {
 public:
  DevSuiteModule();
  ~DevSuiteModule() override;

  void RegisterConfig(config::ConfigSchema* schema) override;
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;
  absl::Status OnServing(server::ServiceHost* host) override;
  void OnShutdown(absl::Duration grace) override;
  void OnStopped() override;

 private:
  absl::Status ReportHealth(server::ServiceHost* host);
  // "http://HOST:PORT" of the gateway, with the port it bound.
  std::string BoundHttpAddress() const;
  // Prints the REST API's address and an example curl.
  void PrintApiAccess();

  DevConfig config_;
  bool generated_api_key_ = false;
  std::thread run_thread_;
  class Components;
  std::unique_ptr<Components> components_;
};

// gyre dev's flags, for shell completion: "--key=" for each setting that
// takes a value, "--key" for a bool, and --config= and --help.
std::vector<std::string> DevFlagNames();

// The six component names, in start order.
const std::vector<std::string>& DevComponents();

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_DEV_SUITE_MODULE_H_
