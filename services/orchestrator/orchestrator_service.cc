#include "services/orchestrator/orchestrator_service.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/client_text.h"
#include "libs/common/status_mapping.h"
#include "libs/common/tenant.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/task_run_page_stream.h"

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

// The tenant the gateway names for its caller ("x-gyre-tenant"); empty
// when the call comes straight from a gRPC client, which may act for any.
std::string CallerTenant(const grpc::ServerContextBase* context) {
  if (context == nullptr) return "";
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kTenantMetadata);
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), std::min<size_t>(it->second.size(), kMaxNameBytes));
}

// Logs a state-changing call that carries the gateway's "x-request-id", so
// one REST request can be followed from the gateway's log into this one.
// Reads are not logged: they change nothing and are most of the traffic.
void LogRequest(const grpc::ServerContext* context, absl::string_view rpc,
                absl::string_view target) {
  if (context == nullptr) return;
  const auto& metadata = context->client_metadata();
  auto id = metadata.find("x-request-id");
  if (id == metadata.end()) return;
  // The gateway sends at most 128 bytes of [A-Za-z0-9._-]; anything else is
  // quoted by the logger's JSON escaping and cut here.
  const absl::string_view request_id(id->second.data(), std::min<size_t>(id->second.size(), 128));
  auto tenant = metadata.find(kTenantMetadata);
  logging::Info("api request",
                {{"rpc", rpc},
                 {"request_id", request_id},
                 {"target", target.substr(0, kMaxNameBytes)},
                 {"tenant", tenant == metadata.end()
                                ? absl::string_view()
                                : absl::string_view(
                                      tenant->second.data(),
                                      std::min<size_t>(tenant->second.size(), kMaxNameBytes))}});
}

// NotFound, as for a name that does not exist, unless `stored` is
// `tenant`'s: another tenant's objects are not there for the caller.
absl::Status CheckTenant(absl::string_view tenant, absl::string_view stored,
                         absl::string_view name) {
  if (tenant.empty() || TenantOrDefault(stored) == tenant) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(QuoteClientText(name), " not found"));
}

// For a caller acting for a tenant: NotFound unless `name`, an execution
// or something in it ("executions/{id}/tasks/{task}"), is that tenant's.
absl::Status CheckExecutionTenant(WorkflowEngine& engine, const grpc::ServerContextBase* context,
                                  absl::string_view name) {
  const std::string tenant = CallerTenant(context);
  if (tenant.empty()) return absl::OkStatus();
  absl::string_view execution = name;
  if (size_t slash = name.find('/', name.find('/') + 1); slash != absl::string_view::npos) {
    execution = name.substr(0, slash);
  }
  absl::StatusOr<v1::Execution> stored = engine.GetExecution(execution);
  if (!stored.ok()) return absl::OkStatus();  // the call itself says what is wrong
  return CheckTenant(tenant, stored->tenant(), execution);
}

absl::Status CheckStart(const v1::StartExecutionRequest& request) {
  absl::Status status = CheckName("workflow", request.workflow());
  if (status.ok()) status = CheckName("definition.name", request.definition().name());
  if (status.ok()) status = CheckNames("targets", request.targets());
  if (status.ok()) status = CheckName("request_id", request.request_id());
  if (status.ok()) status = CheckName("parent", request.parent());
  return status;
}
}  // namespace

grpc::Status OrchestratorServiceImpl::CreateWorkflow(grpc::ServerContext* context,
                                                     const v1::CreateWorkflowRequest* request,
                                                     v1::WorkflowDefinition* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "CreateWorkflow");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "CreateWorkflow", request->workflow().name());
  if (absl::Status status = CheckName("workflow.name", request->workflow().name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = AdmitNewWork(); !status.ok()) return ToGrpcStatus(status);
  v1::WorkflowDefinition workflow = request->workflow();
  if (std::string tenant = CallerTenant(context); !tenant.empty()) workflow.set_tenant(tenant);
  return Reply(engine_->CreateWorkflow(std::move(workflow)), response);
}

grpc::Status OrchestratorServiceImpl::GetWorkflow(grpc::ServerContext* context,
                                                  const v1::GetWorkflowRequest* request,
                                                  v1::WorkflowDefinition* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "GetWorkflow");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  absl::StatusOr<v1::WorkflowDefinition> workflow = engine_->GetWorkflow(request->name());
  if (workflow.ok()) {
    if (absl::Status owned =
            CheckTenant(CallerTenant(context), workflow->tenant(), request->name());
        !owned.ok()) {
      workflow = owned;
    }
  }
  return Reply(std::move(workflow), response);
}

grpc::Status OrchestratorServiceImpl::ListWorkflows(grpc::ServerContext* context,
                                                    const v1::ListWorkflowsRequest* request,
                                                    v1::ListWorkflowsResponse* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ListWorkflows");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (std::string tenant = CallerTenant(context); !tenant.empty()) {
    v1::ListWorkflowsRequest own = *request;
    own.set_tenant(tenant);
    return Reply(engine_->ListWorkflows(own), response);
  }
  return Reply(engine_->ListWorkflows(*request), response);
}

grpc::Status OrchestratorServiceImpl::ListWorkflowVersions(
    grpc::ServerContext* context, const v1::ListWorkflowVersionsRequest* request,
    v1::ListWorkflowsResponse* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ListWorkflowVersions");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (request->page_size() < 0 || request->page_size() > 1000) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("page_size ", request->page_size(), " is out of range 1..1000")));
  }
  // Built on GetWorkflow: versions are numbered 1..latest with no gaps
  // (a workflow's versions are only ever added, or all deleted together).
  absl::StatusOr<v1::WorkflowDefinition> latest = engine_->GetWorkflow(request->name());
  if (latest.ok()) {
    if (absl::Status owned = CheckTenant(CallerTenant(context), latest->tenant(), request->name());
        !owned.ok()) {
      latest = owned;
    }
  }
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

