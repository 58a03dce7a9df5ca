#include "services/gateway/gateway_module.h"

#include "libs/logging/logger.h"
#include "libs/security/grpc_credentials.h"
#include "libs/server/api_service_module.h"

namespace gyre::gateway {

void GatewayModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddListenAddress("http_address", &config_.http_address, "REST/WebSocket listen address");
  schema->AddAddress("orchestrator_address", &config_.orchestrator_address,
                     "orchestrator gRPC address");
  schema->AddString("optimizer_address", &config_.optimizer_address,
                    "gyre-optimizer gRPC address for /api/v1/optimization (empty: 501)");
  schema->AddString("predictor_address", &config_.predictor_address,
                    "gyre-predictor gRPC address for /api/v1/resources/predict (empty: 501)");
  schema->AddInt("http_threads", &config_.http_threads, 1, 64, "HTTP I/O threads");
  schema->AddInt("max_body_bytes", &config_.max_body_bytes, 1024, 64 << 20,
                 "largest accepted request body in bytes");
  schema->AddInt("max_header_bytes", &config_.max_header_bytes, 1024, 1 << 20,
                 "largest accepted request header block in bytes");
  schema->AddInt("max_connections", &config_.max_connections, 1, 1 << 20,
                 "open HTTP connections; past it new ones get 503");
  schema->AddDuration("read_timeout", &config_.read_timeout, "time to receive one request body");
  schema->AddDuration("idle_timeout", &config_.idle_timeout,
                      "time a keep-alive connection may wait for its next request");
  schema->AddDuration("backend_timeout", &config_.backend_timeout,
                      "deadline of each orchestrator call (504 past it)");
  schema->AddInt("ws_max_lag_events", &config_.ws_max_lag_events, 16, 1 << 24,
                 "events a WebSocket subscriber may fall behind before it is closed (1013)");
  schema->AddDuration("ws_stall_timeout", &config_.ws_stall_timeout,
                      "how long a lagging WebSocket subscriber's socket may accept nothing");
  schema->AddInt("ws_send_buffer_bytes", &config_.ws_send_buffer_bytes, 4096, 64 << 20,
                 "kernel send buffer of each WebSocket connection");
  schema->AddDuration("ws_idle_timeout", &config_.ws_idle_timeout,
                      "WebSocket idle time: pinged after half, closed after all");
  schema->AddInt("ws_max_workflow_executions", &config_.ws_max_workflow_executions, 1, 1000,
                 "executions a /ws/workflows/{id} subscriber follows at once (1008 past it)");
  schema->AddInt("rate_limit_per_minute", &config_.rate_limit_per_minute, 0, 100000000,
                 "requests a minute per principal (0: no limit)");
  schema->AddInt("rate_limit_burst", &config_.rate_limit_burst, 1, 100000000,
                 "requests a principal may send at once");
  schema->AddStringList("cors_origins", &config_.cors_origins,
                        "browser origins allowed by CORS (\"*\" for any)");
  schema->AddStringList("api_keys", &config_.api_keys,
                        "API keys as NAME:ROLE[:TENANT]:SHA256HEX (the key's SHA-256)");
  schema->AddString("audit_log_file", &config_.audit_log_file,
                    "file the audit log's JSON lines are appended to (empty: the service log)");
  schema->AddStringList("basic_users", &config_.basic_users,
                        "HTTP Basic users as NAME:ROLE:TENANT:ARGON2ID_HASH "
                        "(gyre-gateway hash-password)");
  schema->AddInt("password_workers", &config_.password_workers, 1, 64,
                 "threads hashing HTTP Basic passwords (Argon2id, 19 MiB each)");
  JwtAuthenticator::Options& jwt = config_.jwt;
  schema->AddString("jwt_issuer", &jwt.issuer, "required JWT iss (empty: any)");
  schema->AddString("jwt_audience", &jwt.audience, "required member of a JWT's aud (empty: any)");
  schema->AddString("jwt_hs256_secret", &jwt.hs256_secret,
                    "HS256 shared secret, at least 32 bytes (empty: HS256 refused)");
  schema->AddStringList("jwt_public_key_files", &jwt.rs256_public_key_files,
                        "RS256 public keys, PEM files");
  schema->AddString("jwt_jwks_file", &jwt.jwks_file,
                    "RS256 public keys, a JWKS file as an OIDC provider publishes it");
  schema->AddDuration("jwt_jwks_recheck", &jwt.jwks_recheck,
                      "how often jwt_jwks_file is checked for new keys (on use)");
  schema->AddString("jwt_subject_claim", &jwt.subject_claim, "JWT claim naming the principal");
  schema->AddString("jwt_role_claim", &jwt.role_claim,
                    "JWT claim holding the role (viewer, operator, admin)");
  schema->AddString("jwt_tenant_claim", &jwt.tenant_claim, "JWT claim holding the tenant");
  schema->AddDuration("jwt_clock_skew", &jwt.clock_skew,
                      "slack allowed on a JWT's exp and nbf for differing clocks");
  config_.http_tls.key_prefix = "http_";
  config_.http_tls.Register(schema);
}

