#ifndef GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_
#define GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_

#include "gyre/v1/predictor_service.grpc.pb.h"
#include "services/predictor/resource_predictor.h"

namespace gyre::predictor {

// gRPC handlers of gyre.v1.PredictorService: thin, over a ResourcePredictor
// (not owned; must outlive the service). ForecastQueueLoad is not built yet
// and answers UNIMPLEMENTED naming the method (UnimplementedMessageInterceptor).
// Thread-safe.
class PredictorServiceImpl final : public gyre::v1::PredictorService::Service {
 public:
  explicit PredictorServiceImpl(ResourcePredictor* predictor) : predictor_(predictor) {}

  grpc::Status PredictResources(grpc::ServerContext* context,
                                const gyre::v1::PredictResourcesRequest* request,
                                gyre::v1::PredictResourcesResponse* response) override;
  grpc::Status RecordObservations(grpc::ServerContext* context,
                                  const gyre::v1::RecordObservationsRequest* request,
                                  gyre::v1::RecordObservationsResponse* response) override;

 private:
  ResourcePredictor* predictor_;
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_
