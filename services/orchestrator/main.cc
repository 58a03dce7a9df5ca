// gyre-orchestrator: workflow state, queues, leases and the autoscaling signal.
#include "libs/server/huge_page_heap.h"
#include "libs/server/service_main.h"
#include "services/orchestrator/orchestrator_module.h"

ABSL_FLAG(std::string, data_dir, "", "directory of the embedded store");
ABSL_FLAG(std::string, store, "", "state store backend: embedded or postgres");
ABSL_FLAG(std::string, task_library_dir, "", "directory of task-library YAML files");

int main(int argc, char** argv) {
  // The engine's state is millions of small objects: see huge_page_heap.h.
  gyre::server::ReexecWithHugePageHeap(argv);
  gyre::server::RetainFreedHeapMemory();
  gyre::orchestrator::OrchestratorModule module;
  return gyre::server::RunServiceMain(argc, argv,
                                      {"gyre-orchestrator",
                                       "orchestrator",
                                       "0.0.0.0:50051",
                                       "0.0.0.0:9101",
                                       {{"data_dir", &FLAGS_data_dir},
                                        {"store", &FLAGS_store},
                                        {"task_library_dir", &FLAGS_task_library_dir}}},
                                      &module);
}
