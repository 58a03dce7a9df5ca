#ifndef GYRE_SERVICES_AGENT_AGENT_MODULE_H_
#define GYRE_SERVICES_AGENT_AGENT_MODULE_H_

#include "libs/server/service_main.h"
#include "services/agent/agent_config.h"

namespace gyre::agent {

// The agent process: serves health and metrics, and (with the workflow
// engine) holds one stream to the orchestrator and runs assigned tasks.
class AgentModule : public server::ServiceModule {
 public:
  void RegisterConfig(config::ConfigSchema* schema) override { config_.Register(schema); }
  absl::Status AddServices(server::ServiceHost* host) override;

  AgentConfig& mutable_config() { return config_; }

 private:
  AgentConfig config_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_MODULE_H_
