#include "cmd/gyre/in_process_agent_link.h"

#include <deque>
#include <string>

#include "absl/synchronization/mutex.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

// The engine's side of the session: what it sends, queued for the agent.
// Shared with the engine, which may hold it after the session ended (a
// result's acknowledgement waits for durability).
class Inbox : public orchestrator::AgentChannel {
 public:
  void Send(v1::OrchestratorMessage message) override {
    absl::MutexLock lock(&mutex_);
    if (!closed_) pending_.push_back(std::move(message));
  }

  // Blocks for the next message; false once closed.
  bool Pop(v1::OrchestratorMessage* message) {
    absl::MutexLock lock(&mutex_);
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return closed_ || !pending_.empty(); };
    mutex_.Await(absl::Condition(&ready));
    if (closed_) return false;
    *message = std::move(pending_.front());
    pending_.pop_front();
    return true;
  }

  void Close() {
    absl::MutexLock lock(&mutex_);
    closed_ = true;
    pending_.clear();
  }

 private:
  absl::Mutex mutex_;
  std::deque<v1::OrchestratorMessage> pending_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
};

class InProcessSession : public agent::OrchestratorSession {
 public:
  explicit InProcessSession(orchestrator::WorkflowEngine* engine) : engine_(engine) {}

  bool Write(const v1::AgentMessage& message) override {
    {
      absl::MutexLock lock(&mutex_);
      if (!status_.ok()) return false;
    }
    if (agent_id_.empty()) return Register(message);
    // Like the gRPC handler: a protocol error ends the session.
    absl::Status status = engine_->HandleAgentMessage(agent_id_, message, inbox_.get());
    if (status.ok()) return true;
    End(std::move(status));
    return false;
  }

  bool Read(v1::OrchestratorMessage* message) override { return inbox_->Pop(message); }

  void Cancel() override { End(absl::CancelledError("the agent ended the session")); }

  absl::Status Finish() override {
    if (!agent_id_.empty()) engine_->DisconnectAgent(agent_id_, inbox_.get());
    absl::MutexLock lock(&mutex_);
    return status_;
  }

 private:
  bool Register(const v1::AgentMessage& message) {
    if (!message.has_register_()) {
      End(absl::FailedPreconditionError("the first message on an agent stream must be register"));
      return false;
    }
    absl::StatusOr<v1::Registered> registered = engine_->RegisterAgent(message.register_(), inbox_);
    if (!registered.ok()) {
      End(registered.status());
      return false;
    }
    agent_id_ = message.register_().agent_id();
    v1::OrchestratorMessage reply;
    *reply.mutable_registered() = *std::move(registered);
    inbox_->Send(std::move(reply));
    return true;
  }

  // The first reason to end wins; the agent's reader wakes up.
  void End(absl::Status status) {
    {
      absl::MutexLock lock(&mutex_);
      if (status_.ok()) status_ = std::move(status);
    }
    inbox_->Close();
  }

  orchestrator::WorkflowEngine* const engine_;
  const std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
  // Set by the first Write, before the writer thread starts.
  std::string agent_id_;
  absl::Mutex mutex_;
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
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
