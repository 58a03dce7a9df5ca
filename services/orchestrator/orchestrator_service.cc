#include "services/orchestrator/orchestrator_service.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/client_text.h"
#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Copies a StatusOr's value into `out` and maps its status.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *out = *std::move(result);
  return grpc::Status::OK;
}

// Names, ids and targets in a request: at most this many bytes. The
// longest a valid one can be is a task run name, "executions/{id}/tasks/"
// and a task id of at most 128 bytes; anything longer is refused here,
// before the engine compares it with anything under its lock (a 1 MB name
// once cost 41 s of "did you mean" there).
constexpr size_t kMaxNameBytes = 512;

// Why `value`, the request's field `field`, is too long to look at.
absl::Status CheckName(absl::string_view field, absl::string_view value) {
  if (value.size() <= kMaxNameBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " ", QuoteClientText(value),
                                                 " is longer than ", kMaxNameBytes, " bytes"));
}

absl::Status CheckNames(absl::string_view field,
                        const google::protobuf::RepeatedPtrField<std::string>& values) {
  for (int i = 0; i < values.size(); ++i) {
    if (absl::Status status = CheckName(absl::StrCat(field, "[", i, "]"), values[i]);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStart(const v1::StartExecutionRequest& request) {
  absl::Status status = CheckName("workflow", request.workflow());
  if (status.ok()) status = CheckName("definition.name", request.definition().name());
  if (status.ok()) status = CheckNames("targets", request.targets());
  if (status.ok()) status = CheckName("request_id", request.request_id());
  if (status.ok()) status = CheckName("parent", request.parent());
  return status;
}
// Holds one of the concurrent event streams (Watch, WatchBatches,
// RunExecution) for as long as it lives.
class StreamSlot {
 public:
  explicit StreamSlot(std::atomic<int>& open) : open_(open) {
    held_ = open_.fetch_add(1) < OrchestratorServiceImpl::kMaxEventStreams;
  }
  ~StreamSlot() { open_.fetch_sub(1); }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

  // Whether the stream may proceed; otherwise why not.
  grpc::Status Check(absl::string_view method) const {
    if (held_) return grpc::Status::OK;
    return ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        method, ": ", OrchestratorServiceImpl::kMaxEventStreams,
        " event streams (Watch, WatchBatches, RunExecution) are open, the most the orchestrator "
        "serves at once; retry later")));
  }

 private:
  std::atomic<int>& open_;
  bool held_ = false;
};

}  // namespace

grpc::Status OrchestratorServiceImpl::CreateWorkflow(grpc::ServerContext*,
                                                     const v1::CreateWorkflowRequest* request,
                                                     v1::WorkflowDefinition* response) {
  if (absl::Status status = CheckName("workflow.name", request->workflow().name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->CreateWorkflow(request->workflow()), response);
}

grpc::Status OrchestratorServiceImpl::GetWorkflow(grpc::ServerContext*,
                                                  const v1::GetWorkflowRequest* request,
                                                  v1::WorkflowDefinition* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->GetWorkflow(request->name()), response);
}

grpc::Status OrchestratorServiceImpl::ListWorkflows(grpc::ServerContext*,
                                                    const v1::ListWorkflowsRequest* request,
                                                    v1::ListWorkflowsResponse* response) {
  return Reply(engine_->ListWorkflows(*request), response);
}

