#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include "gyre/v1/agent_service.grpc.pb.h"
#include "libs/common/limits.h"
#include "libs/common/status_mapping.h"
#include "libs/security/grpc_credentials.h"
#include "libs/security/join_token.h"
#include "services/agent/orchestrator_link.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

class GrpcSession : public OrchestratorSession {
 public:
  GrpcSession(v1::AgentService::Stub& stub, const std::string& join_token) {
    if (!join_token.empty()) {
      context_.AddMetadata(std::string(security::kJoinTokenMetadataKey), join_token);
    }
    stream_ = stub.Connect(&context_);
  }

  bool Write(const v1::AgentMessage& message) override { return stream_->Write(message); }
  bool Read(v1::OrchestratorMessage* message) override { return stream_->Read(message); }
  void Cancel() override { context_.TryCancel(); }
  absl::Status Finish() override {
    stream_->WritesDone();
    return FromGrpcStatus(stream_->Finish());
  }

 private:
  grpc::ClientContext context_;  // outlives stream_ (declared first)
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::OrchestratorMessage>> stream_;
};

class GrpcLink : public OrchestratorLink {
 public:
  GrpcLink(const std::shared_ptr<grpc::Channel>& channel, std::string join_token)
      : stub_(v1::AgentService::NewStub(channel)), join_token_(std::move(join_token)) {}

  std::unique_ptr<OrchestratorSession> Open() override {
    return std::make_unique<GrpcSession>(*stub_, join_token_);
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  const std::string join_token_;  // never logged
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> NewOrchestratorChannel(
    const std::string& address, const security::TlsConfig& tls, const std::string& authority) {
  grpc::ChannelArguments arguments;
  // gRPC's default 4 MB is less than one assignment may be: a task's
  // environment alone may take 1.5 MiB, and the orchestrator batches tasks
  // into messages of up to kMaxAssignmentMessageBytes (libs/common/limits.h).
  arguments.SetMaxReceiveMessageSize(static_cast<int>(limits::kMaxAgentReceiveBytes));
  // gRPC's own reconnect backoff grows to 120 s: after an orchestrator was
  // away a few seconds (a fail-stop while PostgreSQL was down, a restart)
  // the agent would come back after its leases lapsed, and its running
  // tasks would run again. Its sessions retry on their own schedule (a few
  // tries per lease timeout); the channel must not hold them back longer.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!authority.empty()) {
    arguments.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
    arguments.SetSslTargetNameOverride(authority.substr(0, authority.rfind(':')));
  }
  return security::NewChannel(address, tls, arguments);
}

std::unique_ptr<OrchestratorLink> NewGrpcOrchestratorLink(
    const std::shared_ptr<grpc::Channel>& channel, std::string join_token) {
  return std::make_unique<GrpcLink>(channel, std::move(join_token));
}

}  // namespace gyre::agent