grpc::Status OrchestratorServiceImpl::UpdateWorkflow(grpc::ServerContext* context,
                                                     const v1::UpdateWorkflowRequest* request,
                                                     v1::WorkflowDefinition* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "UpdateWorkflow");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "UpdateWorkflow", request->workflow().name());
  if (absl::Status status = CheckName("workflow.name", request->workflow().name()); !status.ok())
    return ToGrpcStatus(status);
  v1::WorkflowDefinition workflow = request->workflow();
  // A new version stays its workflow's tenant's; only that tenant may add it.
  const std::string tenant = CallerTenant(context);
  if (absl::StatusOr<v1::WorkflowDefinition> latest = engine_->GetWorkflow(workflow.name());
      latest.ok()) {
    if (absl::Status status = CheckTenant(tenant, latest->tenant(), workflow.name());
        !status.ok()) {
      return ToGrpcStatus(status);
    }
    if (workflow.tenant().empty() || !tenant.empty()) workflow.set_tenant(latest->tenant());
  }
  return Reply(engine_->UpdateWorkflow(std::move(workflow)), response);
}

std::optional<absl::StatusOr<OwnerForwarding::Target>> OrchestratorServiceImpl::ParentOwner(
    const grpc::ServerContextBase& context, absl::string_view parent) {
  if (forwarding_ == nullptr || parent.empty()) return std::nullopt;
  const uint32_t shard = ShardOfExecution(ExecutionIdOf(parent), forwarding_->shard_count());
  if (engine_->OwnsShard(shard)) return std::nullopt;
  absl::StatusOr<OwnerForwarding::Target> owner = forwarding_->Route(context, shard);
  // The directory naming this orchestrator: the engine answers.
  if (owner.ok() && owner->stub == nullptr) return std::nullopt;
  return owner;
}

absl::StatusOr<ClientLimits::Slot> OrchestratorServiceImpl::AdmitCall(
    const grpc::ServerContextBase& context, absl::string_view rpc) {
  return client_limits_->AcquireCall(ClientLimits::ClientOf(context), rpc);
}

absl::Status OrchestratorServiceImpl::AdmitStart(const grpc::ServerContextBase& context) {
  if (!start_limiter_.enabled()) return absl::OkStatus();
  absl::string_view principal;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("x-gyre-principal"); it != metadata.end()) {
    principal = absl::string_view(it->second.data(), it->second.size());
  }
  return start_limiter_.Admit(StartRateLimiter::ClientKey(principal, context.peer()), absl::Now());
}

grpc::Status OrchestratorServiceImpl::DeleteWorkflow(grpc::ServerContext* context,
                                                     const v1::DeleteWorkflowRequest* request,
                                                     google::protobuf::Empty*) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "DeleteWorkflow");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "DeleteWorkflow", request->name());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  const std::string tenant = CallerTenant(context);
  if (!tenant.empty()) {
    absl::StatusOr<v1::WorkflowDefinition> latest = engine_->GetWorkflow(request->name());
    if (!latest.ok()) return ToGrpcStatus(latest.status());
    if (absl::Status status = CheckTenant(tenant, latest->tenant(), request->name());
        !status.ok()) {
      return ToGrpcStatus(status);
    }
  }
  return ToGrpcStatus(engine_->DeleteWorkflow(request->name()));
}

grpc::Status OrchestratorServiceImpl::StartExecution(grpc::ServerContext* context,
                                                     const v1::StartExecutionRequest* request,
                                                     v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "StartExecution");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "StartExecution", request->workflow());
  if (absl::Status status = AdmitStart(*context); !status.ok()) return ToGrpcStatus(status);
  if (absl::Status status = CheckStart(*request); !status.ok()) return ToGrpcStatus(status);
  if (auto owner = ParentOwner(*context, request->parent()); owner.has_value()) {
    if (!owner->ok()) return ToGrpcStatus(owner->status());
    std::unique_ptr<grpc::ClientContext> client = forwarding_->UnaryContext(*context);
    return (*owner)->stub->StartExecution(client.get(), *request, response);
  }
  if (request->source_case() == v1::StartExecutionRequest::SOURCE_NOT_SET) {
    return ToGrpcStatus(absl::InvalidArgumentError("start execution: set workflow or definition"));
  }
  if (absl::Status status = AdmitNewWork(); !status.ok()) return ToGrpcStatus(status);
  // The execution belongs to its workflow's tenant: the caller's, checked
  // here (a stored workflow) or recorded now (an inline definition).
  if (std::string tenant = CallerTenant(context); !tenant.empty()) {
    if (request->has_definition()) {
      const_cast<v1::StartExecutionRequest*>(request)->mutable_definition()->set_tenant(tenant);
    } else if (absl::StatusOr<v1::WorkflowDefinition> workflow =
                   engine_->GetWorkflow(request->workflow());
               workflow.ok()) {
      if (absl::Status status = CheckTenant(tenant, workflow->tenant(), request->workflow());
          !status.ok()) {
        return ToGrpcStatus(status);
      }
    }
  }
  // The request is gRPC's, alive and ours alone until this returns: its
  // definition (possibly tens of thousands of tasks) is moved, not copied.
  return Reply(engine_->StartExecution(std::move(*const_cast<v1::StartExecutionRequest*>(request))),
               response);
}

