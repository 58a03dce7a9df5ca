#include "services/orchestrator/orchestrator_module.h"

#include "libs/server/api_service_module.h"
#include "services/orchestrator/agent_service.h"
#include "services/orchestrator/orchestrator_service.h"

namespace gyre::orchestrator {

OrchestratorModule::OrchestratorModule() = default;
OrchestratorModule::~OrchestratorModule() = default;

absl::Status OrchestratorModule::ValidateConfig() {
  if (config_.store == "postgres") {
    return absl::UnimplementedError(
        "store: \"postgres\" is not implemented yet in this version of Gyre (use \"embedded\")");
  }
  return config_.Validate();
}

absl::Status OrchestratorModule::AddServices(server::ServiceHost* host) {
  api_service_ = std::make_unique<OrchestratorServiceImpl>();
  agent_service_ = std::make_unique<AgentServiceImpl>();
  host->AddService(api_service_.get(), "gyre.v1.OrchestratorService");
  host->AddService(agent_service_.get(), "gyre.v1.AgentService");
  host->AddHealthName(server::ComponentHealthName("orchestrator"));
  return absl::OkStatus();
}

}  // namespace gyre::orchestrator
