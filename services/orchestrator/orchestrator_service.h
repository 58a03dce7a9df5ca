#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include <atomic>
#include <memory>
#include <vector>

#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {

// gRPC handlers of gyre.v1.OrchestratorService. Thin: each validates the
// request shape, calls the engine and maps its status once. RPCs not
// overridden here answer UNIMPLEMENTED naming the method. Thread-safe.
class OrchestratorServiceImpl final : public gyre::v1::OrchestratorService::Service {
 public:
  explicit OrchestratorServiceImpl(WorkflowEngine* engine) : engine_(engine) {}

  grpc::Status CreateWorkflow(grpc::ServerContext*, const gyre::v1::CreateWorkflowRequest*,
                              gyre::v1::WorkflowDefinition*) override;
  grpc::Status GetWorkflow(grpc::ServerContext*, const gyre::v1::GetWorkflowRequest*,
                           gyre::v1::WorkflowDefinition*) override;
  grpc::Status ListWorkflows(grpc::ServerContext*, const gyre::v1::ListWorkflowsRequest*,
                             gyre::v1::ListWorkflowsResponse*) override;
  // Every version of a workflow, newest first, read one by one through
  // the engine's GetWorkflow.
  grpc::Status ListWorkflowVersions(grpc::ServerContext*,
                                    const gyre::v1::ListWorkflowVersionsRequest*,
                                    gyre::v1::ListWorkflowsResponse*) override;
  grpc::Status UpdateWorkflow(grpc::ServerContext*, const gyre::v1::UpdateWorkflowRequest*,
                              gyre::v1::WorkflowDefinition*) override;
  grpc::Status StartExecution(grpc::ServerContext*, const gyre::v1::StartExecutionRequest*,
                              gyre::v1::Execution*) override;
  grpc::Status RunExecution(grpc::ServerContext*, const gyre::v1::RunExecutionRequest*,
                            grpc::ServerWriter<gyre::v1::RunExecutionResponse>*) override;
  grpc::Status GetTaskLibrary(grpc::ServerContext*, const gyre::v1::GetTaskLibraryRequest*,
                              gyre::v1::WorkflowDefinition*) override;
  grpc::Status ScheduleOutcome(grpc::ServerContext*, const gyre::v1::ScheduleOutcomeRequest*,
                               gyre::v1::Execution*) override;
  grpc::Status GetExecution(grpc::ServerContext*, const gyre::v1::GetExecutionRequest*,
                            gyre::v1::Execution*) override;
  grpc::Status ListExecutions(grpc::ServerContext*, const gyre::v1::ListExecutionsRequest*,
                              gyre::v1::ListExecutionsResponse*) override;
  grpc::Status CancelExecution(grpc::ServerContext*, const gyre::v1::CancelExecutionRequest*,
                               gyre::v1::Execution*) override;
  grpc::Status PauseExecution(grpc::ServerContext*, const gyre::v1::PauseExecutionRequest*,
                              gyre::v1::Execution*) override;
  grpc::Status ResumeExecution(grpc::ServerContext*, const gyre::v1::ResumeExecutionRequest*,
                               gyre::v1::Execution*) override;
  grpc::Status GetTaskRun(grpc::ServerContext*, const gyre::v1::GetTaskRunRequest*,
                          gyre::v1::TaskRun*) override;
  grpc::Status ListTaskRuns(grpc::ServerContext*, const gyre::v1::ListTaskRunsRequest*,
                            gyre::v1::ListTaskRunsResponse*) override;
  grpc::Status GetTaskLogs(grpc::ServerContext*, const gyre::v1::GetTaskLogsRequest*,
                           gyre::v1::GetTaskLogsResponse*) override;
  grpc::Status Watch(grpc::ServerContext*, const gyre::v1::WatchRequest*,
                     grpc::ServerWriter<gyre::v1::Event>*) override;
  grpc::Status WatchBatches(grpc::ServerContext*, const gyre::v1::WatchRequest*,
                            grpc::ServerWriter<gyre::v1::EventBatch>*) override;
  grpc::Status ListQueues(grpc::ServerContext*, const gyre::v1::ListQueuesRequest*,
                          gyre::v1::ListQueuesResponse*) override;
  grpc::Status ListAgents(grpc::ServerContext*, const gyre::v1::ListAgentsRequest*,
                          gyre::v1::ListAgentsResponse*) override;

  // Ends open Watch streams promptly on shutdown.
  void Stop() { stopping_ = true; }

  // Watch, WatchBatches and RunExecution streams open at once: each holds
  // a thread and a subscription the engine feeds under its lock, so their
  // number is bounded (RESOURCE_EXHAUSTED past it).
  static constexpr int kMaxEventStreams = 1024;

  // EventBatch limits (documented in the proto).
  static constexpr int kMaxEventsPerBatch = 4096;
  static constexpr size_t kMaxBatchBytes = size_t{1} << 20;

 private:
  // Follows a subscription until it ends, the client goes or the server
  // stops: hands every batch of pending events to `send(events, last)`
  // (`last`: nothing follows them), which returns false once the client is
  // gone. A batch goes out only once durable (WorkflowEngine::AwaitDurable);
  // the store's error, if it fails, ends the stream. Unwatches at the end.
  template <typename Send>
  grpc::Status Follow(grpc::ServerContext* context,
                      const std::shared_ptr<EventSubscription>& subscription, Send send);
  // Writes `batch`, on the chunk's arena (it may hold fields of its own,
  // such as RunExecution's execution), with the chunk's events appended,
  // split into messages within EventBatch's limits; the final one with the
  // status if `last`. False once the client is gone.
  template <typename Batch>
  static bool WriteBatches(grpc::ServerWriter<Batch>* writer, Batch* batch, EventChunk& chunk,
                           bool last);

  WorkflowEngine* engine_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_streams_{0};  // event streams open now (kMaxEventStreams)
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