grpc::Status OrchestratorServiceImpl::UpdatePriority(grpc::ServerContext* context,
                                                     const v1::UpdatePriorityRequest* request,
                                                     v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "UpdatePriority");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "UpdatePriority", request->name());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->name());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerOrForward<v1::UpdatePriorityRequest, v1::Execution>(
      forwarding_.get(), context, &OwnerForwarding::Stub::UpdatePriority, *request,
      [&] { return engine_->UpdatePriority(*request); }, response);
}

grpc::Status OrchestratorServiceImpl::GetTaskLibrary(grpc::ServerContext* context,
                                                     const v1::GetTaskLibraryRequest*,
                                                     v1::WorkflowDefinition* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "GetTaskLibrary");
  if (!call.ok()) return ToGrpcStatus(call.status());
  return Reply(engine_->GetTaskLibrary(), response);
}

grpc::Status OrchestratorServiceImpl::ScheduleOutcome(grpc::ServerContext* context,
                                                      const v1::ScheduleOutcomeRequest* request,
                                                      v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ScheduleOutcome");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "ScheduleOutcome", "");
  absl::Status status = CheckNames("targets", request->targets());
  if (status.ok()) status = CheckName("request_id", request->request_id());
  if (!status.ok()) return ToGrpcStatus(status);
  // The execution is the caller's tenant's; a retried request_id that names
  // another tenant's execution is not found, as that execution is.
  const std::string tenant = CallerTenant(context);
  auto local = [&]() -> absl::StatusOr<v1::Execution> {
    absl::StatusOr<v1::Execution> execution = engine_->ScheduleOutcome(*request, tenant);
    if (execution.ok()) {
      if (absl::Status owned = CheckTenant(tenant, execution->tenant(), execution->name());
          !owned.ok()) {
        execution = owned;
      }
    }
    return execution;
  };
  return AnswerOrForward<v1::ScheduleOutcomeRequest, v1::Execution>(
      forwarding_.get(), context, &OwnerForwarding::Stub::ScheduleOutcome, *request, local,
      response);
}

grpc::Status OrchestratorServiceImpl::GetExecution(grpc::ServerContext* context,
                                                   const v1::GetExecutionRequest* request,
                                                   v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "GetExecution");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  auto local = [&]() -> absl::StatusOr<v1::Execution> {
    absl::StatusOr<v1::Execution> execution = engine_->GetExecution(request->name());
    if (execution.ok()) {
      if (absl::Status owned =
              CheckTenant(CallerTenant(context), execution->tenant(), request->name());
          !owned.ok()) {
        execution = owned;
      }
    }
    return execution;
  };
  return AnswerOrForward<v1::GetExecutionRequest, v1::Execution>(
      forwarding_.get(), context, &OwnerForwarding::Stub::GetExecution, *request, local, response);
}

grpc::Status OrchestratorServiceImpl::ListExecutions(grpc::ServerContext* context,
                                                     const v1::ListExecutionsRequest* request,
                                                     v1::ListExecutionsResponse* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ListExecutions");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (absl::Status status = CheckName("workflow", request->workflow()); !status.ok())
    return ToGrpcStatus(status);
  if (forwarding_ != nullptr && !OwnerForwarding::IsForwarded(*context)) {
    // Several orchestrators: every one's executions, merged (a forwarded
    // call is one member's part of such a list: its own only).
    v1::ListExecutionsRequest all = *request;
    if (std::string tenant = CallerTenant(context); !tenant.empty()) all.set_tenant(tenant);
    return Reply(forwarding_->ListExecutions(*context, all,
                                             [this](const v1::ListExecutionsRequest& own) {
                                               return engine_->ListExecutions(own);
                                             }),
                 response);
  }
  if (std::string tenant = CallerTenant(context); !tenant.empty()) {
    v1::ListExecutionsRequest own = *request;
    own.set_tenant(tenant);
    return Reply(engine_->ListExecutions(own), response);
  }
  return Reply(engine_->ListExecutions(*request), response);
}

grpc::Status OrchestratorServiceImpl::CancelExecution(grpc::ServerContext* context,
                                                      const v1::CancelExecutionRequest* request,
                                                      v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "CancelExecution");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "CancelExecution", request->name());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->name());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerOrForward<v1::CancelExecutionRequest, v1::Execution>(
      forwarding_.get(), context, &OwnerForwarding::Stub::CancelExecution, *request,
      [&] { return engine_->CancelExecution(request->name(), request->reason()); }, response);
}

grpc::Status OrchestratorServiceImpl::PauseExecution(grpc::ServerContext* context,
                                                     const v1::PauseExecutionRequest* request,
                                                     v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "PauseExecution");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "PauseExecution", request->name());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->name());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerOrForward<v1::PauseExecutionRequest, v1::Execution>(
      forwarding_.get(), context, &OwnerForwarding::Stub::PauseExecution, *request,
      [&] { return engine_->PauseExecution(request->name()); }, response);
}

grpc::Status OrchestratorServiceImpl::ResumeExecution(grpc::ServerContext* context,
                                                      const v1::ResumeExecutionRequest* request,
                                                      v1::Execution* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ResumeExecution");
  if (!call.ok()) return ToGrpcStatus(call.status());
  LogRequest(context, "ResumeExecution", request->name());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->name());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerOrForward<v1::ResumeExecutionRequest, v1::Execution>(
      forwarding_.get(), context, &OwnerForwarding::Stub::ResumeExecution, *request,
      [&] { return engine_->ResumeExecution(request->name()); }, response);
}

