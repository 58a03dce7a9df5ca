#include "cmd/gyre/run_command.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <google/protobuf/util/time_util.h>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cmd/gyre/command_line.h"
#include "cmd/gyre/interrupt_canceller.h"
#include "cmd/gyre/run_console.h"
#include "cmd/gyre/terminal_text.h"
#include "cmd/gyre/waiting_reporter.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/common/nearest_match.h"
#include "libs/workflow/workflow_parser.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

std::string BarText(const v1::TaskCounts& counts) {
  const int total = std::max(1, counts.total());
  const int done = counts.succeeded() + counts.failed() + counts.skipped() + counts.cancelled();
  const int width = 30;
  const int filled = done * width / total;
  return absl::StrFormat("[%s%s] %d/%d  running %d  succeeded %d  failed %d  skipped %d ",
                         std::string(static_cast<size_t>(filled), '#'),
                         std::string(static_cast<size_t>(width - filled), '-'), done,
                         counts.total(), counts.running(), counts.succeeded(), counts.failed(),
                         counts.skipped());
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

// A long list of failures would bury the summary; `gyre status` has them all.
constexpr int kMaxFailuresPrinted = 20;

void PrintFailures(v1::OrchestratorService::Stub& stub, const std::string& execution,
                   std::FILE* out) {
  v1::ListTaskRunsRequest request;
  request.set_parent(execution);
  int failures = 0;
  do {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ListTaskRunsResponse page;
    if (!stub.ListTaskRuns(&context, request, &page).ok()) return;
    for (const v1::TaskRun& run : page.task_runs()) {
      if (run.state() != v1::TASK_FAILED && run.state() != v1::TASK_TIMED_OUT) continue;
      if (++failures > kMaxFailuresPrinted) continue;  // counted for the line below
      std::fprintf(out, "  task %s %s: %s\n", TerminalSafe(run.task_id()).c_str(),
                   TaskStateWord(run.state()).c_str(), TerminalSafe(run.reason()).c_str());
      grpc::ClientContext logs_context;
      logs_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::GetTaskLogsRequest logs_request;
      logs_request.set_name(run.name());
      v1::GetTaskLogsResponse logs;
      if (stub.GetTaskLogs(&logs_context, logs_request, &logs).ok() && !logs.stderr().empty()) {
        std::string tail =
            logs.stderr().substr(logs.stderr().size() > 2000 ? logs.stderr().size() - 2000 : 0);
        std::fprintf(out, "    stderr: %s\n", TerminalSafe(tail).c_str());
      }
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (failures > kMaxFailuresPrinted) {
    std::fprintf(out, "  ... and %d more (gyre status %s lists every task)\n",
                 failures - kMaxFailuresPrinted, TerminalSafe(execution).c_str());
  }
}

}  // namespace

absl::Status ParseSetFlag(const std::string& assignment,
                          std::map<std::string, std::string>* context) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set \"", assignment, "\": expected key=value"));
  }
  (*context)[assignment.substr(0, equals)] = assignment.substr(equals + 1);
  return absl::OkStatus();
}

absl::Status ParseSecretFlag(const std::string& key,
                             std::map<std::string, std::string>* secret_context) {
  const char* value = key.empty() ? nullptr : std::getenv(key.c_str());
  if (value == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--secret \"", key,
                     "\": no such environment variable (gyre takes a secret's value from "
                     "its environment, never from the command line)"));
  }
  (*secret_context)[key] = value;
  return absl::OkStatus();
}

namespace {

// What gyre run knows of the execution it follows, from its events.
class Progress {
 public:
  Progress(RunConsole* console, WaitingReporter* waiting, int total_tasks)
      : console_(console), waiting_(waiting) {
    counts_.set_total(total_tasks);
    counts_.set_pending(total_tasks);
  }

