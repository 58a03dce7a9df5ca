// gyre-predictor: resource and load prediction learned from history.
#include "libs/server/service_main.h"
#include "services/predictor/predictor_module.h"

int main(int argc, char** argv) {
  gyre::predictor::PredictorModule module;
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-predictor", "predictor", "0.0.0.0:50055", "0.0.0.0:9105"}, &module);
}