grpc::Status OrchestratorServiceImpl::GetTaskRun(grpc::ServerContext* context,
                                                 const v1::GetTaskRunRequest* request,
                                                 v1::TaskRun* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "GetTaskRun");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->name());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerOrForward<v1::GetTaskRunRequest, v1::TaskRun>(
      forwarding_.get(), context, &OwnerForwarding::Stub::GetTaskRun, *request,
      [&] { return engine_->GetTaskRun(request->name()); }, response);
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::ListTaskRuns(
    grpc::CallbackServerContext* context, const v1::ListTaskRunsRequest* request,
    v1::ListTaskRunsResponse* response) {
  // Answered on gRPC's thread: the page is built under the engine lock,
  // which no one holds across I/O (a forwarded call, rare, waits for the
  // owner's answer here).
  const auto answer = [&]() -> grpc::Status {
    absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ListTaskRuns");
    if (!call.ok()) return ToGrpcStatus(call.status());
    if (absl::Status status = CheckName("parent", request->parent()); !status.ok())
      return ToGrpcStatus(status);
    if (absl::Status status = CheckExecutionTenant(*engine_, context, request->parent());
        !status.ok()) {
      return ToGrpcStatus(status);
    }
    return AnswerInPlaceOrForward<v1::ListTaskRunsRequest, v1::ListTaskRunsResponse>(
        forwarding_.get(), *context, &OwnerForwarding::Stub::ListTaskRuns, *request,
        [&](v1::ListTaskRunsResponse* page) { return engine_->ListTaskRuns(*request, page); },
        response);
  };
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(answer());
  return reactor;
}

grpc::Status OrchestratorServiceImpl::GetTaskLogs(grpc::ServerContext* context,
                                                  const v1::GetTaskLogsRequest* request,
                                                  v1::GetTaskLogsResponse* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "GetTaskLogs");
  if (!call.ok()) return ToGrpcStatus(call.status());
  if (absl::Status status = CheckName("name", request->name()); !status.ok())
    return ToGrpcStatus(status);
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->name());
      !status.ok()) {
    return ToGrpcStatus(status);
  }
  return AnswerOrForward<v1::GetTaskLogsRequest, v1::GetTaskLogsResponse>(
      forwarding_.get(), context, &OwnerForwarding::Stub::GetTaskLogs, *request,
      [&] { return engine_->GetTaskLogs(request->name(), request->attempt()); }, response);
}

