// gyre-optimizer: DAG analysis: critical path, bottlenecks, recommendations.
#include "libs/server/service_main.h"
#include "services/optimizer/optimizer_module.h"

int main(int argc, char** argv) {
  gyre::optimizer::OptimizerModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-optimizer", "optimizer", "0.0.0.0:50054", "0.0.0.0:9104"}, &module);
}