  void Take(const v1::Event& event) {
    next_sequence_ = event.sequence() + 1;
    if (event.type() == v1::Event::TASK_STATE_CHANGED) {
      const v1::TaskRun& run = event.task_run();
      auto [it, inserted] = states_.try_emplace(run.task_id(), v1::TASK_PENDING);
      TallyTask(it->second, run.state(), &counts_);
      it->second = run.state();
      waiting_->Update(run.task_id(), run.state());
      if (Worth(run)) {
        console_->Line(TaskLine(
            run.task_id(),
            absl::StrCat(TaskStateWord(run.state()),
                         run.reason().empty() ? "" : absl::StrCat(" (", run.reason(), ")"))));
      }
    } else if (event.has_execution_snapshot()) {
      const v1::Execution& snapshot = event.execution_snapshot();
      // Said to whoever follows: someone else paused or resumed it.
      if (snapshot.state() == v1::EXECUTION_PAUSED && final_state_ != v1::EXECUTION_PAUSED) {
        console_->Line(absl::StrCat(
            "execution paused",
            snapshot.reason().empty() ? "" : absl::StrCat(" (", snapshot.reason(), ")"),
            ": no task starts until gyre resume ", snapshot.name()));
      } else if (snapshot.state() == v1::EXECUTION_RUNNING &&
                 final_state_ == v1::EXECUTION_PAUSED) {
        console_->Line("execution resumed");
      }
      final_state_ = event.execution_snapshot().state();
      reason_ = event.execution_snapshot().reason();
      counts_ = event.execution_snapshot().task_counts();
    }
  }

  // Whether a task's change gets a line of its own. In a pipe (a log), every
  // change but the routine READY and LEASED ones, or those with a reason.
  // On a terminal the bar counts the routine; a line is for what a person
  // must see: a failure, and every change with a reason (a retry and why,
  // a skip by an evaluator or a failed dependency, an attempt lost with its
  // agent).
  bool Worth(const v1::TaskRun& run) const {
    if (!run.reason().empty()) return true;
    if (!console_->interactive()) {
      return run.state() != v1::TASK_READY && run.state() != v1::TASK_LEASED;
    }
    return run.state() == v1::TASK_FAILED || run.state() == v1::TASK_TIMED_OUT;
  }

  // Once per message: a large execution sends thousands of events in one.
  void Redraw() { console_->Bar(BarText(counts_)); }

  bool ended() const {
    return final_state_ == v1::EXECUTION_SUCCEEDED || final_state_ == v1::EXECUTION_FAILED ||
           final_state_ == v1::EXECUTION_CANCELLED;
  }
  int64_t next_sequence() const { return next_sequence_; }
  v1::ExecutionState final_state() const { return final_state_; }
  const std::string& reason() const { return reason_; }
  const v1::TaskCounts& counts() const { return counts_; }

 private:
  RunConsole* const console_;
  WaitingReporter* const waiting_;
  v1::TaskCounts counts_;
  std::map<std::string, v1::TaskState> states_;
  v1::ExecutionState final_state_ = v1::EXECUTION_STATE_UNSPECIFIED;
  std::string reason_;
  int64_t next_sequence_ = 1;
};

}  // namespace

namespace {

// Exit code for a start the orchestrator refused or could not take.
int StartFailed(const char* command, const RunOptions& options, const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    std::fprintf(
        stderr, "gyre %s: %s\n", command,
        TerminalSafe(UnreachableMessage(options.orchestrator, status.error_message())).c_str());
    return kRunUnavailable;
  }
  std::fprintf(stderr, "gyre %s: %s\n", command, TerminalSafe(status.error_message()).c_str());
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kRunBadInput;
    default:
      return kRunUnavailable;
  }
}

// A random request id: a start retried after a lost connection runs once.
std::string NewRequestId(absl::string_view command) {
  absl::BitGen random;
  return absl::StrFormat("gyre-%s-%016x%016x", command, absl::Uniform<uint64_t>(random),
                         absl::Uniform<uint64_t>(random));
}

// Follows WatchBatches of `execution` from the next sequence `progress`
// expects until the stream ends or Ctrl-C cancels it; returns how it ended.
grpc::Status WatchFromWhereItWas(v1::OrchestratorService::Stub& stub, const std::string& execution,
                                 Progress& progress, InterruptCanceller& canceller) {
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  canceller.Attach(&context);
  const absl::Cleanup detach = [&canceller] { canceller.Detach(); };
  v1::WatchRequest watch;
  watch.set_execution(execution);
  watch.set_from_sequence(progress.next_sequence());
  auto reader = stub.WatchBatches(&context, watch);
  v1::EventBatch batch;
  while (reader->Read(&batch)) {
    for (const v1::Event& event : batch.events()) progress.Take(event);
    progress.Redraw();
  }
  return reader->Finish();
}

