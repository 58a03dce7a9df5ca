// gyre-orchestrator: workflow state, queues, leases and the autoscaling signal.
#include "libs/server/huge_page_heap.h"
#include "libs/server/service_main.h"
#include "services/orchestrator/orchestrator_module.h"

int main(int argc, char** argv) {
  // The engine's state is millions of small objects: see huge_page_heap.h.
  gyre::server::ReexecWithHugePageHeap(argv);
  gyre::server::RetainFreedHeapMemory();
  gyre::orchestrator::OrchestratorModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-orchestrator", "orchestrator", "0.0.0.0:50051", "0.0.0.0:9101"}, &module);
}
