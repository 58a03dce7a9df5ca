#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/agent_service.grpc.pb.h"
#include "libs/security/join_token.h"
#include "services/orchestrator/client_limits.h"

namespace gyre::orchestrator {

class WorkflowEngine;
class ConnectReactor;

// gRPC handler of gyre.v1.AgentService: the one bidirectional stream each
// agent holds, on gRPC's callback API so that an idle stream holds no
// thread (an orchestrator holds 10,000 agents). Each stream is a reactor
// over an AgentSession: reads go to the engine on gRPC's callback threads
// (the engine's calls for them are short and do no I/O); what the engine
// sends waits in the session's outbox and goes out one write at a time, in
// order, so the engine never blocks on a slow agent's network. A stream
// without an accepted join token (metadata security::kJoinTokenMetadataKey)
// ends before its first read, so such a process never registers nor sees a
// task. Thread-safe.
class AgentServiceImpl final : public gyre::v1::AgentService::CallbackService {
 public:
  // `join_tokens`: whom to admit (open: everyone).
  AgentServiceImpl(WorkflowEngine* engine, security::JoinTokenVerifier join_tokens = {})
      : engine_(engine), join_tokens_(std::move(join_tokens)) {}

  grpc::ServerBidiReactor<gyre::v1::AgentMessage, gyre::v1::OrchestratorMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // Streams one client may hold (max_streams_per_client; not owned, set
  // before serving).
  void set_client_limits(ClientLimits* limits) { client_limits_ = limits; }

  // Ends every open stream (server shutdown): agents reconnect elsewhere or
  // when the orchestrator is back.
  void CloseStreams();

 private:
  friend class ConnectReactor;
  void Forget(grpc::CallbackServerContext* context);

  WorkflowEngine* engine_;
  const security::JoinTokenVerifier join_tokens_;
  ClientLimits* client_limits_ = ClientLimits::Unlimited();
  absl::Mutex mutex_;
  absl::flat_hash_set<grpc::CallbackServerContext*> open_ ABSL_GUARDED_BY(mutex_);
  bool closing_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_
