#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_

#include "gyre/v1/agent_service.grpc.pb.h"

namespace gyre::orchestrator {

// gRPC handler of gyre.v1.AgentService: the one bidirectional stream each
// agent holds to the orchestrator. Until the engine lands, Connect answers
// UNIMPLEMENTED naming the method.
class AgentServiceImpl final : public gyre::v1::AgentService::Service {};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_
