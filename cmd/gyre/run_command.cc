#include "cmd/gyre/run_command.h"

#include <grpcpp/grpcpp.h>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/workflow/workflow_parser.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

std::string StateName(v1::TaskState state) {
  std::string name = v1::TaskState_Name(state);
  return absl::AsciiStrToLower(name.substr(5));  // drop "TASK_"
}

void PrintBar(std::FILE* out, const v1::TaskCounts& counts) {
  const int total = std::max(1, counts.total());
  const int done = counts.succeeded() + counts.failed() + counts.skipped() + counts.cancelled();
  const int width = 30;
  const int filled = done * width / total;
  std::fprintf(out, "\r[%s%s] %d/%d  running %d  succeeded %d  failed %d  skipped %d ",
               std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(width - filled), '-').c_str(), done, counts.total(),
               counts.running(), counts.succeeded(), counts.failed(), counts.skipped());
  std::fflush(out);
}

void TallyTask(v1::TaskState from, v1::TaskState to, v1::TaskCounts* counts) {
  auto adjust = [counts](v1::TaskState state, int delta) {
    switch (state) {
      case v1::TASK_PENDING:
        counts->set_pending(counts->pending() + delta);
        break;
      case v1::TASK_READY:
        counts->set_ready(counts->ready() + delta);
        break;
      case v1::TASK_LEASED:
      case v1::TASK_RUNNING:
        counts->set_running(counts->running() + delta);
        break;
      case v1::TASK_SUCCEEDED:
        counts->set_succeeded(counts->succeeded() + delta);
        break;
      case v1::TASK_FAILED:
      case v1::TASK_TIMED_OUT:
        counts->set_failed(counts->failed() + delta);
        break;
      case v1::TASK_SKIPPED:
        counts->set_skipped(counts->skipped() + delta);
        break;
      case v1::TASK_CANCELLED:
        counts->set_cancelled(counts->cancelled() + delta);
        break;
      default:
        break;
    }
  };
  adjust(from, -1);
  adjust(to, +1);
}

void PrintFailures(v1::OrchestratorService::Stub& stub, const std::string& execution,
                   std::FILE* out) {
  grpc::ClientContext context;
  v1::ListTaskRunsRequest request;
  request.set_parent(execution);
  v1::ListTaskRunsResponse response;
  if (!stub.ListTaskRuns(&context, request, &response).ok()) return;
  for (const v1::TaskRun& run : response.task_runs()) {
    if (run.state() != v1::TASK_FAILED && run.state() != v1::TASK_TIMED_OUT) continue;
    std::fprintf(out, "  task %s %s: %s\n", run.task_id().c_str(), StateName(run.state()).c_str(),
                 run.reason().c_str());
    grpc::ClientContext logs_context;
    v1::GetTaskLogsRequest logs_request;
    logs_request.set_name(run.name());
    v1::GetTaskLogsResponse logs;
    if (stub.GetTaskLogs(&logs_context, logs_request, &logs).ok() && !logs.stderr().empty()) {
      std::string tail =
          logs.stderr().substr(logs.stderr().size() > 2000 ? logs.stderr().size() - 2000 : 0);
      std::fprintf(out, "    stderr: %s\n", tail.c_str());
    }
  }
}

}  // namespace

bool ParseSetFlag(const std::string& assignment, std::map<std::string, std::string>* context) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    std::fprintf(stderr, "gyre run: --set \"%s\": expected key=value\n", assignment.c_str());
    return false;
  }
  (*context)[assignment.substr(0, equals)] = assignment.substr(equals + 1);
  return true;
}

