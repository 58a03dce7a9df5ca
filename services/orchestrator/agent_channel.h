#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_CHANNEL_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_CHANNEL_H_

#include <string>
#include <utility>

#include "gyre/v1/agent_service.pb.h"

namespace gyre::orchestrator {

// How the engine reaches one connected agent. Implemented by the agent
// stream handler. Send only enqueues (it never blocks on the network); the
// engine calls it under its lock so messages keep the order of the changes.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  virtual void Send(gyre::v1::OrchestratorMessage message) = 0;
  // The agent id registered again on another stream while this one was
  // silent: tells the agent why (Shutdown) and ends this stream once that
  // is written. Must not block, like Send. A channel with no stream to end
  // only sends the Shutdown.
  virtual void Replace(std::string reason) {
    gyre::v1::OrchestratorMessage shutdown;
    shutdown.mutable_shutdown()->set_reason(std::move(reason));
    Send(std::move(shutdown));
  }
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_CHANNEL_H_
