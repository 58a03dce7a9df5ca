#include "services/predictor/predictor_service.h"

#include "libs/common/status_mapping.h"

namespace gyre::predictor {

grpc::Status PredictorServiceImpl::PredictResources(
    grpc::ServerContext* /*context*/, const gyre::v1::PredictResourcesRequest* request,
    gyre::v1::PredictResourcesResponse* response) {
  absl::StatusOr<gyre::v1::PredictResourcesResponse> result = predictor_->Predict(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
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

}  // namespace gyre::predictor
