#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/agent_service.grpc.pb.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {

// gRPC handler of gyre.v1.AgentService: the one bidirectional stream each
// agent holds. Reads go to the engine on the RPC's thread; writes go through
// a per-stream queue drained by a writer thread, so the engine never blocks
// on a slow agent's network. Thread-safe.
class AgentServiceImpl final : public gyre::v1::AgentService::Service {
 public:
  explicit AgentServiceImpl(WorkflowEngine* engine) : engine_(engine) {}

  grpc::Status Connect(grpc::ServerContext* context,
                       grpc::ServerReaderWriter<gyre::v1::OrchestratorMessage,
                                                gyre::v1::AgentMessage>* stream) override;

  // Ends every open stream (server shutdown): agents reconnect elsewhere or
  // when the orchestrator is back.
  void CloseStreams();

 private:
  WorkflowEngine* engine_;
  absl::Mutex mutex_;
  absl::flat_hash_set<grpc::ServerContext*> open_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_SERVICE_H_
