#ifndef GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_
#define GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_

#include <array>
#include <string>
#include <vector>

#include "gyre/v1/predictor_service.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/predictor/resource_predictor.h"

namespace gyre::predictor {

// gRPC handlers of gyre.v1.PredictorService: thin, over a ResourcePredictor
// (not owned; must outlive the service) and load_forecast.h's
// ForecastQueueLoad. Thread-safe.
class PredictorServiceImpl final : public gyre::v1::PredictorService::Service {
 public:
  // `metrics` (optional) gets gyre_predictor_predictions_total{level}: the
  // tasks predicted, by the level of history that answered their duration
  // (how often repeated tasks are answered from their own history).
  explicit PredictorServiceImpl(ResourcePredictor* predictor,
                                prometheus::Registry* metrics = nullptr);

  // The RPCs overridden below (ServiceHost::DeclareImplementedRpcs).
  static std::vector<std::string> ImplementedRpcs() {
    return {"PredictResources", "RecordObservations", "ForecastQueueLoad"};
  }

  grpc::Status PredictResources(grpc::ServerContext* context,
                                const gyre::v1::PredictResourcesRequest* request,
                                gyre::v1::PredictResourcesResponse* response) override;
  grpc::Status RecordObservations(grpc::ServerContext* context,
                                  const gyre::v1::RecordObservationsRequest* request,
                                  gyre::v1::RecordObservationsResponse* response) override;
  grpc::Status ForecastQueueLoad(grpc::ServerContext* context,
                                 const gyre::v1::ForecastQueueLoadRequest* request,
                                 gyre::v1::ForecastQueueLoadResponse* response) override;

 private:
  ResourcePredictor* predictor_;
  // By gyre::v1::PredictionLevel (null without a registry).
  std::array<prometheus::Counter*, gyre::v1::PredictionLevel_ARRAYSIZE> predictions_{};
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_
