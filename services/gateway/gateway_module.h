#ifndef GYRE_SERVICES_GATEWAY_GATEWAY_MODULE_H_
#define GYRE_SERVICES_GATEWAY_GATEWAY_MODULE_H_

#include <memory>
#include <string>

#include "libs/server/service_main.h"
#include "services/gateway/http_server.h"

namespace gyre::gateway {

// Settings of the gateway beyond the common server ones.
struct GatewayConfig {
  std::string http_address = "0.0.0.0:8080";
  std::string orchestrator_address = "127.0.0.1:50051";
  int64_t http_threads = 2;
  int64_t max_body_bytes = 4 << 20;
};

// The gateway process: REST/WebSocket front door for API clients. Hosts the
// HTTP server next to the gRPC health service.
class GatewayModule : public server::ServiceModule {
 public:
  void RegisterConfig(config::ConfigSchema* schema) override;
  absl::Status AddServices(server::ServiceHost* host) override;
  absl::Status OnServing(server::ServiceHost* host) override;
  void OnShutdown(absl::Duration grace) override;

  GatewayConfig& mutable_config() { return config_; }
  int http_port() const { return http_ != nullptr ? http_->port() : 0; }

 private:
  GatewayConfig config_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_GATEWAY_MODULE_H_
