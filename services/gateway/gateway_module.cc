#include "services/gateway/gateway_module.h"

#include "libs/logging/logger.h"
#include "libs/server/api_service_module.h"
#include "services/gateway/gateway_routes.h"

namespace gyre::gateway {

void GatewayModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddAddress("http_address", &config_.http_address, "REST/WebSocket listen address");
  schema->AddAddress("orchestrator_address", &config_.orchestrator_address,
                     "orchestrator gRPC address");
  schema->AddInt("http_threads", &config_.http_threads, 1, 64, "HTTP I/O threads");
  schema->AddInt("max_body_bytes", &config_.max_body_bytes, 1024, 64 << 20,
                 "largest accepted request body in bytes");
}

absl::Status GatewayModule::AddServices(server::ServiceHost* host) {
  host->AddHealthName(server::ComponentHealthName("gateway"));
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