grpc::Status OrchestratorServiceImpl::ListWorkflowVersions(
    grpc::ServerContext*, const v1::ListWorkflowVersionsRequest* request,
    v1::ListWorkflowsResponse* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (request->page_size() < 0 || request->page_size() > 1000) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("page_size ", request->page_size(), " is out of range 1..1000")));
  }
  // Built on GetWorkflow: versions are numbered 1..latest with no gaps
  // (a workflow's versions are only ever added, or all deleted together).
  absl::StatusOr<v1::WorkflowDefinition> latest = engine_->GetWorkflow(request->name());
  if (!latest.ok()) return ToGrpcStatus(latest.status());
  int64_t from = latest->version();
  if (!request->page_token().empty() &&
      (!absl::SimpleAtoi(request->page_token(), &from) || from < 1 || from > latest->version())) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("page_token ", QuoteClientText(request->page_token()),
                     " was not handed out by ListWorkflowVersions for ", latest->name())));
  }
  const int64_t page_size = request->page_size() == 0 ? 100 : request->page_size();
  int64_t version = from;
  for (; version >= 1 && response->workflows_size() < page_size; --version) {
    if (version == latest->version()) {
      *response->add_workflows() = *latest;
      continue;
    }
    absl::StatusOr<v1::WorkflowDefinition> stored =
        engine_->GetWorkflow(absl::StrCat(latest->name(), "/versions/", version));
    if (!stored.ok()) return ToGrpcStatus(stored.status());
    *response->add_workflows() = *std::move(stored);
  }
  if (version >= 1) response->set_next_page_token(absl::StrCat(version));
  return grpc::Status::OK;
}

grpc::Status OrchestratorServiceImpl::UpdateWorkflow(grpc::ServerContext*,
                                                     const v1::UpdateWorkflowRequest* request,
                                                     v1::WorkflowDefinition* response) {
  if (absl::Status status = CheckName("workflow.name", request->workflow().name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->UpdateWorkflow(request->workflow()), response);
}

grpc::Status OrchestratorServiceImpl::StartExecution(grpc::ServerContext*,
                                                     const v1::StartExecutionRequest* request,
                                                     v1::Execution* response) {
  if (absl::Status status = CheckStart(*request); !status.ok()) return ToGrpcStatus(status);
  if (request->source_case() == v1::StartExecutionRequest::SOURCE_NOT_SET) {
    return ToGrpcStatus(absl::InvalidArgumentError("start execution: set workflow or definition"));
  }
  // The request is gRPC's, alive and ours alone until this returns: its
  // definition (possibly tens of thousands of tasks) is moved, not copied.
  return Reply(engine_->StartExecution(std::move(*const_cast<v1::StartExecutionRequest*>(request))),
               response);
}

grpc::Status OrchestratorServiceImpl::GetTaskLibrary(grpc::ServerContext*,
                                                     const v1::GetTaskLibraryRequest*,
                                                     v1::WorkflowDefinition* response) {
  return Reply(engine_->GetTaskLibrary(), response);
}

grpc::Status OrchestratorServiceImpl::ScheduleOutcome(grpc::ServerContext*,
                                                      const v1::ScheduleOutcomeRequest* request,
                                                      v1::Execution* response) {
  absl::Status status = CheckNames("targets", request->targets());
  if (status.ok()) status = CheckName("request_id", request->request_id());
  if (!status.ok()) return ToGrpcStatus(status);
  return Reply(engine_->ScheduleOutcome(*request), response);
}

grpc::Status OrchestratorServiceImpl::GetExecution(grpc::ServerContext*,
                                                   const v1::GetExecutionRequest* request,
                                                   v1::Execution* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->GetExecution(request->name()), response);
}

grpc::Status OrchestratorServiceImpl::ListExecutions(grpc::ServerContext*,
                                                     const v1::ListExecutionsRequest* request,
                                                     v1::ListExecutionsResponse* response) {
  if (absl::Status status = CheckName("workflow", request->workflow()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->ListExecutions(*request), response);
}

grpc::Status OrchestratorServiceImpl::CancelExecution(grpc::ServerContext*,
                                                      const v1::CancelExecutionRequest* request,
                                                      v1::Execution* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->CancelExecution(request->name(), request->reason()), response);
}

grpc::Status OrchestratorServiceImpl::PauseExecution(grpc::ServerContext*,
                                                     const v1::PauseExecutionRequest* request,
                                                     v1::Execution* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->PauseExecution(request->name()), response);
}

grpc::Status OrchestratorServiceImpl::ResumeExecution(grpc::ServerContext*,
                                                      const v1::ResumeExecutionRequest* request,
                                                      v1::Execution* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->ResumeExecution(request->name()), response);
}

