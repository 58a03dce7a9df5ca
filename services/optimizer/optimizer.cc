#include "services/optimizer/optimizer.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/status_mapping.h"
#include "libs/workflow/workflow_graph.h"

namespace gyre::optimizer {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Duration Dur(double seconds) {
  return TimeUtil::NanosecondsToDuration(static_cast<int64_t>(std::llround(seconds * 1e9)));
}

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

std::string DurationText(const google::protobuf::Duration& d) {
  return d.seconds() == 0 && d.nanos() == 0 ? "none" : TimeUtil::ToString(d);
}

gyre::v1::Recommendation::Kind ToKind(RecommendationKind kind) {
  switch (kind) {
    case RecommendationKind::kPrioritizeCriticalPath:
      return gyre::v1::Recommendation::PRIORITIZE_CRITICAL_PATH;
    case RecommendationKind::kRaisePoolMax:
      return gyre::v1::Recommendation::ADD_CAPACITY;
    case RecommendationKind::kSetTimeout:
      return gyre::v1::Recommendation::SET_TIMEOUT;
    case RecommendationKind::kReduceRetries:
      return gyre::v1::Recommendation::REDUCE_RETRIES;
    case RecommendationKind::kRunInParallel:
      return gyre::v1::Recommendation::RUN_IN_PARALLEL;
    case RecommendationKind::kSplitTask:
      return gyre::v1::Recommendation::SPLIT_TASK;
    case RecommendationKind::kSetMemory:
      return gyre::v1::Recommendation::SET_RESOURCES;
  }
  return gyre::v1::Recommendation::KIND_UNSPECIFIED;
}

gyre::v1::Bottleneck::Kind ToKind(FindingKind kind) {
  switch (kind) {
    case FindingKind::kFanIn:
      return gyre::v1::Bottleneck::FAN_IN;
    case FindingKind::kSerialChain:
      return gyre::v1::Bottleneck::SERIAL_CHAIN;
    case FindingKind::kPoolCap:
      return gyre::v1::Bottleneck::POOL_CAP;
    case FindingKind::kTimeoutTooLow:
      return gyre::v1::Bottleneck::TIMEOUT_TOO_LOW;
    case FindingKind::kTimeoutTooHigh:
      return gyre::v1::Bottleneck::TIMEOUT_TOO_HIGH;
    case FindingKind::kFutileRetries:
      return gyre::v1::Bottleneck::FUTILE_RETRIES;
    case FindingKind::kMemoryMisfit:
      return gyre::v1::Bottleneck::MEMORY_MISFIT;
  }
  return gyre::v1::Bottleneck::KIND_UNSPECIFIED;
}

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
  return context;
}

absl::Status Prefixed(const grpc::Status& status, const std::string& what) {
  absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

bool IsFinal(gyre::v1::ExecutionState state) {
  return state == gyre::v1::EXECUTION_SUCCEEDED || state == gyre::v1::EXECUTION_FAILED ||
         state == gyre::v1::EXECUTION_CANCELLED;
}

}  // namespace

Optimizer::Optimizer(std::shared_ptr<gyre::v1::OrchestratorService::StubInterface> orchestrator,
                     absl::Duration call_timeout,
                     std::shared_ptr<gyre::v1::PredictorService::StubInterface> predictor,
                     absl::Duration predict_timeout)
    : orchestrator_(std::move(orchestrator)),
      call_timeout_(call_timeout),
      predictor_(std::move(predictor)),
      predict_timeout_(predict_timeout) {}

absl::Status Optimizer::NeedOrchestrator(const std::string& what) const {
  if (orchestrator_ != nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what,
                   ": this optimizer has no orchestrator_address to fetch it from; send the "
                   "definition inline"));
}