// "TITLE: N tasks, execution NAME", the first line of following.
void PrintStarted(absl::string_view title, const v1::Execution& execution,
                  const RunOptions& options) {
  std::fprintf(options.out, "%s: %d tasks, execution %s\n", TerminalSafe(title).c_str(),
               execution.task_counts().total(), TerminalSafe(execution.name()).c_str());
  std::fflush(options.out);
}

// Prints the header, follows `execution` to its end (its first events come
// from `follow_first`, then from WatchBatches wherever a stream breaks),
// prints the summary and returns the exit code. `definition` (may be
// empty) groups ready tasks for the waiting reporter. Ctrl-C stops
// following, not the execution: `follow_first` attaches its call to the
// canceller it is given.
int FollowExecution(v1::OrchestratorService::Stub& stub, absl::string_view title,
                    const v1::Execution& execution, const v1::WorkflowDefinition& definition,
                    const RunOptions& options,
                    absl::FunctionRef<grpc::Status(Progress&, InterruptCanceller&)> follow_first) {
  PrintStarted(title, execution, options);

  RunConsole console(options.out, options.interactive);
  std::optional<WaitingReporter> waiting;
  waiting.emplace(&stub, execution.name(), definition, &console);
  Progress progress(&console, &*waiting, execution.task_counts().total());
  grpc::Status status;
  bool interrupted = false;
  {
    // Only while following: a Ctrl-C during the summary has nothing to stop.
    InterruptCanceller canceller;
    status = follow_first(progress, canceller);
    // A broken stream (an orchestrator restart) resumes from the next
    // sequence number, so no event is missed or shown twice.
    for (int reconnects = 0; !progress.ended() && reconnects < 100; ++reconnects) {
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE || canceller.interrupted()) break;
      absl::SleepFor(absl::Milliseconds(200));
      status = WatchFromWhereItWas(stub, execution.name(), progress, canceller);
    }
    interrupted = canceller.interrupted();
  }
  waiting.reset();  // stop asking: the execution ended, its stream is lost or Ctrl-C
  progress.Redraw();
  console.EndBar();
  // Had the execution ended before Ctrl-C took effect, its result is known
  // and reported as usual.
  if (interrupted && !progress.ended()) {
    const std::string name = TerminalSafe(execution.name());
    std::fprintf(stderr,
                 "stopped following %s; it keeps running (gyre watch %s follows it again, gyre "
                 "cancel %s stops it)\n",
                 name.c_str(), name.c_str(), name.c_str());
    return kRunInterrupted;
  }
  if (!progress.ended()) {
    std::fprintf(stderr, "gyre: lost the event stream of %s (%s)\n",
                 TerminalSafe(execution.name()).c_str(),
                 TerminalSafe(status.error_message()).c_str());
    return kRunUnavailable;
  }
  const v1::TaskCounts& counts = progress.counts();
  std::fprintf(
      options.out, "%s %s: %d succeeded, %d failed, %d skipped%s\n",
      TerminalSafe(execution.name()).c_str(), ExecutionStateWord(progress.final_state()).c_str(),
      counts.succeeded(), counts.failed(), counts.skipped(),
      progress.reason().empty() ? ""
                                : absl::StrCat(" (", TerminalSafe(progress.reason()), ")").c_str());
  if (progress.final_state() != v1::EXECUTION_SUCCEEDED) {
    PrintFailures(stub, execution.name(), options.out);
    std::fflush(options.out);
    return kRunFailed;
  }
  std::fflush(options.out);
  return kRunSucceeded;
}

// Reaching the orchestrator is retried this long (long enough for a
// `gyre dev` started just before; short enough that nothing listening is
// said at once). The follow streams have no deadline (an execution takes
// as long as it takes).
constexpr absl::Duration kReachRetry = absl::Seconds(3);

}  // namespace

