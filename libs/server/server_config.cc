#include "libs/server/server_config.h"

namespace gyre::server {

void ServerConfig::Register(config::ConfigSchema* schema) {
  schema->AddListenAddress("grpc_address", &grpc_address, "gRPC listen address (host:port)");
  schema->AddListenAddress("metrics_address", &metrics_address,
                           "Prometheus /metrics listen address (host:port)");
  schema->AddChoice("log_level", &log_level, {"debug", "info", "warn", "error"},
                    "minimum level of log lines");
  schema->AddChoice("log_format", &log_format, {"auto", "json", "text"},
                    "log lines as JSON or text (auto: text when stderr is a terminal)");
  schema->AddDuration("shutdown_grace", &shutdown_grace,
                      "time in-flight RPCs get to finish after SIGTERM");
  tls.Register(schema);
}

}  // namespace gyre::server
