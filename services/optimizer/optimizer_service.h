#ifndef GYRE_SERVICES_OPTIMIZER_OPTIMIZER_SERVICE_H_
#define GYRE_SERVICES_OPTIMIZER_OPTIMIZER_SERVICE_H_

#include "gyre/v1/optimizer_service.grpc.pb.h"

namespace gyre::optimizer {

// gRPC handlers of gyre.v1.OptimizerService (DAG analysis: critical path, bottlenecks,
// recommendations). The API is designed; its implementation is a later milestone, so every RPC
// answers UNIMPLEMENTED naming the method (see UnimplementedMessageInterceptor).
class OptimizerServiceImpl final : public gyre::v1::OptimizerService::Service {};

}  // namespace gyre::optimizer

#endif  // GYRE_SERVICES_OPTIMIZER_OPTIMIZER_SERVICE_H_