// Parses the workflow file; when it names a dependency it does not define,
// parses it again with the orchestrator's task library, which may hold it
// (asked for only then: most workflows stand alone).
absl::StatusOr<v1::WorkflowDefinition> LoadWorkflowFileWithLibrary(
    v1::OrchestratorService::Stub& stub, const std::string& file) {
  absl::StatusOr<v1::WorkflowDefinition> alone = workflow::LoadWorkflowFile(file);
  // Only a dependency the file does not define can be the library's; any
  // other error is reported at once, reachable orchestrator or not.
  if (alone.ok() || !absl::StrContains(alone.status().message(), "unknown dependency")) {
    return alone;
  }
  grpc::ClientContext context;
  context.set_wait_for_ready(true);  // as the submission would wait, a little
  context.set_deadline(absl::ToChronoTime(absl::Now() + kReachRetry));
  v1::WorkflowDefinition library;
  const grpc::Status status = stub.GetTaskLibrary(&context, v1::GetTaskLibraryRequest(), &library);
  if (status.ok()) return workflow::LoadWorkflowFile(file, &library);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // Said as every other unreachable orchestrator is, exit 3.
    return absl::UnavailableError(status.error_message());
  }
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::InvalidArgumentError(absl::StrCat(
        alone.status().message(), " (and the orchestrator has no task library to take it from)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(alone.status().message(),
                   " (the orchestrator's task library, which may hold it, could not be read: ",
                   status.error_message(), ")"));
}

namespace {

bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }

// Adds the names `text` references as ${NAME} or $NAME to `names`.
void AddReferencedNames(absl::string_view text, std::set<std::string>* names) {
  for (size_t at = text.find('$'); at != absl::string_view::npos; at = text.find('$', at + 1)) {
    if (at + 1 < text.size() && text[at + 1] == '{') {
      const size_t end = text.find('}', at + 2);
      if (end == absl::string_view::npos) return;
      names->emplace(text.substr(at + 2, end - at - 2));
      at = end;
    } else if (at + 1 < text.size() && IsNameStart(text[at + 1])) {
      size_t end = at + 1;
      while (end < text.size() && (absl::ascii_isalnum(text[end]) || text[end] == '_')) ++end;
      names->emplace(text.substr(at + 1, end - at - 1));
      at = end - 1;
    }
  }
}

// Prints UnusedContextWarnings on stderr.
void WarnAboutUnusedContext(const char* command, const v1::WorkflowDefinition& definition,
                            const std::map<std::string, std::string>& context) {
  for (const std::string& warning : UnusedContextWarnings(definition, context)) {
    std::fprintf(stderr, "gyre %s: warning: %s\n", command, TerminalSafe(warning).c_str());
  }
}

}  // namespace

std::vector<std::string> UnusedContextWarnings(const v1::WorkflowDefinition& definition,
                                               const std::map<std::string, std::string>& context) {
  std::set<std::string> used;
  for (const v1::TaskSpec& task : definition.tasks()) {
    for (const std::string& argument : task.command()) AddReferencedNames(argument, &used);
    for (const auto& [key, value] : task.env()) {
      used.insert(key);
      AddReferencedNames(value, &used);
    }
    used.insert(task.outputs().begin(), task.outputs().end());
  }
  const std::vector<std::string> candidates(used.begin(), used.end());
  std::vector<std::string> warnings;
  for (const auto& [key, value] : context) {
    if (used.contains(key)) continue;
    warnings.push_back(absl::StrCat("--set ", key, ": no task uses ", key, " (as ${", key, "} or $",
                                    key, " in a command or env)", DidYouMean(key, candidates)));
  }
  return warnings;
}

