// gyre-predictor: resource and load prediction learned from history.
#include "libs/server/api_service_module.h"
#include "services/predictor/predictor_service.h"

int main(int argc, char** argv) {
  gyre::server::ApiServiceModule module(std::make_unique<gyre::predictor::PredictorServiceImpl>(),
                                        "gyre.v1.PredictorService", "predictor");
  return gyre::server::RunServiceMain(
      argc, argv, {"gyre-predictor", "predictor", "0.0.0.0:50055", "0.0.0.0:9105", {}}, &module);
}
