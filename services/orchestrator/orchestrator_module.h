#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_MODULE_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_MODULE_H_

#include <memory>

#include "gyre/v1/workflow.pb.h"
#include "libs/security/join_token.h"
#include "libs/server/service_main.h"
#include "services/orchestrator/orchestrator_config.h"

namespace gyre::durable_log {
class DirectoryLock;
}  // namespace gyre::durable_log

namespace gyre::orchestrator {

class DiskSpaceGuard;
class OrchestratorServiceImpl;
class AgentServiceImpl;
class WorkflowEngine;
class StateStore;

// The orchestrator process: hosts gyre.v1.OrchestratorService (the public
// API) and gyre.v1.AgentService (the agents' stream) over one engine.
class OrchestratorModule : public server::ServiceModule {
 public:
  OrchestratorModule();
  ~OrchestratorModule() override;

  void RegisterConfig(config::ConfigSchema* schema) override { config_.Register(schema); }
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;
  void OnShutdown(absl::Duration grace) override;
  void OnStopped() override;

  OrchestratorConfig& mutable_config() { return config_; }
  // The engine, once AddServices created it (for the agent embedded in
  // gyre dev); null before.
  WorkflowEngine* engine() { return engine_.get(); }

 private:
  // Makes data_dir this process's alone, or says in one line why not.
  absl::Status ClaimDataDir();

  OrchestratorConfig config_;
  // Held while the process runs: one orchestrator (or gyre dev) per data_dir.
  std::unique_ptr<durable_log::DirectoryLock> data_dir_lock_;
  std::shared_ptr<const gyre::v1::WorkflowDefinition> task_library_;
  std::unique_ptr<StateStore> store_;
  std::string postgres_password_;            // resolved in ValidateConfig; never logged
  security::JoinTokenVerifier join_tokens_;  // from the config, in ValidateConfig
  std::unique_ptr<WorkflowEngine> engine_;
  std::unique_ptr<DiskSpaceGuard> disk_space_guard_;  // before api_service_, which uses it
  std::unique_ptr<OrchestratorServiceImpl> api_service_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_MODULE_H_
