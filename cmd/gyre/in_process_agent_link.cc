#include "cmd/gyre/in_process_agent_link.h"

#include "services/orchestrator/agent_session.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

// The agent's writer thread hands its messages to the session, its reader
// thread waits on the session's outbox: protobuf objects moved, never
// serialized.
class InProcessSession : public agent::OrchestratorSession {
 public:
  explicit InProcessSession(orchestrator::WorkflowEngine* engine) : session_(engine) {}

  bool Write(const v1::AgentMessage& message) override { return session_.Receive(message).ok(); }

  bool Read(v1::OrchestratorMessage* message) override { return session_.WaitOutgoing(message); }

  void Cancel() override { session_.End(absl::CancelledError("the agent ended the session")); }

  absl::Status Finish() override {
    session_.End();
    return session_.status();
  }

 private:
  orchestrator::AgentSession session_;
};

class InProcessLink : public agent::OrchestratorLink {
 public:
  explicit InProcessLink(orchestrator::WorkflowEngine* engine) : engine_(engine) {}
  std::unique_ptr<agent::OrchestratorSession> Open() override {
    return std::make_unique<InProcessSession>(engine_);
  }

 private:
  orchestrator::WorkflowEngine* const engine_;
};

}  // namespace

std::unique_ptr<agent::OrchestratorLink> NewInProcessAgentLink(
    orchestrator::WorkflowEngine* engine) {
  return std::make_unique<InProcessLink>(engine);
}

}  // namespace gyre::cli