namespace {

// Appends the chunk's events to `batch` (on the chunk's arena: it may hold
// fields of its own, such as RunExecution's execution) and to as many more
// batches as EventBatch's limits take; every batch goes to `out`. Moving
// an event into a batch is a pointer: everything goes when the chunk does.
template <typename Batch>
void SplitIntoBatches(Batch* batch, EventChunk& chunk, std::vector<const Batch*>* out) {
  size_t bytes = batch->ByteSizeLong();
  for (v1::Event* event : chunk.events) {
    const size_t size = event->ByteSizeLong();
    if (batch->events_size() > 0 &&
        (batch->events_size() == OrchestratorServiceImpl::kMaxEventsPerBatch ||
         bytes + size > OrchestratorServiceImpl::kMaxBatchBytes)) {
      out->push_back(batch);
      batch = google::protobuf::Arena::CreateMessage<Batch>(chunk.arena.get());
      bytes = 0;
    }
    batch->mutable_events()->AddAllocated(event);
    bytes += size;
  }
  chunk.events.clear();  // owned by the messages now (all on the arena)
  out->push_back(batch);
}

// One event stream (Watch, WatchBatches or RunExecution) on the callback
// API. It follows its subscription one chunk at a time: woken by the
// subscription (OnReady), a worker takes the next chunk, waits until it is
// durable and builds its messages; they are written one at a time; once the
// last is out, a worker takes the next chunk. So what a slow client has not
// read stays in its subscription, which cuts it off past its limit (the
// call is then cancelled, freeing a write that would never end).
//
// Lifetime: owned by shared pointers, held by gRPC (from creation to
// OnDone) and by the worker tasks in flight.
template <typename Message>
class EventStreamReactor final : public grpc::ServerWriteReactor<Message>,
                                 public EventStream,
                                 public std::enable_shared_from_this<EventStreamReactor<Message>> {
 public:
  // Builds a chunk's messages (on its arena).
  using Build = absl::AnyInvocable<void(EventChunk& chunk, std::vector<const Message*>* out)>;
  // Starts what the stream follows, on a worker (RunExecution starts an
  // execution, which waits for durability): the subscription, and maybe a
  // first chunk of messages to write before following it.
  struct Started {
    std::shared_ptr<EventSubscription> subscription;
    EventChunk chunk;
    std::vector<const Message*> messages;
    bool last = false;
  };
  using Start = absl::AnyInvocable<absl::StatusOr<Started>()>;

  static EventStreamReactor* Create(OrchestratorServiceImpl* service,
                                    grpc::CallbackServerContext* context, Build build) {
    auto reactor = std::shared_ptr<EventStreamReactor>(
        new EventStreamReactor(service, context, std::move(build)));
    reactor->self_ = reactor;
    return reactor.get();
  }

  // Drops a reactor never handed to gRPC: the call went to the execution's
  // owner (ForwardedStream) instead. May delete this.
  void Discard() { std::shared_ptr<EventStreamReactor> last = std::move(self_); }

  // Ends the stream at once with `status` (a refused request).
  EventStreamReactor* Refuse(grpc::Status status) {
    absl::MutexLock lock(&mutex_);
    FinishLocked(std::move(status));
    return this;
  }

  // Whether a place among max_event_streams was free, and one among the
  // caller's max_streams_per_client; otherwise why not.
  grpc::Status CheckSlot(absl::string_view method) {
    if (!slot_held_) {
      return ToGrpcStatus(absl::ResourceExhaustedError(
          absl::StrCat(method, ": ", service_->max_event_streams(),
                       " event streams (Watch, WatchBatches, RunExecution) are open, the most the "
                       "orchestrator serves at once (max_event_streams); retry later")));
    }
    absl::StatusOr<ClientLimits::Slot> slot =
        service_->client_limits().AcquireStream(ClientLimits::ClientOf(*context_), method);
    if (!slot.ok()) return ToGrpcStatus(slot.status());
    client_slot_ = *std::move(slot);
    return grpc::Status::OK;
  }

  // Follows `subscription` (Watch, WatchBatches).
  EventStreamReactor* Follow(std::shared_ptr<EventSubscription> subscription) {
    Begin(std::move(subscription));
    return this;
  }

  // Runs `start` on a worker, then follows what it started (RunExecution).
  EventStreamReactor* StartThenFollow(Start start) {
    {
      absl::MutexLock lock(&mutex_);
      state_ = State::kBusy;
    }
    service_->workers().Post([self = this->shared_from_this(), start = std::move(start)]() mutable {
      absl::StatusOr<Started> started = start();
      if (!started.ok()) {
        absl::MutexLock lock(&self->mutex_);
        self->FinishLocked(ToGrpcStatus(started.status()));
        return;
      }
      self->Begin(std::move(started->subscription), /*busy=*/true);
      if (started->messages.empty()) {
        self->Idle();
        return;
      }
      self->Deliver(std::move(started->chunk), std::move(started->messages), started->last);
    });
    return this;
  }

  void Stop() override {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    if (state_ == State::kIdle) FinishLocked(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    if (!ok) {
      FinishLocked(grpc::Status::OK);  // the client is gone (or the call was cut off)
      return;
    }
    if (next_ < messages_.size()) {
      WriteNextLocked();
      return;
    }
    // The chunk is out: its arena goes, the next chunk comes.
    messages_.clear();
    chunk_ = EventChunk();
    if (stopping_ || cancelled_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    PostPumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mutex_);
    cancelled_ = true;
    if (state_ == State::kIdle) FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    if (subscription_ != nullptr) {
      // After these return, the subscription's hooks never run again.
      subscription_->OnReady(nullptr);
      subscription_->OnCutOff(nullptr);
      service_->engine()->Unwatch(subscription_);
      if (absl::Status cut_off = subscription_->error(); !cut_off.ok()) {
        logging::Warn("watch stream cut off", {{"error", std::string(cut_off.message())}});
      }
    }
    if (tracked_) service_->Forget(this);
    std::shared_ptr<EventStreamReactor> last = std::move(self_);  // may delete this
  }

  ~EventStreamReactor() override { service_->open_streams().fetch_sub(1); }

 private:
  enum class State {
    kIdle,  // waiting for the subscription
    kBusy,  // a worker has it, or a chunk is being written
  };

  EventStreamReactor(OrchestratorServiceImpl* service, grpc::CallbackServerContext* context,
                     Build build)
      : service_(service), context_(context), build_(std::move(build)) {
    slot_held_ = service_->open_streams().fetch_add(1) < service_->max_event_streams();
  }

  void Begin(std::shared_ptr<EventSubscription> subscription, bool busy = false) {
    subscription_ = std::move(subscription);
    tracked_ = service_->Track(this);
    if (!tracked_) {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
      if (!busy) FinishLocked(grpc::Status::OK);
    }
    // A slow reader's write may never end: cancelling the call frees it.
    subscription_->OnCutOff([context = context_] { context->TryCancel(); });
    // Set last: it may run at once.
    subscription_->OnReady([this] {
      absl::MutexLock lock(&mutex_);
      if (state_ == State::kIdle) {
        PostPumpLocked();
      } else {
        woken_ = true;  // the pump in progress looks again
      }
    });
  }

  void PostPumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (finished_) return;
    state_ = State::kBusy;
    woken_ = false;
    service_->workers().Post([self = this->shared_from_this()] { self->Pump(); });
  }

  // On a worker: the next chunk, once durable, to the client.
  void Pump() {
    bool last = false;
    EventChunk chunk = subscription_->Next(absl::ZeroDuration(), &last);
    if (chunk.events.empty() && !last) {
      Idle();
      return;
    }
    if (!chunk.events.empty()) {
      if (absl::Status durable = service_->engine()->AwaitDurable(); !durable.ok()) {
        absl::MutexLock lock(&mutex_);
        FinishLocked(ToGrpcStatus(durable));
        return;
      }
    }
    std::vector<const Message*> messages;
    if (!chunk.events.empty()) build_(chunk, &messages);
    if (messages.empty()) {
      // The end, with nothing more to show: the cut-off's error, if any.
      absl::Status cut_off = subscription_->error();
      absl::MutexLock lock(&mutex_);
      FinishLocked(ToGrpcStatus(cut_off));
      return;
    }
    Deliver(std::move(chunk), std::move(messages), last);
  }

  // Nothing to show: wait for the subscription (unless it woke meanwhile).
  void Idle() {
    absl::MutexLock lock(&mutex_);
    if (stopping_ || cancelled_) {
      FinishLocked(grpc::Status::OK);
    } else if (woken_) {
      PostPumpLocked();
    } else {
      state_ = State::kIdle;
    }
  }

  void Deliver(EventChunk chunk, std::vector<const Message*> messages, bool last) {
    absl::MutexLock lock(&mutex_);
    if (stopping_ || cancelled_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    chunk_ = std::move(chunk);
    messages_ = std::move(messages);
    next_ = 0;
    last_ = last;
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    const Message* message = messages_[next_++];
    if (next_ == messages_.size() && last_) {
      // The final message goes out with the status in one write.
      finished_ = true;
      this->StartWriteAndFinish(message, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    this->StartWrite(message);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(std::move(status));
  }

  OrchestratorServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  Build build_;
  bool slot_held_ = false;
  ClientLimits::Slot client_slot_;  // the caller's, among max_streams_per_client
  bool tracked_ = false;
  // Set by Begin (on the RPC's thread or the start's worker), before any
  // hook or pump can read it.
  std::shared_ptr<EventSubscription> subscription_;
  std::shared_ptr<EventStreamReactor> self_;  // gRPC's hold, until OnDone

  absl::Mutex mutex_;
  State state_ ABSL_GUARDED_BY(mutex_) = State::kIdle;
  bool woken_ ABSL_GUARDED_BY(mutex_) = false;  // the subscription woke a busy stream
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  EventChunk chunk_ ABSL_GUARDED_BY(mutex_);  // the arena of the messages being written
  std::vector<const Message*> messages_ ABSL_GUARDED_BY(mutex_);
  size_t next_ ABSL_GUARDED_BY(mutex_) = 0;
  bool last_ ABSL_GUARDED_BY(mutex_) = false;
};

// A Watch, WatchBatches or RunExecution made on the execution's owner
// (OwnerForwarding): what the owner streams is written to the caller as it
// comes, one message in flight (the next is read only once the last is
// written, so a slow caller slows the owner's stream, whose own limits
// apply), and the owner's status ends the stream. It counts among the
// open streams here, as the caller's, and Stop ends it.
//
// Lifetime: deleted once both gRPC's server side (OnDone) and the call to
// the owner (Reader::OnDone) are done.
template <typename Request, typename Message>
class ForwardedStream final : public grpc::ServerWriteReactor<Message>, public EventStream {
 public:
  using Method = void (OwnerForwarding::Stub::async_interface::*)(
      grpc::ClientContext*, const Request*, grpc::ClientReadReactor<Message>*);

  // Starts the call on `owner` and returns the caller's side.
  static ForwardedStream* Start(OrchestratorServiceImpl* service, OwnerForwarding& forwarding,
                                grpc::CallbackServerContext* context,
                                const OwnerForwarding::Target& owner, Method method,
                                const Request& request, absl::string_view what) {
    auto* stream = new ForwardedStream(service);
    if (service->open_streams().fetch_add(1) >= service->max_event_streams()) {
      return stream->Refuse(ToGrpcStatus(absl::ResourceExhaustedError(
          absl::StrCat(what, ": ", service->max_event_streams(),
                       " event streams (Watch, WatchBatches, RunExecution) are open, the most the "
                       "orchestrator serves at once (max_event_streams); retry later"))));
    }
    absl::StatusOr<ClientLimits::Slot> slot =
        service->client_limits().AcquireStream(ClientLimits::ClientOf(*context), what);
    if (!slot.ok()) return stream->Refuse(ToGrpcStatus(slot.status()));
    stream->client_slot_ = *std::move(slot);
    stream->tracked_ = service->Track(stream);
    if (!stream->tracked_) return stream->Refuse(grpc::Status::OK);  // stopping
    stream->client_.set_deadline(context->deadline());
    forwarding.CopyMetadata(*context, &stream->client_);
    stream->request_ = request;
    stream->refs_.store(2);
    (owner.stub->async()->*method)(&stream->client_, &stream->request_, &stream->reader_);
    stream->reader_.StartRead(&stream->message_);
    stream->reader_.StartCall();
    return stream;
  }

  void Stop() override {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    client_.TryCancel();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mutex_);
      writing_ = false;
      if (owner_done_) {
        FinishLocked();
        return;
      }
    }
    if (ok) {
      reader_.StartRead(&message_);
    } else {
      client_.TryCancel();  // the caller is gone
    }
  }

  void OnCancel() override { client_.TryCancel(); }

  void OnDone() override {
    if (tracked_) service_->Forget(this);
    Unref();
  }

  ~ForwardedStream() override { service_->open_streams().fetch_sub(1); }

 private:
  // The call to the owner.
  class Reader final : public grpc::ClientReadReactor<Message> {
   public:
    explicit Reader(ForwardedStream* stream) : stream_(stream) {}
    void OnReadDone(bool ok) override {
      if (!ok) return;  // OnDone follows, with the owner's status
      absl::MutexLock lock(&stream_->mutex_);
      stream_->writing_ = true;
      stream_->StartWrite(&stream_->message_);
    }
    void OnDone(const grpc::Status& status) override {
      {
        absl::MutexLock lock(&stream_->mutex_);
        stream_->owner_done_ = true;
        stream_->status_ = status;
        if (!stream_->writing_) stream_->FinishLocked();
      }
      stream_->Unref();
    }

   private:
    ForwardedStream* const stream_;
  };

  explicit ForwardedStream(OrchestratorServiceImpl* service) : service_(service) {}

  ForwardedStream* Refuse(grpc::Status status) {
    absl::MutexLock lock(&mutex_);
    status_ = std::move(status);
    FinishLocked();
    return this;
  }

  void FinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(stopping_ ? grpc::Status::OK : status_);
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  OrchestratorServiceImpl* const service_;
  ClientLimits::Slot client_slot_;
  bool tracked_ = false;
  std::atomic<int> refs_{1};  // the server side, and the owner's call once started
  grpc::ClientContext client_;
  Request request_;
  Message message_;  // read from the owner, then written to the caller
  Reader reader_{this};

  absl::Mutex mutex_;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool owner_done_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mutex_);
};

// Watch and WatchBatches: follows the execution here, or, when another
// orchestrator owns it, forwards the call there.
template <typename Message>
grpc::ServerWriteReactor<Message>* FollowOrForward(
    OrchestratorServiceImpl* service, OwnerForwarding* forwarding,
    grpc::CallbackServerContext* context, const v1::WatchRequest& request,
    EventStreamReactor<Message>* reactor,
    typename ForwardedStream<v1::WatchRequest, Message>::Method method, absl::string_view what) {
  absl::StatusOr<std::shared_ptr<EventSubscription>> subscription = service->engine()->Watch(
      request.execution(), request.from_sequence(), request.include_logs());
  if (subscription.ok()) return reactor->Follow(*std::move(subscription));
  std::optional<uint32_t> shard =
      forwarding == nullptr ? std::nullopt : NotOwnedShard(subscription.status());
  if (!shard.has_value()) return reactor->Refuse(ToGrpcStatus(subscription.status()));
  absl::StatusOr<OwnerForwarding::Target> owner = forwarding->Route(*context, *shard);
  if (!owner.ok()) return reactor->Refuse(ToGrpcStatus(owner.status()));
  if (owner->stub == nullptr) {
    // The directory names this orchestrator: once more here.
    subscription = service->engine()->Watch(request.execution(), request.from_sequence(),
                                            request.include_logs());
    if (subscription.ok()) return reactor->Follow(*std::move(subscription));
    if (NotOwnedShard(subscription.status()).has_value()) {
      return reactor->Refuse(ToGrpcStatus(OwnerForwarding::Moving(
          *shard, "the directory names this orchestrator, which does not own it")));
    }
    return reactor->Refuse(ToGrpcStatus(subscription.status()));
  }
  reactor->Discard();
  return ForwardedStream<v1::WatchRequest, Message>::Start(service, *forwarding, context, *owner,
                                                           method, request, what);
}

}  // namespace