grpc::Status OrchestratorServiceImpl::GetTaskRun(grpc::ServerContext*,
                                                 const v1::GetTaskRunRequest* request,
                                                 v1::TaskRun* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->GetTaskRun(request->name()), response);
}

grpc::Status OrchestratorServiceImpl::ListTaskRuns(grpc::ServerContext*,
                                                   const v1::ListTaskRunsRequest* request,
                                                   v1::ListTaskRunsResponse* response) {
  if (absl::Status status = CheckName("parent", request->parent()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->ListTaskRuns(*request), response);
}

grpc::Status OrchestratorServiceImpl::GetTaskLogs(grpc::ServerContext*,
                                                  const v1::GetTaskLogsRequest* request,
                                                  v1::GetTaskLogsResponse* response) {
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  return Reply(engine_->GetTaskLogs(request->name(), request->attempt()), response);
}

template <typename Send>
grpc::Status OrchestratorServiceImpl::Follow(grpc::ServerContext* context,
                                             const std::shared_ptr<EventSubscription>& subscription,
                                             Send send) {
  // A client that stops reading blocks this thread in Write; once its
  // subscription is cut off for falling behind, cancelling the call is what
  // frees the thread (the client sees the call end).
  subscription->OnCutOff([context] { context->TryCancel(); });
  grpc::Status status;
  while (!context->IsCancelled() && !stopping_) {
    bool last = false;
    EventChunk chunk = subscription->Next(absl::Milliseconds(200), &last);
    if (!chunk.events.empty()) {
      if (absl::Status durable = engine_->AwaitDurable(); !durable.ok()) {
        status = ToGrpcStatus(durable);
        break;
      }
      if (!send(chunk, last)) break;
    }
    if (last) {
      if (absl::Status cut_off = subscription->error(); !cut_off.ok()) {
        status = ToGrpcStatus(cut_off);
      }
      break;
    }
  }
  engine_->Unwatch(subscription);
  subscription->OnCutOff(nullptr);  // the context goes when this returns
  if (status.ok() && context->IsCancelled()) {
    if (absl::Status cut_off = subscription->error(); !cut_off.ok()) {
      logging::Warn("watch stream cut off", {{"error", std::string(cut_off.message())}});
    }
  }
  return status;
}

template <typename Batch>
bool OrchestratorServiceImpl::WriteBatches(grpc::ServerWriter<Batch>* writer, Batch* batch,
                                           EventChunk& chunk, bool last) {
  // The messages live on the chunk's arena with its events: moving an event
  // into one is a pointer, and everything goes when the chunk does.
  size_t bytes = batch->ByteSizeLong();
  for (v1::Event* event : chunk.events) {
    const size_t size = event->ByteSizeLong();
    if (batch->events_size() > 0 &&
        (batch->events_size() == kMaxEventsPerBatch || bytes + size > kMaxBatchBytes)) {
      if (!writer->Write(*batch)) return false;
      batch = google::protobuf::Arena::CreateMessage<Batch>(chunk.arena.get());
      bytes = 0;
    }
    batch->mutable_events()->AddAllocated(event);
    bytes += size;
  }
  chunk.events.clear();  // owned by the messages now (all on the arena)
  if (last) {
    // The final message goes out with the status in one write: the sync API
    // sends it at Finish instead of waiting for it here.
    writer->WriteLast(*batch, grpc::WriteOptions());
    return true;
  }
  return writer->Write(*batch);
}

grpc::Status OrchestratorServiceImpl::Watch(grpc::ServerContext* context,
                                            const v1::WatchRequest* request,
                                            grpc::ServerWriter<v1::Event>* writer) {
  if (absl::Status status = CheckName("execution", request->execution()); !status.ok())
    return ToGrpcStatus(status);
  const StreamSlot slot(open_streams_);
  if (grpc::Status refused = slot.Check("watch"); !refused.ok()) return refused;
  absl::StatusOr<std::shared_ptr<EventSubscription>> subscription =
      engine_->Watch(request->execution(), request->from_sequence(), request->include_logs());
  if (!subscription.ok()) return ToGrpcStatus(subscription.status());
  return Follow(context, *subscription, [writer](EventChunk& chunk, bool last) {
    for (size_t i = 0; i < chunk.events.size(); ++i) {
      if (last && i + 1 == chunk.events.size()) {
        writer->WriteLast(*chunk.events[i], grpc::WriteOptions());  // as in WriteBatches
      } else if (!writer->Write(*chunk.events[i])) {
        return false;
      }
    }
    return true;
  });
}

grpc::Status OrchestratorServiceImpl::WatchBatches(grpc::ServerContext* context,
                                                   const v1::WatchRequest* request,
                                                   grpc::ServerWriter<v1::EventBatch>* writer) {
  if (absl::Status status = CheckName("execution", request->execution()); !status.ok())
    return ToGrpcStatus(status);
  const StreamSlot slot(open_streams_);
  if (grpc::Status refused = slot.Check("watch batches"); !refused.ok()) return refused;
  absl::StatusOr<std::shared_ptr<EventSubscription>> subscription =
      engine_->Watch(request->execution(), request->from_sequence(), request->include_logs());
  if (!subscription.ok()) return ToGrpcStatus(subscription.status());
  return Follow(context, *subscription, [writer](EventChunk& chunk, bool last) {
    return WriteBatches(writer,
                        google::protobuf::Arena::CreateMessage<v1::EventBatch>(chunk.arena.get()),
                        chunk, last);
  });
}

grpc::Status OrchestratorServiceImpl::RunExecution(
    grpc::ServerContext* context, const v1::RunExecutionRequest* request,
    grpc::ServerWriter<v1::RunExecutionResponse>* writer) {
  if (absl::Status status = CheckStart(request->start()); !status.ok()) return ToGrpcStatus(status);
  const StreamSlot slot(open_streams_);
  if (grpc::Status refused = slot.Check("run execution"); !refused.ok()) return refused;
  if (request->start().source_case() == v1::StartExecutionRequest::SOURCE_NOT_SET) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("run execution: set start.workflow or start.definition"));
  }
  // Moved, not copied, as in StartExecution.
  absl::StatusOr<WorkflowEngine::StartedExecution> started = engine_->StartAndWatch(
      std::move(*const_cast<v1::RunExecutionRequest*>(request)->mutable_start()),
      request->include_logs());
  if (!started.ok()) return ToGrpcStatus(started.status());
  // The first message goes out now, with the events already there (often
  // all of them: a short execution may end before its start is durable).
  bool last = false;
  EventChunk chunk = started->events->Next(absl::ZeroDuration(), &last);
  // The start is durable; the events that came with it may not be yet.
  if (absl::Status durable = engine_->AwaitDurable(); !durable.ok()) {
    engine_->Unwatch(started->events);
    return ToGrpcStatus(durable);
  }
  auto* first = google::protobuf::Arena::CreateMessage<v1::RunExecutionResponse>(chunk.arena.get());
  *first->mutable_execution() = std::move(started->execution);
  if (!WriteBatches(writer, first, chunk, last) || last) {
    engine_->Unwatch(started->events);
    return grpc::Status::OK;
  }
  return Follow(context, started->events, [writer](EventChunk& chunk, bool last) {
    return WriteBatches(
        writer, google::protobuf::Arena::CreateMessage<v1::RunExecutionResponse>(chunk.arena.get()),
        chunk, last);
  });
}

grpc::Status OrchestratorServiceImpl::ListQueues(grpc::ServerContext*, const v1::ListQueuesRequest*,
                                                 v1::ListQueuesResponse* response) {
  for (v1::QueueInfo& queue : engine_->ListQueues()) *response->add_queues() = std::move(queue);
  return grpc::Status::OK;
}

grpc::Status OrchestratorServiceImpl::ListAgents(grpc::ServerContext*, const v1::ListAgentsRequest*,
                                                 v1::ListAgentsResponse* response) {
  for (v1::AgentInfo& agent : engine_->ListAgents()) *response->add_agents() = std::move(agent);
  return grpc::Status::OK;
}

}  // namespace gyre::orchestrator