absl::Status Optimizer::AddHistory(const std::string& execution, AnalysisInput* input,
                                   bool actual_durations, gyre::v1::Execution* fetched) {
  if (!absl::StartsWith(execution, "executions/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("execution \"", execution, "\": expected \"executions/{id}\""));
  }
  if (absl::Status s = NeedOrchestrator(execution); !s.ok()) return s;
  gyre::v1::GetExecutionRequest get;
  get.set_name(execution);
  gyre::v1::Execution exec;
  auto context = Context(call_timeout_);
  if (grpc::Status s = orchestrator_->GetExecution(context.get(), get, &exec); !s.ok()) {
    return Prefixed(s, execution);
  }
  if (!IsFinal(exec.state())) {
    return absl::FailedPreconditionError(absl::StrCat(execution, ": has not finished (state ",
                                                      gyre::v1::ExecutionState_Name(exec.state()),
                                                      "); analyze a finished one"));
  }
  if (fetched != nullptr) *fetched = exec;
  gyre::v1::ListTaskRunsRequest list;
  list.set_parent(execution);
  list.set_page_size(10000);
  do {
    gyre::v1::ListTaskRunsResponse page;
    auto page_context = Context(call_timeout_);
    if (grpc::Status s = orchestrator_->ListTaskRuns(page_context.get(), list, &page); !s.ok()) {
      return Prefixed(s, execution);
    }
    for (const auto& run : page.task_runs()) {
      TaskHistory& h = input->history[run.task_id()];
      double failed = 0;
      double last_success = -1;
      for (const auto& attempt : run.attempts()) {
        const double wall = Seconds(attempt.wall_time());
        if (attempt.outcome() == gyre::v1::ATTEMPT_SUCCEEDED) {
          last_success = wall;
          h.peak_rss_bytes = std::max(h.peak_rss_bytes, attempt.peak_rss_bytes());
        } else {
          failed += wall;
        }
      }
      if (last_success >= 0) {
        h.run_seconds.push_back(last_success);
        if (actual_durations) input->actual_seconds[run.task_id()] = last_success;
      }
      if (run.attempts_size() > 1) {
        ++h.retried_runs;
        if (run.state() == gyre::v1::TASK_SUCCEEDED) ++h.retry_successes;
        h.failed_attempt_seconds += failed;
      }
    }
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());
  return absl::OkStatus();
}

