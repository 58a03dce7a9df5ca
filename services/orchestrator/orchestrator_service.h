#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/common/task_cost.h"
#include "services/orchestrator/client_limits.h"
#include "services/orchestrator/disk_space_guard.h"
#include "services/orchestrator/owner_forwarding.h"
#include "services/orchestrator/shard_directory.h"
#include "services/orchestrator/start_rate_limiter.h"
#include "services/orchestrator/stream_workers.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {

// An open event stream, as Stop sees it.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Ends the stream (OK) once what is being written is out.
  virtual void Stop() = 0;
};

// The service's base: the event streams (Watch, WatchBatches,
// RunExecution) and StreamTaskRuns on gRPC's callback API, and
// ListTaskRuns, whose messages live on an arena (ArenaMessageAllocator);
// the other unary RPCs synchronous.
using OrchestratorServiceBase = gyre::v1::OrchestratorService::WithCallbackMethod_StreamTaskRuns<
    gyre::v1::OrchestratorService::WithCallbackMethod_ListTaskRuns<
        gyre::v1::OrchestratorService::WithCallbackMethod_Watch<
            gyre::v1::OrchestratorService::WithCallbackMethod_WatchBatches<
                gyre::v1::OrchestratorService::WithCallbackMethod_RunExecution<
                    gyre::v1::OrchestratorService::Service>>>>>;

// A call's request and response on an arena of its own, freed whole when
// gRPC is done with them: a page of ListTaskRuns is ~20,000 small messages
// and strings (1,000 task runs with their attempts and times), whose
// allocations and frees were half of the call's CPU (perf, 2026-12-04).
template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    google::protobuf::Arena arena_;
  };
};

// gRPC handlers of gyre.v1.OrchestratorService. Thin: each validates the
// request shape, calls the engine and maps its status once. RPCs not
// overridden here answer UNIMPLEMENTED naming the method. Thread-safe.
//
// The event streams are reactors on gRPC's callback API, so an idle stream
// holds no thread: each waits for its subscription (EventSubscription::
// OnReady), takes a chunk of events, waits for it to be durable and writes
// it, one message in flight, before it takes the next; the waits (and the
// replay of stored events) run on a few StreamWorkers threads, never on
// gRPC's. A subscriber that stops reading fills its subscription and is cut
// off there (the call is cancelled), as before.
class OrchestratorServiceImpl final : public OrchestratorServiceBase {
 public:
  // `start_rate`: executions started per second per client (off by default).
  explicit OrchestratorServiceImpl(WorkflowEngine* engine,
                                   StartRateLimiter::Options start_rate = {})
      : engine_(engine), start_limiter_(start_rate) {
    SetMessageAllocatorFor_ListTaskRuns(&task_runs_allocator_);
  }

  // New work (CreateWorkflow, StartExecution, RunExecution) is refused
  // while `guard` says the data directory is nearly full (not owned; null:
  // no check).
  void set_disk_space_guard(DiskSpaceGuard* guard) { disk_space_guard_ = guard; }

  // Several orchestrators sharing one PostgreSQL (issue 21): a call about
  // an execution another orchestrator owns is made on it, per `directory`
  // (not owned), and ListExecutions lists every one's (owner_forwarding.h).
  // Null, the default (one orchestrator): nothing is forwarded and nothing
  // on any path looks. Set before serving.
  void set_shard_directory(const ShardDirectory* directory, OwnerForwarding::Options options = {}) {
    forwarding_ = directory == nullptr
                      ? nullptr
                      : std::make_unique<OwnerForwarding>(directory, std::move(options));
  }

