#include "services/orchestrator/agent_service.h"

#include <deque>
#include <thread>

#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using Stream = grpc::ServerReaderWriter<v1::OrchestratorMessage, v1::AgentMessage>;

// Queues messages for one stream and writes them on its own thread.
class StreamChannel : public AgentChannel {
 public:
  StreamChannel(grpc::ServerContext* context, Stream* stream)
      : context_(context), stream_(stream), writer_([this] { Run(); }) {}

  ~StreamChannel() override { Close(); }

  // Stops writing; the stream may not be touched after its RPC returns, and
  // durability callbacks can hold this channel longer than that.
  void Close() {
    {
      absl::MutexLock lock(&mutex_);
      if (closed_ && !writer_.joinable()) return;
      closed_ = true;
    }
    if (writer_.joinable()) writer_.join();
  }

  void Send(v1::OrchestratorMessage message) override {
    absl::MutexLock lock(&mutex_);
    if (!closed_) pending_.push_back(std::move(message));
  }

  void Replace(std::string reason) override {
    v1::OrchestratorMessage shutdown;
    shutdown.mutable_shutdown()->set_reason(std::move(reason));
    absl::MutexLock lock(&mutex_);
    if (closed_) return;
    pending_.push_back(std::move(shutdown));
    // The writer cancels the RPC once the Shutdown is out: the handler's
    // blocked Read then returns and the stream ends.
    replaced_ = true;
  }

 private:
  void Run() {
    bool replaced = false;
    while (true) {
      std::deque<v1::OrchestratorMessage> batch;
      {
        absl::MutexLock lock(&mutex_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
          return closed_ || !pending_.empty();
        };
        mutex_.Await(absl::Condition(&ready));
        if (closed_) return;
        batch.swap(pending_);
        replaced = replaced_;
      }
      for (v1::OrchestratorMessage& message : batch) {
        if (!stream_->Write(message)) return;  // the agent is gone; reads notice too
      }
      if (replaced) {
        context_->TryCancel();
        return;
      }
    }
  }

  grpc::ServerContext* context_;
  Stream* stream_;
  absl::Mutex mutex_;
  std::deque<v1::OrchestratorMessage> pending_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  bool replaced_ ABSL_GUARDED_BY(mutex_) = false;  // end the stream after what is pending
  std::thread writer_;
};

}  // namespace

grpc::Status AgentServiceImpl::Connect(grpc::ServerContext* context, Stream* stream) {
  v1::AgentMessage first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  if (!first.has_register_()) {
    return ToGrpcStatus(
        absl::FailedPreconditionError("the first message on an agent stream must be register"));
  }
  {
    absl::MutexLock lock(&mutex_);
    open_.insert(context);
  }
  auto channel = std::make_shared<StreamChannel>(context, stream);
  const std::string agent_id = first.register_().agent_id();
  absl::Status status;
  absl::StatusOr<v1::Registered> registered = engine_->RegisterAgent(first.register_(), channel);
  if (!registered.ok()) {
    status = registered.status();
  } else {
    v1::OrchestratorMessage reply;
    *reply.mutable_registered() = *registered;
    channel->Send(std::move(reply));
    v1::AgentMessage message;
    while (stream->Read(&message)) {
      status = engine_->HandleAgentMessage(agent_id, message, channel.get());
      if (!status.ok()) break;
    }
    engine_->DisconnectAgent(agent_id, channel.get());
  }
  channel->Close();
  {
    absl::MutexLock lock(&mutex_);
    open_.erase(context);
  }
  if (!status.ok()) {
    // A refused registration's id can be anything the client sent: cut.
    logging::Warn("agent stream closed with an error",
                  {{"agent", agent_id.substr(0, WorkflowEngine::kMaxAgentIdLength + 1)},
                   {"error", std::string(status.message())}});
  }
  return ToGrpcStatus(status);
}

void AgentServiceImpl::CloseStreams() {
  absl::MutexLock lock(&mutex_);
  for (grpc::ServerContext* context : open_) context->TryCancel();
}

}  // namespace gyre::orchestrator
