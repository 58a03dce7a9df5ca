#ifndef GYRE_CMD_GYRE_IN_PROCESS_AGENT_LINK_H_
#define GYRE_CMD_GYRE_IN_PROCESS_AGENT_LINK_H_

#include <memory>

#include "services/agent/orchestrator_link.h"

namespace gyre::orchestrator {
class WorkflowEngine;
}  // namespace gyre::orchestrator

namespace gyre::cli {

// The link of the agent embedded in `gyre dev`: the agent's messages go
// straight to the engine and the engine's messages straight to the agent,
// as protobuf objects, with no serialization, HTTP/2 or gRPC threads in
// between. The protocol (register first, credit, fencing, acknowledgements)
// is exactly the one of gyre.v1.AgentService.Connect.
// `engine` must outlive the link and its sessions.
std::unique_ptr<agent::OrchestratorLink> NewInProcessAgentLink(
    orchestrator::WorkflowEngine* engine);

}  // namespace gyre::cli

#endif  // GYRE_CMD_GYRE_IN_PROCESS_AGENT_LINK_H_
