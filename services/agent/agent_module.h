#ifndef GYRE_SERVICES_AGENT_AGENT_MODULE_H_
#define GYRE_SERVICES_AGENT_AGENT_MODULE_H_

#include <grpcpp/channel.h>

#include <memory>

#include "libs/server/service_main.h"
#include "services/agent/agent_client.h"
#include "services/agent/agent_config.h"

namespace gyre::agent {

// The agent process: serves health and metrics, and (with the workflow
// engine) holds one stream to the orchestrator and runs assigned tasks.
class AgentModule : public server::ServiceModule {
 public:
  void RegisterConfig(config::ConfigSchema* schema) override { config_.Register(schema); }
  absl::Status AddServices(server::ServiceHost* host) override;
  // Connects to the orchestrator and starts taking work.
  absl::Status OnServing(server::ServiceHost* host) override;
  // Stops taking work; running tasks get the grace period.
  void OnShutdown(absl::Duration grace) override;

  AgentConfig& mutable_config() { return config_; }
  // Overrides the channel to the orchestrator (gyre dev: in-process).
  void set_orchestrator_channel(std::shared_ptr<grpc::Channel> channel) {
    channel_ = std::move(channel);
  }

 private:
  AgentConfig config_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<AgentClient> client_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_MODULE_H_
