#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include "gyre/v1/orchestrator_service.grpc.pb.h"

namespace gyre::orchestrator {

// gRPC handlers of gyre.v1.OrchestratorService. Thin: each validates the
// request, calls the engine and maps its status. RPCs not overridden here
// answer UNIMPLEMENTED naming the method (see UnimplementedMessageInterceptor).
class OrchestratorServiceImpl final : public gyre::v1::OrchestratorService::Service {};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
