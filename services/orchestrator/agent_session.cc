#include "services/orchestrator/agent_session.h"

#include <deque>
#include <utility>

#include "libs/logging/logger.h"
#include "services/orchestrator/agent_channel.h"
#include "services/orchestrator/shard_ownership.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

// The engine's way to one agent: what it sends, queued in order for the
// transport. The engine calls Send under its lock, so Send only queues (and
// wakes an idle transport); it may hold the outbox past the session's end.
class SessionOutbox final : public AgentChannel {
 public:
  explicit SessionOutbox(AgentSession::Wake wake) : wake_(std::move(wake)) {}

  void Send(v1::OrchestratorMessage message) override {
    if (Push(std::move(message), /*end_after=*/false)) RunWake();
  }

  // The id registered again on another stream: this one tells the agent why
  // and ends once that is out.
  void Replace(std::string reason) override {
    v1::OrchestratorMessage shutdown;
    shutdown.mutable_shutdown()->set_reason(std::move(reason));
    if (Push(std::move(shutdown), /*end_after=*/true)) RunWake();
  }

  AgentSession::Outgoing Take(v1::OrchestratorMessage* message) {
    absl::MutexLock lock(&mutex_);
    if (!pending_.empty()) {
      *message = std::move(pending_.front());
      pending_.pop_front();
      return AgentSession::Outgoing::kMessage;
    }
    if (closed_ || end_after_) return AgentSession::Outgoing::kEnd;
    idle_ = true;
    return AgentSession::Outgoing::kIdle;
  }

  bool Wait(v1::OrchestratorMessage* message) {
    absl::MutexLock lock(&mutex_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return closed_ || end_after_ || !pending_.empty();
    };
    mutex_.Await(absl::Condition(&ready));
    if (pending_.empty()) return false;
    *message = std::move(pending_.front());
    pending_.pop_front();
    return true;
  }

  // Drops what is queued and what comes later; once this returns, `wake`
  // never runs again.
  void Close() {
    absl::MutexLock wake_lock(&wake_mutex_);
    wake_ = nullptr;
    absl::MutexLock lock(&mutex_);
    closed_ = true;
    pending_.clear();
  }

 private:
  // Queues `message`; true if the transport is idle and must be woken.
  bool Push(v1::OrchestratorMessage message, bool end_after) {
    absl::MutexLock lock(&mutex_);
    if (closed_ || end_after_) return false;
    pending_.push_back(std::move(message));
    end_after_ = end_after;
    const bool wake = idle_;
    idle_ = false;
    return wake;
  }

  // Outside mutex_: the transport's wake calls Take.
  void RunWake() {
    absl::MutexLock lock(&wake_mutex_);
    if (wake_) wake_();
  }

  // Held while `wake_` runs, so Close waits for a wake in progress.
  absl::Mutex wake_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);
  AgentSession::Wake wake_ ABSL_GUARDED_BY(wake_mutex_);
  absl::Mutex mutex_;
  std::deque<v1::OrchestratorMessage> pending_ ABSL_GUARDED_BY(mutex_);
  bool idle_ ABSL_GUARDED_BY(mutex_) = true;        // the transport waits for a wake
  bool end_after_ ABSL_GUARDED_BY(mutex_) = false;  // replaced: end once drained
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
};

AgentSession::AgentSession(WorkflowEngine* engine, Wake wake)
    : engine_(engine), outbox_(std::make_shared<SessionOutbox>(std::move(wake))) {}

AgentSession::~AgentSession() { End(); }

absl::Status AgentSession::Receive(const v1::AgentMessage& message) {
  if (ended_.load(std::memory_order_acquire)) {
    absl::Status status = this->status();
    return status.ok() ? absl::CancelledError("the agent session has ended") : status;
  }
  if (!registered_.load(std::memory_order_acquire)) return Register(message);
  absl::Status status = engine_->HandleAgentMessage(agent_id_, message, outbox_.get());
  if (ABSL_PREDICT_TRUE(status.ok())) return status;
  if (NotOwnedShard(status).has_value()) return RefuseResults(message, status);
  return Fail(std::move(status), agent_id_);
}

