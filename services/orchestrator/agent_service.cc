#include "services/orchestrator/agent_service.h"

#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/agent_session.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

// One Connect stream: a read always outstanding (each message goes to the
// session as it arrives), at most one write in flight with the session's
// outbox queued behind it. Deletes itself when gRPC is done with it.
class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::OrchestratorMessage> {
 public:
  ConnectReactor(AgentServiceImpl* service, grpc::CallbackServerContext* context,
                 ClientLimits::Slot slot)
      : service_(service),
        context_(context),
        slot_(std::move(slot)),
        session_(service->engine_, [this] { Wake(); }) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side, went away, or the call was cancelled.
      session_.End();
      FinishWhenWritten(grpc::Status::OK);
      return;
    }
    if (absl::Status status = session_.Receive(incoming_); !status.ok()) {
      FinishWhenWritten(ToGrpcStatus(status));  // the session ended (and logged why)
      return;
    }
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    writing_ = false;
    // A failed write: the agent is gone, and the read side notices too.
    if (!ok) broken_ = true;
    if (!broken_ && !finishing_) WriteNextLocked();
    MaybeFinishLocked();
  }

  void OnDone() override {
    session_.End();  // after this, Wake never runs
    service_->Forget(context_);
    delete this;
  }

 private:
  // The outbox has a message and no write is in flight (any thread; maybe
  // under the engine lock, so only starts a write).
  void Wake() {
    absl::MutexLock lock(&mutex_);
    if (!broken_ && !finishing_) WriteNextLocked();
    MaybeFinishLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    switch (session_.TakeOutgoing(&outgoing_)) {
      case AgentSession::Outgoing::kMessage:
        writing_ = true;
        StartWrite(&outgoing_);
        return;
      case AgentSession::Outgoing::kIdle:
        return;
      case AgentSession::Outgoing::kEnd:
        // Replaced by a newer registration of the id (the Shutdown that
        // says so is out), or the session ended: the stream ends with it.
        finishing_ = true;
        if (finish_status_.ok()) {
          absl::Status why = session_.status();
          finish_status_ =
              why.ok() ? ToGrpcStatus(absl::CancelledError(
                             "this agent stream was replaced by a newer registration of its id"))
                       : ToGrpcStatus(why);
        }
        return;
    }
  }

  void FinishWhenWritten(grpc::Status status) {
    absl::MutexLock lock(&mutex_);
    if (!finishing_) {
      finishing_ = true;
      finish_status_ = std::move(status);
    }
    MaybeFinishLocked();
  }

  // Finish goes out once, after the write in flight (if any) completed.
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (!finishing_ || writing_ || finished_) return;
    finished_ = true;
    Finish(finish_status_);
  }

  AgentServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  const ClientLimits::Slot slot_;  // the peer's, among max_streams_per_client
  v1::AgentMessage incoming_;      // the read in flight
  absl::Mutex mutex_;
  v1::OrchestratorMessage outgoing_ ABSL_GUARDED_BY(mutex_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;     // a write failed
  bool finishing_ ABSL_GUARDED_BY(mutex_) = false;  // no more writes start
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mutex_);
  // Last: its outbox may wake the reactor until it is ended (OnDone).
  AgentSession session_;
};

namespace {

// A stream refused before its first read: it ends with `status` at once.
class RefusedReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::OrchestratorMessage> {
 public:
  explicit RefusedReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// The join token the agent sent as metadata; empty when none.
absl::string_view JoinTokenOf(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(grpc::string_ref(security::kJoinTokenMetadataKey.data(),
                                                    security::kJoinTokenMetadataKey.size()));
  if (found == metadata.end()) return {};
  return absl::string_view(found->second.data(), found->second.size());
}

}  // namespace

grpc::ServerBidiReactor<v1::AgentMessage, v1::OrchestratorMessage>* AgentServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  if (absl::Status admitted = join_tokens_.Check(JoinTokenOf(*context)); !admitted.ok()) {
    // Who tried and why, never what they sent.
    logging::Warn("agent registration refused",
                  {{"peer", context->peer()}, {"error", std::string(admitted.message())}});
    return new RefusedReactor(ToGrpcStatus(admitted));
  }
  absl::StatusOr<ClientLimits::Slot> slot =
      client_limits_->AcquireStream(ClientLimits::ClientOf(*context), "agent connect");
  if (!slot.ok()) {
    logging::Warn("agent stream refused",
                  {{"peer", context->peer()}, {"error", std::string(slot.status().message())}});
    return new RefusedReactor(ToGrpcStatus(slot.status()));
  }
  {
    absl::MutexLock lock(&mutex_);
    open_.insert(context);
    if (closing_) context->TryCancel();
  }
  return new ConnectReactor(this, context, *std::move(slot));
}

void AgentServiceImpl::Forget(grpc::CallbackServerContext* context) {
  absl::MutexLock lock(&mutex_);
  open_.erase(context);
}

void AgentServiceImpl::CloseStreams() {
  absl::MutexLock lock(&mutex_);
  closing_ = true;
  for (grpc::CallbackServerContext* context : open_) context->TryCancel();
}

}  // namespace gyre::orchestrator
