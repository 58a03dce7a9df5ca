#ifndef GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_
#define GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_

#include "gyre/v1/predictor_service.grpc.pb.h"

namespace gyre::predictor {

// gRPC handlers of gyre.v1.PredictorService (resource and load prediction learned from history).
// The API is designed; its implementation is a later milestone, so every RPC
// answers UNIMPLEMENTED naming the method (see UnimplementedMessageInterceptor).
class PredictorServiceImpl final : public gyre::v1::PredictorService::Service {};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_PREDICTOR_SERVICE_H_