absl::Status Optimizer::AddPredictions(AnalysisInput* input) const {
  const gyre::v1::WorkflowDefinition& def = input->definition;
  // Command tasks only: a builtin's duration is declared exactly.
  std::vector<const gyre::v1::TaskSpec*> unknown;
  for (const auto& task : def.tasks()) {
    if (task.builtin().kind() != gyre::v1::BuiltinExecutor::KIND_UNSPECIFIED ||
        input->actual_seconds.contains(task.id()) || input->recorded_seconds.contains(task.id())) {
      continue;
    }
    unknown.push_back(&task);
  }
  const std::string default_queue = def.default_queue().empty() ? "default" : def.default_queue();
  for (size_t first = 0; first < unknown.size(); first += kMaxPredictedTasksPerCall) {
    const size_t end = std::min(unknown.size(), first + kMaxPredictedTasksPerCall);
    gyre::v1::PredictResourcesRequest request;
    request.set_workflow(absl::StartsWith(def.name(), "workflows/")
                             ? def.name()
                             : absl::StrCat("workflows/", def.name()));
    for (size_t i = first; i < end; ++i) {
      gyre::v1::TaskSpec* spec = request.add_tasks();
      *spec = *unknown[i];
      if (spec->queue().empty()) spec->set_queue(default_queue);  // as the engine queues it
    }
    gyre::v1::PredictResourcesResponse response;
    auto context = Context(predict_timeout_);
    if (grpc::Status s = predictor_->PredictResources(context.get(), request, &response); !s.ok()) {
      return Prefixed(s, "gyre-predictor");
    }
    if (response.predictions_size() != request.tasks_size()) {
      return absl::InternalError(absl::StrCat("gyre-predictor answered ",
                                              response.predictions_size(), " predictions for ",
                                              request.tasks_size(), " tasks"));
    }
    for (int i = 0; i < response.predictions_size(); ++i) {
      const gyre::v1::PredictedValue& d = response.predictions(i).duration_seconds();
      // Its prior is a guess with no run behind it: the default says so
      // more plainly.
      if (d.level() == gyre::v1::PREDICTION_LEVEL_PRIOR ||
          d.level() == gyre::v1::PREDICTION_LEVEL_UNSPECIFIED || !(d.value() >= 0) ||
          !std::isfinite(d.value())) {
        continue;
      }
      input->predicted_seconds[request.tasks(i).id()] = d.value();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AnalysisInput> Optimizer::Gather(const gyre::v1::AnalyzeWorkflowRequest& request,
                                                std::string* analyzed,
                                                std::string* predictor_error) {
  AnalysisInput input;
  if (request.history_executions_size() > kMaxHistoryExecutions) {
    return absl::InvalidArgumentError(
        absl::StrCat("history_executions: ", request.history_executions_size(),
                     " is over the limit of ", kMaxHistoryExecutions, " (kMaxHistoryExecutions)"));
  }
  if (request.has_default_task_duration()) {
    const double d = Seconds(request.default_task_duration());
    if (d < 0) return absl::InvalidArgumentError("default_task_duration: negative");
    if (d > 0) input.default_seconds = d;
  }
  std::string workflow_name;
  switch (request.source_case()) {
    case gyre::v1::AnalyzeWorkflowRequest::kDefinition:
      input.definition = request.definition();
      *analyzed = input.definition.name();
      break;
    case gyre::v1::AnalyzeWorkflowRequest::kWorkflow:
      workflow_name = request.workflow();
      break;
    case gyre::v1::AnalyzeWorkflowRequest::kExecution: {
      gyre::v1::Execution exec;
      if (absl::Status s = AddHistory(request.execution(), &input, true, &exec); !s.ok()) return s;
      workflow_name = absl::StrCat(exec.workflow(), "/versions/", exec.workflow_version());
      break;
    }
    case gyre::v1::AnalyzeWorkflowRequest::SOURCE_NOT_SET:
      return absl::InvalidArgumentError(
          "source: give a workflow (\"workflows/{w}\"), an inline definition or a finished "
          "execution (\"executions/{e}\")");
  }
  if (!workflow_name.empty()) {
    if (!absl::StartsWith(workflow_name, "workflows/")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "workflow \"", workflow_name, "\": expected \"workflows/{w}[/versions/{v}]\""));
    }
    if (absl::Status s = NeedOrchestrator(workflow_name); !s.ok()) return s;
    gyre::v1::GetWorkflowRequest get;
    get.set_name(workflow_name);
    auto context = Context(call_timeout_);
    if (grpc::Status s = orchestrator_->GetWorkflow(context.get(), get, &input.definition);
        !s.ok()) {
      return Prefixed(s, workflow_name);
    }
    *analyzed = absl::StrCat(input.definition.name(), "/versions/", input.definition.version());
  }
  if (input.definition.tasks_size() > kMaxAnalyzedTasks) {
    return absl::InvalidArgumentError(absl::StrCat("definition: ", input.definition.tasks_size(),
                                                   " tasks is over the limit of ",
                                                   kMaxAnalyzedTasks, " (kMaxAnalyzedTasks)"));
  }
  if (request.source_case() == gyre::v1::AnalyzeWorkflowRequest::kDefinition) {
    if (absl::Status s = workflow::ValidateWorkflowGraph(input.definition); !s.ok()) return s;
  }
  for (const auto& execution : request.history_executions()) {
    if (execution == request.execution()) continue;  // already counted
    if (absl::Status s = AddHistory(execution, &input, false, nullptr); !s.ok()) return s;
  }
  for (const auto& [task, duration] : request.task_durations()) {
    const double d = Seconds(duration);
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("task_durations[\"", task, "\"]: negative duration"));
    }
    input.recorded_seconds[task] = d;
  }
  for (const auto& [queue, slots] : request.slots_per_queue()) {
    input.pool_max[queue] = slots;
  }
  if (predictor_ != nullptr) {
    if (absl::Status s = AddPredictions(&input); !s.ok()) {
      input.predicted_seconds.clear();  // all or none: one analysis, one source
      if (predictor_error != nullptr) *predictor_error = std::string(s.message());
    }
  }
  return input;
}