absl::Status GatewayModule::ValidateConfig() {
  for (const std::string& entry : config_.api_keys) {
    if (absl::Status status = authenticator_->mutable_api_keys().AddConfigured(entry);
        !status.ok()) {
      return status;
    }
  }
  for (const std::string& entry : config_.basic_users) {
    if (absl::Status status = authenticator_->mutable_passwords().AddConfigured(entry);
        !status.ok()) {
      return status;
    }
  }
  const JwtAuthenticator::Options& jwt = config_.jwt;
  if (!jwt.hs256_secret.empty() || !jwt.rs256_public_key_files.empty() || !jwt.jwks_file.empty()) {
    absl::StatusOr<std::unique_ptr<JwtAuthenticator>> verifier = JwtAuthenticator::Create(jwt);
    if (!verifier.ok()) return verifier.status();
    authenticator_->set_jwt(*std::move(verifier));
  }
  if (jwt.clock_skew < absl::ZeroDuration() || jwt.clock_skew > absl::Minutes(10)) {
    return absl::InvalidArgumentError("jwt_clock_skew: must be within 0s..10m");
  }
  if (jwt.jwks_recheck < absl::ZeroDuration() || jwt.jwks_recheck > absl::Hours(1)) {
    return absl::InvalidArgumentError("jwt_jwks_recheck: must be within 0s..1h");
  }
  if (config_.read_timeout < absl::Seconds(1) || config_.idle_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError("read_timeout and idle_timeout: must be at least 1s");
  }
  // The certificate is loaded here, so a missing or bad file stops the
  // start with the key and file named.
  if (absl::Status status = config_.http_tls.Validate(/*as_server=*/true); !status.ok()) {
    return status;
  }
  if (config_.http_tls.ServerUsesTls()) {
    absl::StatusOr<std::unique_ptr<security::ServerSslContext>> tls =
        security::ServerSslContext::Create(config_.http_tls);
    if (!tls.ok()) return tls.status();
    http_tls_ = *std::move(tls);
  }
  return absl::OkStatus();
}

void GatewayModule::AddAdminKey(const std::string& key, const std::string& principal_name) {
  authenticator_->mutable_api_keys().AddKey(key,
                                            Principal{principal_name, Role::kAdmin, "default"});
}

absl::Status GatewayModule::AddServices(server::ServiceHost* host) {
  host->AddHealthName(server::ComponentHealthName("gateway"));
  return absl::OkStatus();
}