bool OrchestratorServiceImpl::Track(EventStream* stream) {
  absl::MutexLock lock(&mutex_);
  if (stopping_) return false;
  streams_.insert(stream);
  return true;
}

void OrchestratorServiceImpl::Forget(EventStream* stream) {
  absl::MutexLock lock(&mutex_);
  streams_.erase(stream);
}

void OrchestratorServiceImpl::Stop() {
  absl::MutexLock lock(&mutex_);
  stopping_ = true;
  for (EventStream* stream : streams_) stream->Stop();
}

grpc::ServerWriteReactor<v1::Event>* OrchestratorServiceImpl::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  auto* reactor = EventStreamReactor<v1::Event>::Create(
      this, context, [](EventChunk& chunk, std::vector<const v1::Event*>* out) {
        out->assign(chunk.events.begin(), chunk.events.end());
      });
  if (absl::Status status = CheckName("execution", request->execution()); !status.ok())
    return reactor->Refuse(ToGrpcStatus(status));
  if (grpc::Status refused = reactor->CheckSlot("watch"); !refused.ok())
    return reactor->Refuse(refused);
  return FollowOrForward(this, forwarding_.get(), context, *request, reactor,
                         &OwnerForwarding::Stub::async_interface::Watch, "watch");
}

grpc::ServerWriteReactor<v1::EventBatch>* OrchestratorServiceImpl::WatchBatches(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  auto* reactor = EventStreamReactor<v1::EventBatch>::Create(
      this, context, [](EventChunk& chunk, std::vector<const v1::EventBatch*>* out) {
        SplitIntoBatches(google::protobuf::Arena::CreateMessage<v1::EventBatch>(chunk.arena.get()),
                         chunk, out);
      });
  if (absl::Status status = CheckName("execution", request->execution()); !status.ok())
    return reactor->Refuse(ToGrpcStatus(status));
  if (grpc::Status refused = reactor->CheckSlot("watch batches"); !refused.ok())
    return reactor->Refuse(refused);
  return FollowOrForward(this, forwarding_.get(), context, *request, reactor,
                         &OwnerForwarding::Stub::async_interface::WatchBatches, "watch batches");
}