gyre::v1::AnalyzeWorkflowResponse ToResponse(const Analysis& a, double default_seconds) {
  gyre::v1::AnalyzeWorkflowResponse out;
  for (const auto& id : a.critical_path) out.add_critical_path(id);
  *out.mutable_critical_path_duration() = Dur(a.critical_path_seconds);
  *out.mutable_expected_makespan() = Dur(a.makespan_seconds);
  *out.mutable_optimized_makespan() = Dur(a.optimized_makespan_seconds);
  out.set_critical_path_share(a.critical_path_share);
  *out.mutable_total_work() = Dur(a.total_work_seconds);
  *out.mutable_unlimited_makespan() = Dur(a.unlimited_makespan_seconds);
  out.set_peak_width(a.peak_width);
  for (const auto& step : a.profile) {
    auto* s = out.add_profile();
    *s->mutable_start() = Dur(step.start_seconds);
    s->set_width(step.width);
  }
  auto* sources = out.mutable_duration_sources();
  sources->set_actual(a.duration_sources[static_cast<int>(DurationSource::kActual)]);
  sources->set_recorded(a.duration_sources[static_cast<int>(DurationSource::kRecorded)]);
  sources->set_predicted(a.duration_sources[static_cast<int>(DurationSource::kPredicted)]);
  sources->set_builtin(a.duration_sources[static_cast<int>(DurationSource::kSleep)]);
  sources->set_default_unit(a.duration_sources[static_cast<int>(DurationSource::kDefault)]);
  *sources->mutable_default_duration() = Dur(default_seconds);
  for (const auto& f : a.findings) {
    auto* b = out.add_bottlenecks();
    b->set_kind(ToKind(f.kind));
    if (!f.task_ids.empty()) b->set_task_id(f.task_ids.front());
    for (const auto& id : f.task_ids) b->add_task_ids(id);
    b->set_queue(f.queue);
    b->set_dependants(f.dependants);
    *b->mutable_duration() = Dur(f.seconds);
    b->set_reason(f.evidence);
  }
  for (const auto& r : a.recommendations) {
    auto* rec = out.add_recommendations();
    rec->set_id(r.id);
    rec->set_kind(ToKind(r.kind));
    for (const auto& id : r.task_ids) rec->add_task_ids(id);
    rec->set_description(r.description);
    *rec->mutable_expected_improvement() = Dur(r.makespan_before - r.makespan_after);
    *rec->mutable_predicted_makespan() = Dur(r.makespan_after);
    rec->set_improvement_percent(r.makespan_before > 0 ? (r.makespan_before - r.makespan_after) /
                                                             r.makespan_before * 100
                                                       : 0);
    *rec->mutable_saved_per_run() = Dur(r.saved_seconds);
    rec->set_changes_semantics(r.changes_semantics);
    rec->set_configuration_only(r.configuration_only);
    rec->set_queue(r.queue);
    switch (r.kind) {
      case RecommendationKind::kRaisePoolMax:
        rec->set_new_value(r.new_pool_max);
        break;
      case RecommendationKind::kPrioritizeCriticalPath:
        rec->set_new_value(r.new_priority);
        break;
      case RecommendationKind::kReduceRetries:
        rec->set_new_value(r.new_max_retries);
        break;
      case RecommendationKind::kSetTimeout:
        *rec->mutable_new_timeout() = Dur(r.new_timeout_seconds);
        break;
      case RecommendationKind::kSetMemory:
        rec->set_new_memory_bytes(r.new_memory_bytes);
        break;
      default:
        break;
    }
    rec->set_dependency(r.dependency);
  }
  return out;
}

absl::StatusOr<gyre::v1::AnalyzeWorkflowResponse> Optimizer::Analyze(
    const gyre::v1::AnalyzeWorkflowRequest& request) {
  std::string analyzed;
  std::string predictor_error;
  auto input = Gather(request, &analyzed, &predictor_error);
  if (!input.ok()) return input.status();
  auto analysis = AnalyzeWorkflow(*input);
  if (!analysis.ok()) return analysis.status();
  gyre::v1::AnalyzeWorkflowResponse out = ToResponse(*analysis, input->default_seconds);
  out.set_workflow(analyzed);
  out.set_predictor_error(predictor_error);
  return out;
}

