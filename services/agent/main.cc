// gyre-agent: runs tasks assigned by the orchestrator.
#include "libs/server/service_main.h"
#include "services/agent/agent_module.h"

ABSL_FLAG(std::string, orchestrator_address, "", "orchestrator gRPC address (host:port)");
ABSL_FLAG(std::string, slots, "", "tasks run at once");
ABSL_FLAG(std::string, queues, "", "queues served, e.g. [cpu, gpu]");
ABSL_FLAG(std::string, work_dir, "", "root of per-task working directories");
ABSL_FLAG(std::string, allow_root_tasks, "",
          "let tasks run as root (a root agent refuses to start without it or run_as_user)");

int main(int argc, char** argv) {
  gyre::agent::AgentModule module;
  return gyre::server::RunServiceMain(argc, argv,
                                      {"gyre-agent",
                                       "agent",
                                       "0.0.0.0:50052",
                                       "0.0.0.0:9102",
                                       {{"orchestrator_address", &FLAGS_orchestrator_address},
                                        {"slots", &FLAGS_slots},
                                        {"queues", &FLAGS_queues},
                                        {"work_dir", &FLAGS_work_dir},
                                        {"allow_root_tasks", &FLAGS_allow_root_tasks}}},
                                      &module);
}
