#include "services/predictor/predictor_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"
#include "services/predictor/load_forecast.h"

namespace gyre::predictor {
namespace {

// "identity", "task", ... "prior": a level as the metrics and logs name it.
std::string LevelName(int level) {
  absl::string_view name =
      gyre::v1::PredictionLevel_Name(static_cast<gyre::v1::PredictionLevel>(level));
  absl::ConsumePrefix(&name, "PREDICTION_LEVEL_");
  return absl::AsciiStrToLower(name);
}

}  // namespace

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
    predictions_[level] = &family.Add({{"level", LevelName(level)}});
  }
}

grpc::Status PredictorServiceImpl::PredictResources(
    grpc::ServerContext* /*context*/, const gyre::v1::PredictResourcesRequest* request,
    gyre::v1::PredictResourcesResponse* response) {
  absl::StatusOr<gyre::v1::PredictResourcesResponse> result = predictor_->Predict(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  const bool debug = logging::Enabled(logging::Level::kDebug);
  if (predictions_[gyre::v1::PREDICTION_LEVEL_IDENTITY] == nullptr && !debug) {
    return grpc::Status::OK;
  }
  std::array<int64_t, gyre::v1::PredictionLevel_ARRAYSIZE> counts{};
  for (const gyre::v1::ResourcePrediction& prediction : response->predictions()) {
    counts[prediction.duration_seconds().level()]++;
  }
  for (size_t level = 0; level < counts.size(); ++level) {
    if (counts[level] > 0 && predictions_[level] != nullptr) {
      predictions_[level]->Increment(static_cast<double>(counts[level]));
    }
  }
  if (debug) {
    // Which history answered: "task=3,prior=2" (a level with none left out).
    std::vector<std::string> levels;
    for (size_t level = 0; level < counts.size(); ++level) {
      if (counts[level] > 0) levels.push_back(absl::StrCat(LevelName(level), "=", counts[level]));
    }
    logging::Debug("resources predicted", {{"tasks", response->predictions_size()},
                                           {"duration_levels", absl::StrJoin(levels, ",")}});
  }
  return grpc::Status::OK;
}

grpc::Status PredictorServiceImpl::RecordObservations(
    grpc::ServerContext* /*context*/, const gyre::v1::RecordObservationsRequest* request,
    gyre::v1::RecordObservationsResponse* response) {
  const bool debug = logging::Enabled(logging::Level::kDebug);
  const absl::Time started = debug ? absl::Now() : absl::InfinitePast();
  absl::StatusOr<int64_t> recorded = predictor_->Record(*request);
  if (debug) {
    // Each sketch the batch touched was refit once, within took_us.
    logging::Debug("observations recorded, model refit",
                   {{"observations", request->observations_size()},
                    {"recorded", recorded.ok() ? *recorded : int64_t{0}},
                    {"took_us", absl::ToInt64Microseconds(absl::Now() - started)},
                    {"error", std::string(recorded.status().message())}});
  }
  if (!recorded.ok()) return ToGrpcStatus(recorded.status());
  response->set_recorded(*recorded);
  return grpc::Status::OK;
}

grpc::Status PredictorServiceImpl::ForecastQueueLoad(
    grpc::ServerContext* /*context*/, const gyre::v1::ForecastQueueLoadRequest* request,
    gyre::v1::ForecastQueueLoadResponse* response) {
  absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> result =
      predictor::ForecastQueueLoad(*request, absl::Now());
  if (logging::Enabled(logging::Level::kDebug)) {
    logging::Debug("queue load forecast", {{"worker_type", request->worker_type()},
                                           {"pending", request->pending_size()},
                                           {"running", request->running_remaining_seconds_size()},
                                           {"error", std::string(result.status().message())}});
  }
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace gyre::predictor
