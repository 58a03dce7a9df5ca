#include "services/agent/agent_module.h"

#include <grpcpp/create_channel.h>

#include "libs/server/api_service_module.h"
#include "prometheus/counter.h"

namespace gyre::agent {

absl::Status AgentModule::ValidateConfig() {
  absl::StatusOr<std::string> token = config_.JoinToken();
  if (!token.ok()) return token.status();
  join_token_ = *std::move(token);
  return absl::OkStatus();
}

absl::Status AgentModule::AddServices(server::ServiceHost* host) {
  host->AddHealthName(server::ComponentHealthName("agent"));
  return absl::OkStatus();
}

absl::Status AgentModule::OnServing(server::ServiceHost* host) {
  // A root agent runs no task as root unless told it may.
  if (absl::StatusOr<std::optional<RunAs>> user = ResolveTaskUser(config_); !user.ok()) {
    return user.status();
  }
  if (link_ == nullptr) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        NewOrchestratorChannel(config_.orchestrator_address, host->config().tls);
    if (!channel.ok()) return channel.status();
    link_ = NewGrpcOrchestratorLink(*channel, join_token_);
  }
  client_ = std::make_unique<AgentClient>(config_, link_, clock_);
  client_->set_oom_kill_counter(&prometheus::BuildCounter()
                                     .Name("gyre_agent_tasks_oom_killed_total")
                                     .Help("Task attempts ended by the kernel's OOM killer "
                                           "(their cgroup's memory limit was reached)")
                                     .Register(host->metrics_registry())
                                     .Add({}));
  client_->Start();
  return absl::OkStatus();
}

void AgentModule::OnShutdown(absl::Duration grace) {
  if (client_ != nullptr) client_->Drain(grace);
  client_.reset();
}

}  // namespace gyre::agent