grpc::ServerWriteReactor<v1::RunExecutionResponse>* OrchestratorServiceImpl::RunExecution(
    grpc::CallbackServerContext* context, const v1::RunExecutionRequest* request) {
  using Reactor = EventStreamReactor<v1::RunExecutionResponse>;
  // A child of an execution another orchestrator owns starts there.
  std::optional<absl::StatusOr<OwnerForwarding::Target>> owner =
      ParentOwner(*context, request->start().parent());
  if (owner.has_value() && owner->ok()) {
    return ForwardedStream<v1::RunExecutionRequest, v1::RunExecutionResponse>::Start(
        this, *forwarding_, context, **owner, &OwnerForwarding::Stub::async_interface::RunExecution,
        *request, "run execution");
  }
  auto* reactor = Reactor::Create(
      this, context, [](EventChunk& chunk, std::vector<const v1::RunExecutionResponse*>* out) {
        SplitIntoBatches(
            google::protobuf::Arena::CreateMessage<v1::RunExecutionResponse>(chunk.arena.get()),
            chunk, out);
      });
  if (owner.has_value()) return reactor->Refuse(ToGrpcStatus(owner->status()));
  if (absl::Status status = AdmitStart(*context); !status.ok())
    return reactor->Refuse(ToGrpcStatus(status));
  if (absl::Status status = CheckStart(request->start()); !status.ok())
    return reactor->Refuse(ToGrpcStatus(status));
  if (absl::Status status = AdmitNewWork(); !status.ok())
    return reactor->Refuse(ToGrpcStatus(status));
  if (grpc::Status refused = reactor->CheckSlot("run execution"); !refused.ok())
    return reactor->Refuse(refused);
  if (request->start().source_case() == v1::StartExecutionRequest::SOURCE_NOT_SET) {
    return reactor->Refuse(ToGrpcStatus(
        absl::InvalidArgumentError("run execution: set start.workflow or start.definition")));
  }
  // The start waits for durability: on a worker. The request is gRPC's,
  // alive and ours alone until the stream is done: moved, not copied.
  auto* mutable_request = const_cast<v1::RunExecutionRequest*>(request);
  return reactor->StartThenFollow([this, mutable_request]() -> absl::StatusOr<Reactor::Started> {
    absl::StatusOr<WorkflowEngine::StartedExecution> started = engine_->StartAndWatch(
        std::move(*mutable_request->mutable_start()), mutable_request->include_logs());
    if (!started.ok()) return started.status();
    // The first message goes out now, with the events already there (often
    // all of them: a short execution may end before its start is durable).
    Reactor::Started first;
    first.subscription = started->events;
    first.chunk = first.subscription->Next(absl::ZeroDuration(), &first.last);
    // The start is durable; the events that came with it may not be yet.
    if (absl::Status durable = engine_->AwaitDurable(); !durable.ok()) {
      engine_->Unwatch(first.subscription);
      return durable;
    }
    auto* message =
        google::protobuf::Arena::CreateMessage<v1::RunExecutionResponse>(first.chunk.arena.get());
    *message->mutable_execution() = std::move(started->execution);
    SplitIntoBatches(message, first.chunk, &first.messages);
    return first;
  });
}

