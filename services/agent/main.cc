// gyre-agent: runs tasks assigned by the orchestrator.
#include "libs/server/service_main.h"
#include "services/agent/agent_module.h"

int main(int argc, char** argv) {
  gyre::agent::AgentModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-agent", "agent", "0.0.0.0:50052", "0.0.0.0:9102"}, &module);
}
