#include "services/agent/agent_module.h"

#include "libs/server/api_service_module.h"

namespace gyre::agent {

absl::Status AgentModule::AddServices(server::ServiceHost* host) {
  host->AddHealthName(server::ComponentHealthName("agent"));
  return absl::OkStatus();
}

}  // namespace gyre::agent