int RunWorkflow(const std::shared_ptr<grpc::Channel>& channel, const RunOptions& options) {
  auto stub = v1::OrchestratorService::NewStub(channel);
  absl::StatusOr<v1::WorkflowDefinition> definition =
      LoadWorkflowFileWithLibrary(*stub, options.workflow_file);
  if (absl::IsUnavailable(definition.status())) {
    return StartFailed(
        "run", options,
        grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(definition.status().message())));
  }
  if (!definition.ok()) {
    std::fprintf(stderr, "gyre run: %s\n", TerminalSafe(definition.status().message()).c_str());
    return kRunBadInput;
  }
  WarnAboutUnusedContext("run", *definition, options.context);
  v1::RunExecutionRequest request;
  *request.mutable_start()->mutable_definition() = *std::move(definition);
  for (const auto& [key, value] : options.context) {
    (*request.mutable_start()->mutable_context())[key] = value;
  }
  for (const auto& [key, value] : options.secret_context) {
    (*request.mutable_start()->mutable_secret_context())[key] = value;
  }
  request.mutable_start()->set_request_id(NewRequestId("run"));
  // One call starts the execution and follows it: no round trip between
  // the two, and no event can be missed.
  const absl::Time give_up = absl::Now() + kReachRetry;
  std::unique_ptr<grpc::ClientContext> run_context;
  std::unique_ptr<grpc::ClientReader<v1::RunExecutionResponse>> run;
  v1::RunExecutionResponse message;
  for (;;) {
    run_context = std::make_unique<grpc::ClientContext>();
    run = stub->RunExecution(run_context.get(), request);
    if (run->Read(&message)) break;
    const grpc::Status status = run->Finish();
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(200));
      continue;
    }
    return StartFailed("run", options, status);
  }
  const v1::WorkflowDefinition& def = request.start().definition();
  // A copy: reading the stream on reuses `message`.
  const v1::Execution execution = message.execution();
  if (options.detach) {
    // Ending the call stops following, not the execution (as Ctrl-C does).
    PrintStarted(absl::StripPrefix(def.name(), "workflows/"), execution, options);
    run_context->TryCancel();
    return kRunSucceeded;
  }
  return FollowExecution(*stub, absl::StripPrefix(def.name(), "workflows/"), execution, def,
                         options, [&](Progress& progress, InterruptCanceller& canceller) {
                           canceller.Attach(run_context.get());
                           const absl::Cleanup detach = [&canceller] { canceller.Detach(); };
                           do {
                             for (const v1::Event& event : message.events()) progress.Take(event);
                             progress.Redraw();
                           } while (run->Read(&message));
                           return run->Finish();
                         });
}

int ScheduleOutcome(const std::shared_ptr<grpc::Channel>& channel,
                    const std::vector<std::string>& targets, const RunOptions& options) {
  auto stub = v1::OrchestratorService::NewStub(channel);
  v1::ScheduleOutcomeRequest request;
  for (const std::string& target : targets) request.add_targets(target);
  for (const auto& [key, value] : options.context) (*request.mutable_context())[key] = value;
  request.set_request_id(NewRequestId("schedule"));
  if (!options.context.empty()) {
    // The outcome's tasks are the library's: their uses decide. Best
    // effort: an orchestrator that cannot say is reported by the call below.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kReachRetry));
    v1::WorkflowDefinition library;
    if (stub->GetTaskLibrary(&context, v1::GetTaskLibraryRequest(), &library).ok()) {
      WarnAboutUnusedContext("schedule", library, options.context);
    }
  }
  const absl::Time give_up = absl::Now() + kReachRetry;
  v1::Execution execution;
  for (;;) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    const grpc::Status status = stub->ScheduleOutcome(&context, request, &execution);
    if (status.ok()) break;
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(200));
      continue;
    }
    return StartFailed("schedule", options, status);
  }
  if (options.detach) {
    PrintStarted(absl::StrCat("outcome ", absl::StrJoin(targets, ", ")), execution, options);
    return kRunSucceeded;
  }
  return FollowExecution(*stub, absl::StrCat("outcome ", absl::StrJoin(targets, ", ")), execution,
                         v1::WorkflowDefinition(), options,
                         [&](Progress& progress, InterruptCanceller& canceller) {
                           return WatchFromWhereItWas(*stub, execution.name(), progress, canceller);
                         });
}

int WatchExecution(const std::shared_ptr<grpc::Channel>& channel, const std::string& execution,
                   const RunOptions& options) {
  auto stub = v1::OrchestratorService::NewStub(channel);
  v1::GetExecutionRequest get;
  get.set_name(execution);
  v1::Execution found;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (const grpc::Status status = stub->GetExecution(&context, get, &found); !status.ok()) {
    return StartFailed("watch", options, status);
  }
  const std::string title = found.workflow().empty()
                                ? absl::StrCat("outcome ", absl::StrJoin(found.targets(), ", "))
                                : std::string(absl::StripPrefix(found.workflow(), "workflows/"));
  // From the first event: the progress is rebuilt as it was, then goes on
  // live (an ended execution replays to its end and is summarised).
  return FollowExecution(*stub, title, found, v1::WorkflowDefinition(), options,
                         [&](Progress& progress, InterruptCanceller& canceller) {
                           return WatchFromWhereItWas(*stub, found.name(), progress, canceller);
                         });
}

}  // namespace gyre::cli