absl::StatusOr<gyre::v1::ApplyOptimizationsResponse> Optimizer::Apply(
    const gyre::v1::ApplyOptimizationsRequest& request) {
  if (!absl::StartsWith(request.workflow(), "workflows/") ||
      absl::StrContains(request.workflow(), "/versions/")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workflow \"", request.workflow(), "\": expected \"workflows/{w}\" (the latest version)"));
  }
  if (request.recommendation_ids().empty()) {
    return absl::InvalidArgumentError(
        "recommendation_ids: name at least one (from AnalyzeWorkflow)");
  }
  if (request.recommendation_ids_size() > kMaxRecommendationIds) {
    return absl::InvalidArgumentError(
        absl::StrCat("recommendation_ids: ", request.recommendation_ids_size(),
                     " is over the limit of ", kMaxRecommendationIds, " (kMaxRecommendationIds)"));
  }
  gyre::v1::AnalyzeWorkflowRequest analyze = request.analysis();
  analyze.set_workflow(request.workflow());
  std::string analyzed;
  auto input = Gather(analyze, &analyzed, nullptr);
  if (!input.ok()) return input.status();
  auto analysis = AnalyzeWorkflow(*input);
  if (!analysis.ok()) return analysis.status();

  gyre::v1::ApplyOptimizationsResponse out;
  gyre::v1::WorkflowDefinition def = input->definition;
  out.set_base_version(def.version());
  absl::flat_hash_map<std::string, gyre::v1::TaskSpec*> tasks;
  for (auto& task : *def.mutable_tasks()) tasks[task.id()] = &task;
  for (const auto& id : request.recommendation_ids()) {
    const Recommendation* rec = nullptr;
    for (const auto& r : analysis->recommendations) {
      if (r.id == id) rec = &r;
    }
    if (rec == nullptr) {
      std::vector<std::string> ids;
      for (const auto& r : analysis->recommendations) ids.push_back(r.id);
      return absl::NotFoundError(
          absl::StrCat("recommendation \"", id, "\": not among this analysis of ", analyzed,
                       " (it gives: ", ids.empty() ? "none" : absl::StrJoin(ids, ", "),
                       "); pass the same analysis inputs as to AnalyzeWorkflow"));
    }
    if (rec->changes_semantics) {
      // Refused in a dry run too: a dry run shows what would be stored, and
      // this never is. The description says what to change by hand.
      return absl::FailedPreconditionError(absl::StrCat(
          "recommendation \"", id,
          "\": changes what the workflow computes, so it is never applied automatically (nor "
          "in a dry run); edit the workflow by hand if it is right: ",
          rec->description));
    }
    if (rec->configuration_only) {
      return absl::FailedPreconditionError(
          absl::StrCat("recommendation \"", id,
                       "\": a pool's max is cluster configuration, not part of the "
                       "workflow; set pools.",
                       rec->queue, ".autoscaling.max (Helm) or worker_pools.", rec->queue,
                       ".max to ", rec->new_pool_max));
    }
    for (const auto& task_id : rec->task_ids) {
      gyre::v1::TaskSpec* task = tasks.at(task_id);
      gyre::v1::DefinitionChange change;
      change.set_recommendation_id(id);
      change.set_task_id(task_id);
      switch (rec->kind) {
        case RecommendationKind::kPrioritizeCriticalPath:
          change.set_field("priority");
          change.set_before(task->priority() > 0 ? absl::StrCat(task->priority())
                                                 : "50 (the default)");
          task->set_priority(rec->new_priority);
          change.set_after(absl::StrCat(rec->new_priority));
          break;
        case RecommendationKind::kSetTimeout:
          change.set_field("timeout");
          change.set_before(DurationText(task->timeout()));
          *task->mutable_timeout() = Dur(rec->new_timeout_seconds);
          change.set_after(DurationText(task->timeout()));
          break;
        case RecommendationKind::kReduceRetries:
          change.set_field("retry.max_retries");
          change.set_before(absl::StrCat(task->retry().max_retries()));
          task->mutable_retry()->set_max_retries(rec->new_max_retries);
          change.set_after(absl::StrCat(rec->new_max_retries));
          break;
        case RecommendationKind::kSetMemory:
          change.set_field("resources.memory_bytes");
          change.set_before(absl::StrCat(task->resources().memory_bytes()));
          task->mutable_resources()->set_memory_bytes(rec->new_memory_bytes);
          change.set_after(absl::StrCat(rec->new_memory_bytes));
          break;
        default:
          return absl::InternalError(absl::StrCat("recommendation \"", id, "\": kind ",
                                                  RecommendationKindName(rec->kind),
                                                  " has no definition change"));
      }
      *out.add_diff() = std::move(change);
    }
    out.add_applied(id);
  }
  def.set_source(absl::StrCat("gyre-optimizer: version ", out.base_version(), " with ",
                              absl::StrJoin(out.applied(), ", ")));
  def.clear_create_time();
  if (request.dry_run()) {
    // The version UpdateWorkflow would give it (the analysis read the
    // latest), as `gyre analyze --dry_run` says "would store version N".
    def.set_version(out.base_version() + 1);
    *out.mutable_workflow() = std::move(def);
    return out;
  }
  gyre::v1::UpdateWorkflowRequest update;
  *update.mutable_workflow() = std::move(def);
  auto context = Context(call_timeout_);
  if (grpc::Status s = orchestrator_->UpdateWorkflow(context.get(), update, out.mutable_workflow());
      !s.ok()) {
    return Prefixed(s, absl::StrCat(request.workflow(), ": storing the new version"));
  }
  return out;
}

}  // namespace gyre::optimizer