int RunWorkflow(const std::shared_ptr<grpc::Channel>& channel, const RunOptions& options) {
  absl::StatusOr<v1::WorkflowDefinition> definition =
      workflow::LoadWorkflowFile(options.workflow_file);
  if (!definition.ok()) {
    std::fprintf(stderr, "gyre run: %s\n", std::string(definition.status().message()).c_str());
    return kRunBadInput;
  }
  auto stub = v1::OrchestratorService::NewStub(channel);
  v1::StartExecutionRequest request;
  *request.mutable_definition() = *definition;
  for (const auto& [key, value] : options.context) (*request.mutable_context())[key] = value;
  v1::Execution execution;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    context.set_wait_for_ready(true);
    const grpc::Status status = stub->StartExecution(&context, request, &execution);
    if (!status.ok()) {
      std::fprintf(stderr, "gyre run: %s\n", status.error_message().c_str());
      return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                     status.error_code() == grpc::StatusCode::NOT_FOUND
                 ? kRunBadInput
                 : kRunUnavailable;
    }
  }
  std::fprintf(options.out, "%s: %d tasks, execution %s\n", definition->name().c_str() + 10,
               execution.task_counts().total(), execution.name().c_str());
  std::fflush(options.out);

  v1::TaskCounts counts;
  counts.set_total(execution.task_counts().total());
  counts.set_pending(counts.total());
  std::map<std::string, v1::TaskState> states;
  v1::ExecutionState final_state = v1::EXECUTION_STATE_UNSPECIFIED;
  std::string reason;
  // Resumes from the last sequence number when the stream breaks (an
  // orchestrator restart), so no event is missed or shown twice.
  int64_t next_sequence = 1;
  grpc::Status watch_status;
  for (int reconnects = 0; reconnects < 100; ++reconnects) {
    grpc::ClientContext watch_context;
    watch_context.set_wait_for_ready(true);
    v1::WatchRequest watch;
    watch.set_execution(execution.name());
    watch.set_from_sequence(next_sequence);
    // Batches: a large execution's events as one message each would cost
    // the orchestrator more than running its tasks.
    auto reader = stub->WatchBatches(&watch_context, watch);
    v1::EventBatch batch;
    while (reader->Read(&batch)) {
      for (const v1::Event& event : batch.events()) {
        next_sequence = event.sequence() + 1;
        if (event.type() == v1::Event::TASK_STATE_CHANGED) {
          const v1::TaskRun& run = event.task_run();
          auto [it, inserted] = states.try_emplace(run.task_id(), v1::TASK_PENDING);
          TallyTask(it->second, run.state(), &counts);
          it->second = run.state();
          if (!options.interactive && run.state() != v1::TASK_READY &&
              run.state() != v1::TASK_LEASED) {
            std::fprintf(options.out, "  %-24s %s%s\n", run.task_id().c_str(),
                         StateName(run.state()).c_str(),
                         run.reason().empty() ? "" : absl::StrCat(" (", run.reason(), ")").c_str());
            std::fflush(options.out);
          }
        } else if (event.has_execution_snapshot()) {
          final_state = event.execution_snapshot().state();
          reason = event.execution_snapshot().reason();
          counts = event.execution_snapshot().task_counts();
        }
      }
      if (options.interactive) PrintBar(options.out, counts);  // once per batch
    }
    watch_status = reader->Finish();
    if (watch_status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (options.interactive) {
    PrintBar(options.out, counts);
    std::fputc('\n', options.out);
  }
  if (final_state != v1::EXECUTION_SUCCEEDED && final_state != v1::EXECUTION_FAILED &&
      final_state != v1::EXECUTION_CANCELLED) {
    std::fprintf(stderr, "gyre run: lost the event stream (%s)\n",
                 watch_status.error_message().c_str());
    return kRunUnavailable;
  }
  std::fprintf(options.out, "%s %s: %d succeeded, %d failed, %d skipped%s\n",
               execution.name().c_str(),
               absl::AsciiStrToLower(v1::ExecutionState_Name(final_state).substr(10)).c_str(),
               counts.succeeded(), counts.failed(), counts.skipped(),
               reason.empty() ? "" : absl::StrCat(" (", reason, ")").c_str());
  if (final_state != v1::EXECUTION_SUCCEEDED) {
    PrintFailures(*stub, execution.name(), options.out);
    std::fflush(options.out);
    return kRunFailed;
  }
  std::fflush(options.out);
  return kRunSucceeded;
}

}  // namespace gyre::cli
