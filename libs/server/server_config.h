#ifndef GYRE_LIBS_SERVER_SERVER_CONFIG_H_
#define GYRE_LIBS_SERVER_SERVER_CONFIG_H_

#include <string>

#include "absl/time/time.h"
#include "libs/config/config_schema.h"
#include "libs/security/tls_config.h"

namespace gyre::server {

// Settings every Gyre service process has, whatever it serves.
struct ServerConfig {
  // gRPC listen address; port 0 picks a free port (logged at start).
  std::string grpc_address;
  // Prometheus /metrics listen address, on its own port.
  std::string metrics_address;
  // Minimum log level: debug, info, warn or error.
  std::string log_level = "info";
  // Log lines as JSON or text; auto: text on a terminal, else JSON.
  std::string log_format = "auto";
  // How long in-flight RPCs may take to drain on SIGTERM before they are
  // cancelled.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // TLS of the gRPC port, and of this process's calls to other Gyre
  // services (the same identity both ways).
  security::TlsConfig tls;

  // Declares grpc_address, metrics_address, log_level, log_format,
  // shutdown_grace and the TLS keys (security::TlsConfig).
  void Register(config::ConfigSchema* schema);
};

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_SERVER_CONFIG_H_