grpc::ServerWriteReactor<v1::ListTaskRunsResponse>* OrchestratorServiceImpl::StreamTaskRuns(
    grpc::CallbackServerContext* context, const v1::ListTaskRunsRequest* request) {
  // The caller's calls in flight count it, as they count ListTaskRuns: it
  // is a read that ends by itself.
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "StreamTaskRuns");
  auto stream = std::make_unique<TaskRunPageStream>(
      *request,
      [engine = engine_](const v1::ListTaskRunsRequest& page_request,
                         v1::ListTaskRunsResponse* page) {
        return engine->ListTaskRuns(page_request, page);
      },
      &workers_, call.ok() ? *std::move(call) : ClientLimits::Slot());
  if (!call.ok()) return stream.release()->Refuse(ToGrpcStatus(call.status()));
  if (absl::Status status = CheckName("parent", request->parent()); !status.ok())
    return stream.release()->Refuse(ToGrpcStatus(status));
  if (absl::Status status = CheckExecutionTenant(*engine_, context, request->parent());
      !status.ok()) {
    return stream.release()->Refuse(ToGrpcStatus(status));
  }
  // The first page here says whether the execution is here (as
  // AnswerInPlaceOrForward does for ListTaskRuns).
  absl::Status first = stream->FillFirst();
  if (std::optional<uint32_t> shard = forwarding_ == nullptr ? std::nullopt : NotOwnedShard(first);
      shard.has_value()) {
    absl::StatusOr<OwnerForwarding::Target> owner = forwarding_->Route(*context, *shard);
    if (!owner.ok()) return stream.release()->Refuse(ToGrpcStatus(owner.status()));
    if (owner->stub != nullptr) {
      stream.reset();  // never handed to gRPC
      return ForwardedStream<v1::ListTaskRunsRequest, v1::ListTaskRunsResponse>::Start(
          this, *forwarding_, context, *owner,
          &OwnerForwarding::Stub::async_interface::StreamTaskRuns, *request, "stream task runs");
    }
    // The directory names this orchestrator: once more here.
    first = stream->FillFirst();
    if (NotOwnedShard(first).has_value()) {
      first = OwnerForwarding::Moving(
          *shard, "the directory names this orchestrator, which does not own it");
    }
  }
  if (!first.ok()) return stream.release()->Refuse(ToGrpcStatus(first));
  return stream.release()->Start();
}

grpc::Status OrchestratorServiceImpl::ListQueues(grpc::ServerContext* context,
                                                 const v1::ListQueuesRequest*,
                                                 v1::ListQueuesResponse* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ListQueues");
  if (!call.ok()) return ToGrpcStatus(call.status());
  for (v1::QueueInfo& queue : engine_->ListQueues()) *response->add_queues() = std::move(queue);
  for (const auto& [type, price] : worker_prices_) {
    v1::WorkerPrice& out = (*response->mutable_worker_prices())[type];
    out.set_core_hour(price.core_hour);
    out.set_gib_hour(price.gib_hour);
    out.set_gpu_hour(price.gpu_hour);
  }
  return grpc::Status::OK;
}

grpc::Status OrchestratorServiceImpl::ListAgents(grpc::ServerContext* context,
                                                 const v1::ListAgentsRequest*,
                                                 v1::ListAgentsResponse* response) {
  absl::StatusOr<ClientLimits::Slot> call = AdmitCall(*context, "ListAgents");
  if (!call.ok()) return ToGrpcStatus(call.status());
  for (v1::AgentInfo& agent : engine_->ListAgents()) *response->add_agents() = std::move(agent);
  return grpc::Status::OK;
}

}  // namespace gyre::orchestrator