absl::Status GatewayModule::OnServing(server::ServiceHost* host) {
  // require_tls is the process's: no plaintext gRPC, no plaintext HTTP.
  if (host->config().tls.require_tls && http_tls_ == nullptr) {
    return absl::FailedPreconditionError(
        "require_tls is set but http_tls_cert_file is empty: plaintext HTTP is refused; set "
        "http_tls_cert_file and http_tls_key_file (and http_tls_ca_file for mutual TLS)");
  }
  if (orchestrator_channel_ == nullptr) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        security::NewChannel(config_.orchestrator_address, host->config().tls);
    if (!channel.ok()) return channel.status();
    orchestrator_channel_ = *std::move(channel);
  }
  if (authenticator_->empty()) {
    logging::Warn(
        "no credentials configured (api_keys, basic_users, jwt_*): every /api/v1 "
        "request is refused with 401",
        {});
  }
  RestApi::Options api_options;
  api_options.backend_timeout = config_.backend_timeout;
  api_options.websocket.max_lag_events = config_.ws_max_lag_events;
  api_options.websocket.stall_timeout_ms =
      static_cast<int>(std::max<int64_t>(10, absl::ToInt64Milliseconds(config_.ws_stall_timeout)));
  api_options.websocket.send_buffer_bytes = static_cast<int>(config_.ws_send_buffer_bytes);
  api_options.websocket.idle_timeout_seconds =
      std::max<int>(2, static_cast<int>(absl::ToInt64Seconds(config_.ws_idle_timeout)));
  api_options.websocket.max_workflow_executions =
      static_cast<int>(config_.ws_max_workflow_executions);
  api_options.rate_limit_per_minute = config_.rate_limit_per_minute;
  api_options.rate_limit_burst = config_.rate_limit_burst;
  api_options.cors_origins = config_.cors_origins;
  api_options.password_workers = static_cast<int>(config_.password_workers);
  // With the process's TLS settings, as the orchestrator's channel: a
  // plaintext channel would fail against a require_tls service.
  if (optimizer_channel_ == nullptr && !config_.optimizer_address.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        security::NewChannel(config_.optimizer_address, host->config().tls);
    if (!channel.ok()) return channel.status();
    optimizer_channel_ = *std::move(channel);
  }
  api_options.optimizer = optimizer_channel_;
  if (predictor_channel_ == nullptr && !config_.predictor_address.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        security::NewChannel(config_.predictor_address, host->config().tls);
    if (!channel.ok()) return channel.status();
    predictor_channel_ = *std::move(channel);
  }
  api_options.predictor = predictor_channel_;
  metrics_ = std::make_unique<GatewayMetrics>(host->metrics_registry());
  absl::StatusOr<std::unique_ptr<AuditLog>> audit =
      AuditLog::Open(config_.audit_log_file, metrics_.get());
  if (!audit.ok()) return audit.status();
  audit_log_ = *std::move(audit);
  api_options.audit_log = audit_log_.get();
  api_ = std::make_unique<RestApi>(orchestrator_channel_, authenticator_, api_options,
                                   metrics_.get(), watch_channel_);

  HttpServer::Options options;
  options.address = config_.http_address;
  options.threads = static_cast<int>(config_.http_threads);
  options.max_body_bytes = static_cast<size_t>(config_.max_body_bytes);
  options.max_header_bytes = static_cast<size_t>(config_.max_header_bytes);
  options.max_connections = static_cast<int>(config_.max_connections);
  options.read_timeout_seconds = static_cast<int>(absl::ToInt64Seconds(config_.read_timeout));
  options.idle_timeout_seconds = static_cast<int>(absl::ToInt64Seconds(config_.idle_timeout));
  options.tls = http_tls_;
  http_ = std::make_unique<HttpServer>(
      options, [api = api_.get()](HttpRequest request, HttpResponder respond) {
        api->Handle(std::move(request), std::move(respond));
      });
  if (absl::Status status = http_->Start(); !status.ok()) return status;
  logging::Info("http serving", {{"http_port", http_->port()}, {"tls", http_tls_ != nullptr}});
  return absl::OkStatus();
}

void GatewayModule::OnShutdown(absl::Duration /*grace*/) {
  if (http_ != nullptr) http_->Stop();
}

}  // namespace gyre::gateway
