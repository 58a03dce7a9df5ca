#ifndef GYRE_SERVICES_AGENT_AGENT_MODULE_H_
#define GYRE_SERVICES_AGENT_AGENT_MODULE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

#include "libs/common/clock.h"
#include "libs/server/service_main.h"
#include "services/agent/agent_client.h"
#include "services/agent/agent_config.h"
#include "services/agent/orchestrator_link.h"
#include "services/agent/orchestrator_members.h"

namespace gyre::agent {

// The agent process: serves health and metrics, and (with the workflow
// engine) holds one stream to each orchestrator and runs assigned tasks.
class AgentModule : public server::ServiceModule {
 public:
  void RegisterConfig(config::ConfigSchema* schema) override { config_.Register(schema); }
  // Reads the join token (join_token_file) and the orchestrator addresses.
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;
  // Connects to the orchestrator and starts taking work.
  absl::Status OnServing(server::ServiceHost* host) override;
  // Stops taking work; running tasks get the grace period.
  // (Resources the config leaves at 0 are detected at OnServing.)
  void OnShutdown(absl::Duration grace) override;

  AgentConfig& mutable_config() { return config_; }
  // Overrides how the orchestrator is reached (gyre dev: in the same
  // process); by default over gRPC at orchestrator_address.
  void set_orchestrator_link(std::shared_ptr<OrchestratorLink> link) { link_ = std::move(link); }
  // The clock the agent's heartbeats, backoff, drain and task timeouts run
  // on (a test's FakeClock); the real one by default. Set before serving.
  void set_clock(Clock* clock) { clock_ = clock; }

 private:
  // Fills in the cpu, memory and GPUs the config leaves at 0 from the
  // machine (resource_detection.h) and logs what the agent offers.
  void OfferResources();
  // Several orchestrators (or a DNS name): one link per member, kept while
  // the member stays (called by the resolver).
  void SetMembers(const std::vector<OrchestratorMember>& members, const security::TlsConfig& tls);

  AgentConfig config_;
  std::string join_token_;  // resolved in ValidateConfig; never logged
  std::shared_ptr<OrchestratorLink> link_;
  Clock* clock_ = Clock::Real();
  std::unique_ptr<AgentClient> client_;
  std::vector<std::string> orchestrator_entries_;  // from orchestrator_address
  // Only with several entries or a DNS name; destroyed before client_.
  std::unique_ptr<OrchestratorResolver> resolver_;
  absl::flat_hash_map<std::string, std::shared_ptr<OrchestratorLink>> member_links_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_MODULE_H_