  // The prices ListQueues reports (config worker_prices).
  void set_worker_prices(std::map<std::string, ResourcePrices> prices) {
    worker_prices_ = std::move(prices);
  }

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
  grpc::Status DeleteWorkflow(grpc::ServerContext*, const gyre::v1::DeleteWorkflowRequest*,
                              google::protobuf::Empty*) override;
  grpc::Status StartExecution(grpc::ServerContext*, const gyre::v1::StartExecutionRequest*,
                              gyre::v1::Execution*) override;
  grpc::ServerWriteReactor<gyre::v1::RunExecutionResponse>* RunExecution(
      grpc::CallbackServerContext* context, const gyre::v1::RunExecutionRequest* request) override;
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
  grpc::Status UpdatePriority(grpc::ServerContext*, const gyre::v1::UpdatePriorityRequest*,
                              gyre::v1::Execution*) override;
  grpc::Status GetTaskRun(grpc::ServerContext*, const gyre::v1::GetTaskRunRequest*,
                          gyre::v1::TaskRun*) override;
  grpc::ServerUnaryReactor* ListTaskRuns(grpc::CallbackServerContext* context,
                                         const gyre::v1::ListTaskRunsRequest* request,
                                         gyre::v1::ListTaskRunsResponse* response) override;
  // Every page ListTaskRuns would return, the next built while the last is
  // written (TaskRunPageStream); about an execution another orchestrator
  // owns, the owner's stream, relayed (ForwardedStream).
  grpc::ServerWriteReactor<gyre::v1::ListTaskRunsResponse>* StreamTaskRuns(
      grpc::CallbackServerContext* context, const gyre::v1::ListTaskRunsRequest* request) override;
  grpc::Status GetTaskLogs(grpc::ServerContext*, const gyre::v1::GetTaskLogsRequest*,
                           gyre::v1::GetTaskLogsResponse*) override;
  grpc::ServerWriteReactor<gyre::v1::Event>* Watch(grpc::CallbackServerContext* context,
                                                   const gyre::v1::WatchRequest* request) override;
  grpc::ServerWriteReactor<gyre::v1::EventBatch>* WatchBatches(
      grpc::CallbackServerContext* context, const gyre::v1::WatchRequest* request) override;
  grpc::Status ListQueues(grpc::ServerContext*, const gyre::v1::ListQueuesRequest*,
                          gyre::v1::ListQueuesResponse*) override;
  grpc::Status ListAgents(grpc::ServerContext*, const gyre::v1::ListAgentsRequest*,
                          gyre::v1::ListAgentsResponse*) override;

  // Ends open event streams promptly on shutdown (OK, as a finished one).
  void Stop();

  // Watch, WatchBatches and RunExecution streams open at once: each holds
  // a subscription the engine feeds under its lock, so their number is
  // bounded (RESOURCE_EXHAUSTED past it). The default of max_event_streams.
  static constexpr int kMaxEventStreams = 1024;

  // Set before serving: the global stream bound (config max_event_streams)
  // and what one client may hold (ClientLimits).
  void set_max_event_streams(int max) { max_event_streams_ = max; }
  int max_event_streams() const { return max_event_streams_; }
  // `limits`: not owned, shared with the agent service.
  void set_client_limits(ClientLimits* limits) { client_limits_ = limits; }
  ClientLimits& client_limits() { return *client_limits_; }

  // EventBatch limits (documented in the proto).
  static constexpr int kMaxEventsPerBatch = 4096;
  static constexpr size_t kMaxBatchBytes = size_t{1} << 20;

  // For the streams (orchestrator_service.cc).
  WorkflowEngine* engine() { return engine_; }
  StreamWorkers& workers() { return workers_; }
  std::atomic<int>& open_streams() { return open_streams_; }
  // Registers an open stream for Stop; false if the service is stopping.
  bool Track(EventStream* stream);
  void Forget(EventStream* stream);

 private:
  // RESOURCE_EXHAUSTED when the caller of `context` starts executions too
  // fast (StartRateLimiter).
  absl::Status AdmitStart(const grpc::ServerContextBase& context);
  // A unary call in flight for the caller of `context`, or
  // RESOURCE_EXHAUSTED past max_inflight_calls_per_client.
  absl::StatusOr<ClientLimits::Slot> AdmitCall(const grpc::ServerContextBase& context,
                                               absl::string_view rpc);

  // Several orchestrators: where a child of `parent` starts when another
  // orchestrator owns `parent`'s shard (a child lives in its parent's
  // shard): the owner, or why it cannot be reached. nullopt: here.
  std::optional<absl::StatusOr<OwnerForwarding::Target>> ParentOwner(
      const grpc::ServerContextBase& context, absl::string_view parent);

  absl::Status AdmitNewWork() {
    return disk_space_guard_ == nullptr ? absl::OkStatus()
                                        : disk_space_guard_->CheckRoomForNewWork();
  }

  WorkflowEngine* engine_;
  ArenaMessageAllocator<gyre::v1::ListTaskRunsRequest, gyre::v1::ListTaskRunsResponse>
      task_runs_allocator_;
  StartRateLimiter start_limiter_;
  int max_event_streams_ = kMaxEventStreams;
  ClientLimits* client_limits_ = ClientLimits::Unlimited();
  std::map<std::string, ResourcePrices> worker_prices_;
  DiskSpaceGuard* disk_space_guard_ = nullptr;
  std::unique_ptr<OwnerForwarding> forwarding_;  // null: one orchestrator
  std::atomic<int> open_streams_{0};             // event streams open now (kMaxEventStreams)
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  absl::flat_hash_set<EventStream*> streams_ ABSL_GUARDED_BY(mutex_);
  // Durability waits and replays of the event streams. Last: joined first.
  StreamWorkers workers_{4};
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
