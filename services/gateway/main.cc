// gyre-gateway: REST/WebSocket front door for API clients.
#include "libs/server/service_main.h"
#include "services/gateway/gateway_module.h"

int main(int argc, char** argv) {
  gyre::gateway::GatewayModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-gateway", "gateway", "0.0.0.0:50056", "0.0.0.0:9106"}, &module);
}
