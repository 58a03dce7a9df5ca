// gyre-gateway: REST/WebSocket front door for API clients.
#include "libs/server/service_main.h"
#include "services/gateway/gateway_module.h"

ABSL_FLAG(std::string, http_address, "", "REST/WebSocket listen address (host:port)");
ABSL_FLAG(std::string, orchestrator_address, "", "orchestrator gRPC address (host:port)");

int main(int argc, char** argv) {
  gyre::gateway::GatewayModule module;
  return gyre::server::RunServiceMain(argc, argv,
                                      {"gyre-gateway",
                                       "gateway",
                                       "0.0.0.0:50056",
                                       "0.0.0.0:9106",
                                       {{"http_address", &FLAGS_http_address},
                                        {"orchestrator_address", &FLAGS_orchestrator_address}}},
                                      &module);
}