absl::Status AgentSession::RefuseResults(const v1::AgentMessage& message,
                                         const absl::Status& refused) {
  auto refuse = [this](const v1::TaskResult& result, const absl::Status& why) {
    v1::OrchestratorMessage reply;
    v1::ResultRefused* answer = reply.mutable_result_refused();
    *answer->mutable_ref() = result.ref();
    answer->set_sequence(result.sequence());
    answer->set_shard(*NotOwnedShard(why));
    answer->set_reason(std::string(why.message()));
    outbox_->Send(std::move(reply));
  };
  if (message.has_task_result()) {
    refuse(message.task_result(), refused);
    return absl::OkStatus();
  }
  if (!message.has_task_results()) return Fail(refused, agent_id_);
  // The engine refuses a batch whole when one result is not its own (an
  // acknowledgement must not pass over a result left unrecorded): each goes
  // again on its own, so the owned ones are recorded and only the others
  // are refused. Rare (a shard just moved), so the copies do not matter.
  for (const v1::TaskResult& result : message.task_results().results()) {
    v1::AgentMessage single;
    *single.mutable_task_result() = result;
    absl::Status status = engine_->HandleAgentMessage(agent_id_, single, outbox_.get());
    if (status.ok()) continue;
    if (!NotOwnedShard(status).has_value()) return Fail(std::move(status), agent_id_);
    refuse(result, status);
  }
  // The credit the batch carried is the agent's whatever became of its
  // results: lost here, the agent's slots would idle.
  if (const int32_t credit = message.task_results().credit(); credit > 0) {
    v1::AgentMessage grant;
    grant.mutable_credit()->set_tasks(credit);
    if (absl::Status status = engine_->HandleAgentMessage(agent_id_, grant, outbox_.get());
        !status.ok()) {
      return Fail(std::move(status), agent_id_);
    }
  }
  return absl::OkStatus();
}

absl::Status AgentSession::Register(const v1::AgentMessage& message) {
  const std::string& id = message.register_().agent_id();
  if (!message.has_register_()) {
    return Fail(
        absl::FailedPreconditionError("the first message on an agent stream must be register"), id);
  }
  absl::StatusOr<v1::Registered> registered = engine_->RegisterAgent(message.register_(), outbox_);
  if (!registered.ok()) return Fail(registered.status(), id);
  {
    absl::MutexLock lock(&mutex_);
    if (!ended_.load(std::memory_order_relaxed)) {
      agent_id_ = id;
      registered_.store(true, std::memory_order_release);
    }
  }
  if (!registered_.load(std::memory_order_relaxed)) {
    // Ended while registering: End found no agent to disconnect.
    engine_->DisconnectAgent(id, outbox_.get());
    return status();
  }
  v1::OrchestratorMessage reply;
  *reply.mutable_registered() = *std::move(registered);
  outbox_->Send(std::move(reply));
  return absl::OkStatus();
}

absl::Status AgentSession::Fail(absl::Status error, const std::string& agent_id) {
  // A refused registration's id can be anything the client sent: cut.
  logging::Warn("agent session ended with an error",
                {{"agent", agent_id.substr(0, WorkflowEngine::kMaxAgentIdLength + 1)},
                 {"error", std::string(error.message())}});
  End(error);
  return error;
}

AgentSession::Outgoing AgentSession::TakeOutgoing(v1::OrchestratorMessage* message) {
  return outbox_->Take(message);
}

bool AgentSession::WaitOutgoing(v1::OrchestratorMessage* message) { return outbox_->Wait(message); }

void AgentSession::End(absl::Status why) {
  bool disconnect = false;
  {
    absl::MutexLock lock(&mutex_);
    if (status_.ok()) status_ = std::move(why);
    if (ended_.load(std::memory_order_relaxed)) return;
    ended_.store(true, std::memory_order_release);
    disconnect = registered_.load(std::memory_order_relaxed);
  }
  outbox_->Close();
  if (disconnect) engine_->DisconnectAgent(agent_id_, outbox_.get());
}

absl::Status AgentSession::status() {
  absl::MutexLock lock(&mutex_);
  return status_;
}

}  // namespace gyre::orchestrator
