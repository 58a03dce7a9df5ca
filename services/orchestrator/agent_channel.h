#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_CHANNEL_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_CHANNEL_H_

#include "gyre/v1/agent_service.pb.h"

namespace gyre::orchestrator {

// How the engine reaches one connected agent. Implemented by the agent
// stream handler. Send only enqueues (it never blocks on the network); the
// engine calls it under its lock so messages keep the order of the changes.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  virtual void Send(gyre::v1::OrchestratorMessage message) = 0;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_CHANNEL_H_
