#include "services/predictor/predictor_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/common/status_mapping.h"
#include "services/predictor/load_forecast.h"

namespace gyre::predictor {

PredictorServiceImpl::PredictorServiceImpl(ResourcePredictor* predictor,
                                           prometheus::Registry* metrics)
    : predictor_(predictor) {
  if (metrics == nullptr) return;
  auto& family = prometheus::BuildCounter()
                     .Name("gyre_predictor_predictions_total")
                     .Help(
                         "Tasks PredictResources answered, by the level of history that "
                         "answered their duration (identity, task, program, queue, global, "
                         "prior).")
                     .Register(*metrics);
  for (int level = gyre::v1::PREDICTION_LEVEL_IDENTITY; level < gyre::v1::PredictionLevel_ARRAYSIZE;
       ++level) {
    absl::string_view name =
        gyre::v1::PredictionLevel_Name(static_cast<gyre::v1::PredictionLevel>(level));
    absl::ConsumePrefix(&name, "PREDICTION_LEVEL_");
    predictions_[level] = &family.Add({{"level", absl::AsciiStrToLower(name)}});
  }
}

grpc::Status PredictorServiceImpl::PredictResources(
    grpc::ServerContext* /*context*/, const gyre::v1::PredictResourcesRequest* request,
    gyre::v1::PredictResourcesResponse* response) {
  absl::StatusOr<gyre::v1::PredictResourcesResponse> result = predictor_->Predict(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  if (predictions_[gyre::v1::PREDICTION_LEVEL_IDENTITY] != nullptr) {
    std::array<int64_t, gyre::v1::PredictionLevel_ARRAYSIZE> counts{};
    for (const gyre::v1::ResourcePrediction& prediction : response->predictions()) {
      counts[prediction.duration_seconds().level()]++;
    }
    for (size_t level = 0; level < counts.size(); ++level) {
      if (counts[level] > 0 && predictions_[level] != nullptr) {
        predictions_[level]->Increment(static_cast<double>(counts[level]));
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status PredictorServiceImpl::RecordObservations(
    grpc::ServerContext* /*context*/, const gyre::v1::RecordObservationsRequest* request,
    gyre::v1::RecordObservationsResponse* response) {
  absl::StatusOr<int64_t> recorded = predictor_->Record(*request);
  if (!recorded.ok()) return ToGrpcStatus(recorded.status());
  response->set_recorded(*recorded);
  return grpc::Status::OK;
}

grpc::Status PredictorServiceImpl::ForecastQueueLoad(
    grpc::ServerContext* /*context*/, const gyre::v1::ForecastQueueLoadRequest* request,
    gyre::v1::ForecastQueueLoadResponse* response) {
  absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> result =
      predictor::ForecastQueueLoad(*request, absl::Now());
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace gyre::predictor
