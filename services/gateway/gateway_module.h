#ifndef GYRE_SERVICES_GATEWAY_GATEWAY_MODULE_H_
#define GYRE_SERVICES_GATEWAY_GATEWAY_MODULE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/security/server_ssl_context.h"
#include "libs/security/tls_config.h"
#include "libs/server/service_main.h"
#include "services/gateway/authenticator.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/http_server.h"
#include "services/gateway/rest_api.h"

namespace gyre::gateway {

// Settings of the gateway beyond the common server ones.
struct GatewayConfig {
  std::string http_address = "0.0.0.0:8080";
  std::string orchestrator_address = "127.0.0.1:50051";
  // gyre-optimizer for /api/v1/optimization/*; empty: those answer 501.
  std::string optimizer_address;
  // gyre-predictor for /api/v1/resources/predict; empty: it answers 501.
  std::string predictor_address;
  int64_t http_threads = 2;
  int64_t max_body_bytes = 4 << 20;
  int64_t max_header_bytes = 16 << 10;
  int64_t max_connections = 10000;
  absl::Duration read_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration backend_timeout = absl::Seconds(10);
  // "NAME:ROLE[:TENANT]:SHA256HEX" per key; the keys themselves are never
  // configured.
  std::vector<std::string> api_keys;
  // HTTP Basic users, "NAME:ROLE:TENANT:ARGON2ID_PHC" each.
  std::vector<std::string> basic_users;
  // JWT bearer tokens: on when a secret, a key file or a JWKS is set.
  JwtAuthenticator::Options jwt;
  // WebSocket subscribers: how far one may fall behind and for how long its
  // socket may accept nothing before it is closed (1013), its kernel send
  // buffer, and the idle time after which it is
  // pinged (half) and dropped (all).
  int64_t ws_max_lag_events = 4096;
  absl::Duration ws_stall_timeout = absl::Seconds(2);
  int64_t ws_send_buffer_bytes = 256 << 10;
  absl::Duration ws_idle_timeout = absl::Seconds(60);
  int64_t ws_max_workflow_executions = 100;
  // Per principal: requests a minute (0: no limit) and the burst.
  int64_t rate_limit_per_minute = 1000;
  int64_t rate_limit_burst = 100;
  // Browser origins allowed by CORS ("*" for any); none by default.
  std::vector<std::string> cors_origins;
  // Threads that run Argon2id for HTTP Basic (off the I/O threads).
  int64_t password_workers = 2;
  // The audit log's JSON lines go here; empty: into the service log.
  std::string audit_log_file;
  // HTTPS and WSS on http_address: the http_tls_* keys (a public
  // certificate is usually not the gRPC ports' internal one). Off when
  // http_tls_cert_file is empty; the process-wide require_tls refuses that.
  security::TlsConfig http_tls;
};

// The gateway process: REST/WebSocket front door for API clients. Hosts the
// HTTP server next to the gRPC health service.
class GatewayModule : public server::ServiceModule {
 public:
  void RegisterConfig(config::ConfigSchema* schema) override;
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;
  absl::Status OnServing(server::ServiceHost* host) override;
  void OnShutdown(absl::Duration grace) override;

  GatewayConfig& mutable_config() { return config_; }
  int http_port() const { return http_ != nullptr ? http_->port() : 0; }

  // Calls the orchestrator over `channel` instead of dialling
  // orchestrator_address (gyre dev: the in-process channel), and follows
  // event streams over `watch_channel` (gyre dev: loopback; gRPC's
  // in-process transport loses a stream's last message when the server
  // sends it with its status, as WatchBatches does).
  void set_orchestrator_channel(std::shared_ptr<grpc::Channel> channel,
                                std::shared_ptr<grpc::Channel> watch_channel) {
    orchestrator_channel_ = std::move(channel);
    watch_channel_ = std::move(watch_channel);
  }
  // Forwards /api/v1/optimization/* over `channel` (gyre dev: the
  // in-process channel, where the optimizer is hosted too).
  void set_optimizer_channel(std::shared_ptr<grpc::Channel> channel) {
    optimizer_channel_ = std::move(channel);
  }
  // Forwards /api/v1/resources/predict over `channel` (gyre dev: the
  // in-process channel, where the predictor is hosted too).
  void set_predictor_channel(std::shared_ptr<grpc::Channel> channel) {
    predictor_channel_ = std::move(channel);
  }
  // Adds an admin API key given in clear (gyre dev's dev_api_key); only its
  // hash is kept.
  void AddAdminKey(const std::string& key, const std::string& principal_name);

 private:
  GatewayConfig config_;
  std::shared_ptr<Authenticator> authenticator_ = std::make_shared<Authenticator>();
  std::shared_ptr<grpc::Channel> orchestrator_channel_;
  std::shared_ptr<grpc::Channel> watch_channel_;
  std::shared_ptr<grpc::Channel> optimizer_channel_;
  std::shared_ptr<grpc::Channel> predictor_channel_;
  std::unique_ptr<GatewayMetrics> metrics_;
  std::unique_ptr<AuditLog> audit_log_;
  std::unique_ptr<RestApi> api_;
  std::shared_ptr<security::ServerSslContext> http_tls_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_GATEWAY_MODULE_H_
