#include "services/gateway/gateway_module.h"

#include "libs/logging/logger.h"
#include "services/gateway/gateway_routes.h"

ABSL_FLAG(std::string, http_address, "", "REST/WebSocket listen address (host:port)");
ABSL_FLAG(std::string, orchestrator_address, "", "orchestrator gRPC address (host:port)");

namespace gyre::gateway {

void GatewayModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddAddress("http_address", &config_.http_address, "REST/WebSocket listen address");
  schema->AddAddress("orchestrator_address", &config_.orchestrator_address,
                     "orchestrator gRPC address");
  schema->AddInt("http_threads", &config_.http_threads, 1, 64, "HTTP I/O threads");
  schema->AddInt("max_body_bytes", &config_.max_body_bytes, 1024, 64 << 20,
                 "largest accepted request body in bytes");
}

std::vector<config::ConfigOverride> GatewayModule::FlagOverrides() {
  std::vector<config::ConfigOverride> overrides;
  server::AppendFlagOverride(&overrides, "http_address", FLAGS_http_address);
  server::AppendFlagOverride(&overrides, "orchestrator_address", FLAGS_orchestrator_address);
  return overrides;
}

absl::Status GatewayModule::AddServices(server::ServiceHost* host) {
  host->AddHealthName("gyre.gateway");
  return absl::OkStatus();
}

absl::Status GatewayModule::OnServing(server::ServiceHost* /*host*/) {
  HttpServer::Options options;
  options.address = config_.http_address;
  options.threads = static_cast<int>(config_.http_threads);
  options.max_body_bytes = static_cast<size_t>(config_.max_body_bytes);
  http_ = std::make_unique<HttpServer>(options, RouteGatewayRequest);
  if (absl::Status status = http_->Start(); !status.ok()) return status;
  logging::Info("http serving", {{"http_port", http_->port()}});
  return absl::OkStatus();
}

void GatewayModule::OnShutdown(absl::Duration /*grace*/) {
  if (http_ != nullptr) http_->Stop();
}

}  // namespace gyre::gateway
