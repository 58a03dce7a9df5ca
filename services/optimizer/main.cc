// gyre-optimizer: DAG analysis: critical path, bottlenecks, recommendations.
#include "libs/server/api_service_module.h"
#include "services/optimizer/optimizer_service.h"

int main(int argc, char** argv) {
  gyre::server::ApiServiceModule module(std::make_unique<gyre::optimizer::OptimizerServiceImpl>(),
                                        "gyre.v1.OptimizerService", "optimizer");
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-optimizer", "optimizer", "0.0.0.0:50054", "0.0.0.0:9104", {}}, &module);
}
