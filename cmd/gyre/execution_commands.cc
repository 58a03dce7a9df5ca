#include "cmd/gyre/execution_commands.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/gyre/command_line.h"
#include "cmd/gyre/run_command.h"
#include "cmd/gyre/run_console.h"
#include "cmd/gyre/terminal_text.h"
#include "cmd/gyre/waiting_text.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/common/status_mapping.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;
using Stub = v1::OrchestratorService::Stub;

// Long enough for a busy orchestrator; a missing one fails at once
// (UNAVAILABLE), not after the deadline.
constexpr absl::Duration kCallDeadline = absl::Seconds(10);

// A screenful; the orchestrator's own default (100) scrolls away.
constexpr int kDefaultListLimit = 20;
constexpr int kMaxListLimit = 1000;  // what ListExecutionsRequest allows

// One of the commands, as `gyre help` spells it.
struct Command {
  absl::string_view name;
  absl::string_view synopsis;  // what follows "gyre NAME"
  int (*run)(const Command& command, int argc, char** argv);
};

int BadUsage(const Command& command, absl::string_view problem) {
  std::fprintf(stderr, "gyre %s: %s\nusage: gyre %s %s\n", std::string(command.name).c_str(),
               TerminalSafe(problem).c_str(), std::string(command.name).c_str(),
               std::string(command.synopsis).c_str());
  return kRunBadInput;
}

// Prints "gyre <command>: <what>: <why>" and returns the exit code for
// `error`, an orchestrator's answer.
int Failed(const Command& command, const CommandLine& line, absl::string_view what,
           const absl::Status& error) {
  int code = kRunFailed;
  std::string context(what);
  switch (error.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      std::fprintf(stderr, "gyre %s: %s\n", std::string(command.name).c_str(),
                   TerminalSafe(UnreachableMessage(line.orchestrator, error.message())).c_str());
      return kRunUnavailable;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
      code = kRunBadInput;
      break;
    default:
      break;
  }
  std::fprintf(stderr, "gyre %s: %s: %s\n", std::string(command.name).c_str(),
               TerminalSafe(context).c_str(), TerminalSafe(error.message()).c_str());
  return code;
}

// One unary call with the deadline; its error as an absl::Status.
template <typename Request, typename Response>
absl::StatusOr<Response> Call(Stub& stub,
                              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                           Response*),
                              const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

// The same, parsed into `response` (which may live on an arena).
template <typename Request, typename Response>
absl::Status CallInto(Stub& stub,
                      grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                      const Request& request, Response* response) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
  return FromGrpcStatus((stub.*method)(&context, request, response));
}

// Every task run of `execution`, in workflow order, parsed onto `arena`
// and read where they are: a 10,000-task execution is 10 pages of ~2,000
// small messages each, whose allocations, frees and copies out of the page
// cost more than their parsing. One StreamTaskRuns call, which has the
// orchestrator build a page while this parses the last; ListTaskRuns pages
// from an orchestrator without it (UNIMPLEMENTED), or from where a stream
// cut short (a stopping orchestrator, the deadline) ended.
absl::Status ReadTaskRuns(Stub& stub, const std::string& execution, google::protobuf::Arena* arena,
                          std::vector<const v1::TaskRun*>* runs) {
  v1::ListTaskRunsRequest list;
  list.set_parent(execution);
  bool received = false;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
    std::unique_ptr<grpc::ClientReader<v1::ListTaskRunsResponse>> pages =
        stub.StreamTaskRuns(&context, list);
    for (;;) {
      auto* page = google::protobuf::Arena::CreateMessage<v1::ListTaskRunsResponse>(arena);
      if (!pages->Read(page)) break;
      for (const v1::TaskRun& run : page->task_runs()) runs->push_back(&run);
      list.set_page_token(page->next_page_token());
      received = true;
    }
    const grpc::Status status = pages->Finish();
    if (status.ok() && received && list.page_token().empty()) return absl::OkStatus();
    const bool older_orchestrator =
        status.error_code() == grpc::StatusCode::UNIMPLEMENTED && !received;
    // The deadline is the whole stream's: a huge execution on a busy
    // orchestrator goes on page by page, each with a deadline of its own.
    const bool out_of_time = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && received;
    if (!status.ok() && !older_orchestrator && !out_of_time) return FromGrpcStatus(status);
  }
  do {
    auto* page = google::protobuf::Arena::CreateMessage<v1::ListTaskRunsResponse>(arena);
    if (absl::Status status = CallInto(stub, &Stub::ListTaskRuns, list, page); !status.ok()) {
      return status;
    }
    for (const v1::TaskRun& run : page->task_runs()) runs->push_back(&run);
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty());
  return absl::OkStatus();
}

std::unique_ptr<Stub> Connect(const CommandLine& line) {
  return v1::OrchestratorService::NewStub(line.channel);
}

// "executions/ID" from "executions/ID" or "ID".
absl::StatusOr<std::string> ExecutionName(absl::string_view argument) {
  absl::string_view id = argument;
  absl::ConsumePrefix(&id, "executions/");
  if (id.empty() || absl::StrContains(id, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", argument, "\" is not an execution (executions/ID or ID)"));
  }
  return absl::StrCat("executions/", id);
}

// The arguments of a command about one execution: its options, EXECUTION
// and then the positional arguments named in `more`.
struct ExecutionArguments {
  CommandLine line;
  std::string execution;
  std::vector<std::string> more;
};

absl::StatusOr<ExecutionArguments> ParseExecutionArguments(
    int argc, char** argv, absl::Span<const CommandOption> options,
    absl::Span<const absl::string_view> more = {}) {
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, options);
  if (!line.ok()) return line.status();
  std::vector<std::string>& positional = line->positional;
  if (positional.empty()) return absl::InvalidArgumentError("which execution?");
  if (positional.size() < 1 + more.size()) {
    return absl::InvalidArgumentError(absl::StrCat("which ", more[positional.size() - 1], "?"));
  }
  if (positional.size() > 1 + more.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument ", positional[1 + more.size()]));
  }
  absl::StatusOr<std::string> execution = ExecutionName(positional[0]);
  if (!execution.ok()) return execution.status();
  ExecutionArguments parsed;
  parsed.execution = *std::move(execution);
  parsed.more.assign(positional.begin() + 1, positional.end());
  parsed.line = *std::move(line);
  return parsed;
}

std::string TimeText(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return absl::FormatTime(
      "%Y-%m-%d %H:%M:%S",
      absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(time)),
      absl::LocalTimeZone());
}

// "3: 1 succeeded, 2 running": the states some task is in.
std::string CountsText(const v1::TaskCounts& counts) {
  std::vector<std::string> parts;
  auto add = [&parts](int count, const char* state) {
    if (count > 0) parts.push_back(absl::StrCat(count, " ", state));
  };
  add(counts.pending(), "pending");
  add(counts.ready(), "ready");
  add(counts.running(), "running");
  add(counts.succeeded(), "succeeded");
  add(counts.failed(), "failed");
  add(counts.skipped(), "skipped");
  add(counts.cancelled(), "cancelled");
  return absl::StrCat(counts.total(), parts.empty() ? "" : ": ", absl::StrJoin(parts, ", "));
}

// "succeeded attempt 1  exit 0  outputs {"ROWS":"7"}": state, how the
// latest attempt ended, why, and what the task passed on.
std::string TaskRunText(const v1::TaskRun& run) {
  std::vector<std::string> parts;
  std::string why = run.reason();
  if (!run.attempts().empty()) {
    const v1::TaskAttempt& last = *run.attempts().rbegin();
    parts.push_back(absl::StrCat("attempt ", last.attempt()));
    std::string ended;
    if (last.signal() != 0) {
      ended = absl::StrCat("signal ", last.signal());
      parts.push_back(ended);
    } else if (last.outcome() == v1::ATTEMPT_SUCCEEDED || last.outcome() == v1::ATTEMPT_FAILED) {
      ended = absl::StrCat("exit ", last.exit_code());
      parts.push_back(ended);
    }
    if (why.empty()) why = last.error();
    // The agent words a plain exit or kill as the reason too: said once.
    if (!ended.empty() && (why == absl::StrCat("exit code ", last.exit_code()) ||
                           absl::StartsWith(why, absl::StrCat("killed by ", ended, " ")))) {
      why.clear();
    }
  }
  if (!run.satisfied_by().empty()) parts.push_back(absl::StrCat("by ", run.satisfied_by()));
  if (!why.empty()) parts.push_back(absl::StrCat("(", why, ")"));
  if (run.outputs().fields_size() > 0) {
    std::string json;
    if (google::protobuf::util::MessageToJsonString(run.outputs(), &json).ok()) {
      parts.push_back(absl::StrCat("outputs ", json));
    }
  }
  // The state in a column of its own too ("timed_out" is the longest).
  return std::string(absl::StripTrailingAsciiWhitespace(
      absl::StrFormat("%-9s %s", TaskStateWord(run.state()), absl::StrJoin(parts, "  "))));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& time) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(time));
}

// "1.2s", "15ms": short enough for a column, exact enough to compare.
std::string DurationText(absl::Duration duration) {
  if (duration < absl::Milliseconds(1)) return "<1ms";
  const absl::Duration unit = duration < absl::Seconds(1)   ? absl::Milliseconds(1)
                              : duration < absl::Minutes(1) ? absl::Milliseconds(100)
                                                            : absl::Seconds(1);
  return absl::FormatDuration(absl::Trunc(duration, unit));
}

// How an attempt ended, in words: "succeeded", "failed (exit 3)", "lost
// (agent missed its heartbeats)"; "running" or "leased" while it has not.
std::string AttemptEndText(const v1::TaskAttempt& attempt) {
  if (!attempt.has_end_time() && attempt.outcome() == v1::ATTEMPT_OUTCOME_UNSPECIFIED) {
    return attempt.has_start_time() ? "running" : "leased, not started yet";
  }
  std::string word = absl::AsciiStrToLower(
      absl::StripPrefix(v1::AttemptOutcome_Name(attempt.outcome()), "ATTEMPT_"));
  if (attempt.outcome() == v1::ATTEMPT_OUTCOME_UNSPECIFIED) word = "ended";
  std::vector<std::string> why;
  if (attempt.signal() != 0) {
    why.push_back(absl::StrCat("signal ", attempt.signal()));
  } else if (attempt.outcome() == v1::ATTEMPT_FAILED && attempt.exit_code() != 0) {
    why.push_back(absl::StrCat("exit ", attempt.exit_code()));
  }
  if (!attempt.error().empty() &&
      attempt.error() != absl::StrCat("exit code ", attempt.exit_code()) &&
      !absl::StartsWith(attempt.error(), "killed by signal ")) {
    why.push_back(attempt.error());
  }
  return why.empty() ? word : absl::StrCat(word, " (", absl::StrJoin(why, ", "), ")");
}

// One attempt under its task in `gyre status`: "attempt 2  agent a1
// started 12:00:01.250  took 1.5s  failed (exit 3)".
std::string AttemptText(const v1::TaskAttempt& attempt) {
  std::vector<std::string> parts = {absl::StrCat("attempt ", attempt.attempt())};
  if (!attempt.agent().empty()) {
    parts.push_back(absl::StrCat("agent ", absl::StripPrefix(attempt.agent(), "agents/")));
  }
  // A lease that ended before the process started (a lost agent) has no
  // start: the lease is when it began.
  const bool started = attempt.has_start_time();
  if (started || attempt.has_lease_time()) {
    const absl::Time begin = FromTimestamp(started ? attempt.start_time() : attempt.lease_time());
    parts.push_back(absl::StrCat(started ? "started " : "leased ",
                                 absl::FormatTime("%H:%M:%E3S", begin, absl::LocalTimeZone())));
    if (attempt.has_end_time()) {
      parts.push_back(
          absl::StrCat("took ", DurationText(FromTimestamp(attempt.end_time()) - begin)));
    } else {
      parts.push_back(absl::StrCat("for ", DurationText(absl::Now() - begin)));
    }
  }
  parts.push_back(AttemptEndText(attempt));
  return absl::StrJoin(parts, "  ");
}

// "1.5 GiB", "300 MiB", "12 KiB": memory in a column.
std::string BytesText(double bytes) {
  if (bytes >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f GiB", bytes / (1 << 30));
  if (bytes >= 1024.0 * 1024) return absl::StrFormat("%.0f MiB", bytes / (1 << 20));
  return absl::StrFormat("%.0f KiB", bytes / 1024);
}

// For a task placed with gyre-predictor's prediction: "predicted 1.2s
// 512 MiB (p90) 1.0 cores  actual 1.3s 210 MiB 0.9 cores", the actual of
// its latest attempt that ended ("running" while it runs); "" without a
// prediction.
std::string PredictionText(const v1::TaskRun& run) {
  if (!run.has_predicted_duration()) return "";
  const absl::Duration predicted = absl::Seconds(run.predicted_duration().seconds()) +
                                   absl::Nanoseconds(run.predicted_duration().nanos());
  std::string text = absl::StrCat("predicted ", DurationText(predicted), " ",
                                  BytesText(static_cast<double>(run.predicted_memory_bytes())),
                                  " (p90) ", absl::StrFormat("%.1f cores", run.predicted_cpu()));
  for (auto attempt = run.attempts().rbegin(); attempt != run.attempts().rend(); ++attempt) {
    if (!attempt->has_end_time()) {
      absl::StrAppend(&text, "  actual: running");
      break;
    }
    if (!attempt->has_wall_time()) continue;
    const absl::Duration wall = absl::Seconds(attempt->wall_time().seconds()) +
                                absl::Nanoseconds(attempt->wall_time().nanos());
    const absl::Duration cpu = absl::Seconds(attempt->cpu_time().seconds()) +
                               absl::Nanoseconds(attempt->cpu_time().nanos());
    absl::StrAppend(
        &text, "  actual ", DurationText(wall), " ",
        BytesText(static_cast<double>(attempt->peak_rss_bytes())), " ",
        absl::StrFormat("%.1f cores",
                        wall > absl::ZeroDuration() ? absl::FDivDuration(cpu, wall) : 0.0));
    break;
  }
  return text;
}

// Why a task has no attempt to show, or "" when it has one: skipped,
// satisfied by another execution's run, or not run yet.
std::string NoAttemptText(const v1::TaskRun& run) {
  if (!run.attempts().empty()) return "";
  if (!run.satisfied_by().empty()) {
    return absl::StrCat("did not run here: satisfied by ", run.satisfied_by(),
                        " (a global task that already ran)");
  }
  switch (run.state()) {
    case v1::TASK_SKIPPED:
      return absl::StrCat("was skipped",
                          run.reason().empty() ? "" : absl::StrCat(" (", run.reason(), ")"),
                          ": it never ran");
    case v1::TASK_CANCELLED:
      return "was cancelled before it ran";
    case v1::TASK_PENDING:
      return "has not run yet: it waits for its dependencies";
    case v1::TASK_READY:
      return "has not run yet: it is ready and waits for an agent";
    default:
      return absl::StrCat("has no attempt (", TaskStateWord(run.state()), ")");
  }
}

// A call per ready task: a large backlog is asked about its first ones only
// (tasks of one queue mostly wait for the same reason).
constexpr int kMaxWaitingAsked = 50;

// Where the detail lines under a task line start (below its state).
constexpr absl::string_view kDetailIndent = "                           ";

// `gyre status`: the execution and its context, then per task its state,
// why it waits, and every attempt (when, how long, on which agent, how it
// ended).
int StatusCommand(const Command& command, int argc, char** argv) {
  absl::StatusOr<ExecutionArguments> arguments = ParseExecutionArguments(argc, argv, {});
  if (!arguments.ok()) return BadUsage(command, arguments.status().message());
  const std::string& name = arguments->execution;
  std::unique_ptr<Stub> stub = Connect(arguments->line);
  v1::GetExecutionRequest get;
  get.set_name(name);
  absl::StatusOr<v1::Execution> execution = Call(*stub, &Stub::GetExecution, get);
  if (!execution.ok()) return Failed(command, arguments->line, name, execution.status());
  google::protobuf::Arena arena;
  std::vector<const v1::TaskRun*> runs;
  if (absl::Status status = ReadTaskRuns(*stub, name, &arena, &runs); !status.ok()) {
    return Failed(command, arguments->line, absl::StrCat("tasks of ", name), status);
  }

  std::printf("execution  %s\n", TerminalSafe(execution->name()).c_str());
  std::printf("state      %s%s\n", ExecutionStateWord(execution->state()).c_str(),
              execution->reason().empty()
                  ? ""
                  : absl::StrCat(" (", TerminalSafe(execution->reason()), ")").c_str());
  // An inline definition (gyre run's) is not stored, so has no version.
  std::printf("workflow   %s%s\n",
              TerminalSafe(absl::StripPrefix(execution->workflow(), "workflows/")).c_str(),
              execution->workflow_version() > 0
                  ? absl::StrCat(" (version ", execution->workflow_version(), ")").c_str()
                  : "");
  if (!execution->parent().empty()) {
    std::printf("parent     %s\n", TerminalSafe(execution->parent()).c_str());
  }
  std::printf("started    %s\n", TimeText(execution->start_time()).c_str());
  std::string ended = TimeText(execution->end_time());
  if (execution->has_start_time() && execution->has_end_time()) {
    const absl::Duration took =
        FromTimestamp(execution->end_time()) - FromTimestamp(execution->start_time());
    absl::StrAppend(&ended, " (took ",
                    absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(10))), ")");
  }
  std::printf("ended      %s\n", ended.c_str());
  // The context the tasks see, sorted (the map's order is not stable).
  std::map<std::string, std::string> context(execution->context().begin(),
                                             execution->context().end());
  const char* label = "context    ";
  for (const auto& [key, value] : context) {
    std::printf("%s%s\n", label, TerminalSafe(absl::StrCat(key, "=", value)).c_str());
    label = "           ";
  }
  std::printf("tasks      %s\n", CountsText(execution->task_counts()).c_str());
  int asked = 0;  // ready tasks asked why they wait
  for (const v1::TaskRun* run_in_page : runs) {
    const v1::TaskRun& run = *run_in_page;
    std::printf("%s\n", TerminalSafe(TaskLine(run.task_id(), TaskRunText(run))).c_str());
    const auto detail = [](absl::string_view text) {
      std::printf("%s%s\n", std::string(kDetailIndent).c_str(), TerminalSafe(text).c_str());
    };
    if (run.has_waiting()) {
      detail(absl::StrCat("waiting: ", run.waiting().message()));
    } else if (run.state() == v1::TASK_READY && execution->state() != v1::EXECUTION_PAUSED &&
               ++asked <= kMaxWaitingAsked) {
      // An older server: the waiting reason is worked out for one task read
      // alone.
      v1::GetTaskRunRequest one;
      one.set_name(run.name());
      absl::StatusOr<v1::TaskRun> read = Call(*stub, &Stub::GetTaskRun, one);
      if (read.ok() && !read->waiting_reason().empty()) {
        detail(absl::StrCat("waiting: ", absl::StripPrefix(read->waiting_reason(), "waiting ")));
      } else if (read.ok()) {
        detail("waiting: for a free slot on an agent that can take it");
      }
    }
    for (const v1::TaskAttempt& attempt : run.attempts()) detail(AttemptText(attempt));
    if (const std::string predicted = PredictionText(run); !predicted.empty()) detail(predicted);
  }
  return kRunSucceeded;
}

// "running,failed" -> the states; InvalidArgument naming an unknown one.
absl::Status ParseStates(const std::string& value, google::protobuf::RepeatedField<int>* states) {
  for (absl::string_view word : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    v1::ExecutionState state;
    if (!v1::ExecutionState_Parse(absl::StrCat("EXECUTION_", absl::AsciiStrToUpper(word)),
                                  &state) ||
        state == v1::EXECUTION_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("--state: unknown state \"", word,
                       "\" (pending, running, paused, succeeded, failed, cancelled)"));
    }
    states->Add(state);
  }
  return absl::OkStatus();
}

// `gyre list`: recent executions, newest first, one line each.
int ListCommand(const Command& command, int argc, char** argv) {
  v1::ListExecutionsRequest request;
  request.set_page_size(kDefaultListLimit);
  const CommandOption options[] = {
      {"limit",
       [&request](const std::string& value) {
         int limit = 0;
         if (!absl::SimpleAtoi(value, &limit) || limit < 1 || limit > kMaxListLimit) {
           return absl::InvalidArgumentError(
               absl::StrCat("--limit \"", value, "\": expected 1..", kMaxListLimit));
         }
         request.set_page_size(limit);
         return absl::OkStatus();
       }},
      {"workflow",
       [&request](const std::string& value) {
         request.set_workflow(absl::StrCat("workflows/", absl::StripPrefix(value, "workflows/")));
         return absl::OkStatus();
       }},
      {"state",
       [&request](const std::string& value) {
         return ParseStates(value, request.mutable_states());
       }},
  };
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, options);
  if (!line.ok()) return BadUsage(command, line.status().message());
  if (!line->positional.empty()) {
    return BadUsage(command, absl::StrCat("unexpected argument ", line->positional[0]));
  }
  std::unique_ptr<Stub> stub = Connect(*line);
  // A filtered page may come back short with more to follow (the server
  // bounds what one call looks at): gather up to the limit.
  const int limit = request.page_size();
  absl::StatusOr<v1::ListExecutionsResponse> response;
  v1::ListExecutionsResponse gathered;
  do {
    request.set_page_size(limit - gathered.executions_size());
    response = Call(*stub, &Stub::ListExecutions, request);
    if (!response.ok()) return Failed(command, *line, "listing executions", response.status());
    for (v1::Execution& execution : *response->mutable_executions()) {
      *gathered.add_executions() = std::move(execution);
    }
    request.set_page_token(response->next_page_token());
  } while (!request.page_token().empty() && gathered.executions_size() < limit);
  response = std::move(gathered);
  if (response->executions().empty()) {
    std::fprintf(stderr, "no executions%s\n",
                 request.workflow().empty() && request.states().empty() ? "" : " match");
    return kRunSucceeded;
  }
  // Columns as wide as their longest value, so the lines align.
  size_t name_width = absl::string_view("EXECUTION").size();
  size_t workflow_width = absl::string_view("WORKFLOW").size();
  for (const v1::Execution& execution : response->executions()) {
    name_width = std::max(name_width, execution.name().size());
    workflow_width =
        std::max(workflow_width, absl::StripPrefix(execution.workflow(), "workflows/").size());
  }
  const auto print = [&](absl::string_view name, absl::string_view workflow,
                         absl::string_view state, absl::string_view started) {
    std::printf(
        "%s\n",
        TerminalSafe(absl::StrFormat("%-*s  %-*s  %-9s  %s", static_cast<int>(name_width), name,
                                     static_cast<int>(workflow_width), workflow, state, started))
            .c_str());
  };
  print("EXECUTION", "WORKFLOW", "STATE", "STARTED");
  for (const v1::Execution& execution : response->executions()) {
    print(execution.name(), absl::StripPrefix(execution.workflow(), "workflows/"),
          ExecutionStateWord(execution.state()), TimeText(execution.start_time()));
  }
  if (response->executions_size() == limit && !request.page_token().empty()) {
    std::fprintf(stderr, "(the %d most recent; --limit=N shows more)\n", limit);
  }
  return kRunSucceeded;
}

// One attempt of a task run, as GetTaskRun has it (the logs do not say
// whether it ended, nor how much it wrote).
absl::StatusOr<v1::TaskAttempt> GetAttempt(Stub& stub, const std::string& task_run,
                                           int64_t number) {
  v1::GetTaskRunRequest request;
  request.set_name(task_run);
  absl::StatusOr<v1::TaskRun> run = Call(stub, &Stub::GetTaskRun, request);
  if (!run.ok()) return run.status();
  for (const v1::TaskAttempt& attempt : run->attempts()) {
    if (attempt.attempt() == number) return attempt;
  }
  return absl::NotFoundError(absl::StrCat(task_run, " has no attempt ", number));
}

// Says on stderr which streams were cut at the agent's cap, which keeps
// the beginning of each, and how much the task wrote.
void ReportTruncation(const std::string& task_run, const v1::GetTaskLogsResponse& logs,
                      const absl::StatusOr<v1::TaskAttempt>& attempt) {
  std::vector<std::string> cut;
  const auto add = [&cut](absl::string_view stream, size_t kept, int64_t written) {
    if (written > static_cast<int64_t>(kept)) {
      cut.push_back(absl::StrCat("the first ", kept, " of ", written, " bytes of ", stream));
    }
  };
  if (attempt.ok()) {
    add("stdout", logs.stdout().size(), attempt->stdout_bytes());
    add("stderr", logs.stderr().size(), attempt->stderr_bytes());
  }
  std::fprintf(stderr,
               "gyre logs: %s attempt %lld: output truncated at the agent's max_output_bytes; "
               "shown: %s\n",
               TerminalSafe(task_run).c_str(), static_cast<long long>(logs.attempt()),
               cut.empty() ? "the beginning of each stream" : absl::StrJoin(cut, ", ").c_str());
}

// Every task run of `execution`, in the workflow's order.
absl::StatusOr<std::vector<v1::TaskRun>> ListRuns(Stub& stub, const std::string& execution) {
  std::vector<v1::TaskRun> runs;
  v1::ListTaskRunsRequest list;
  list.set_parent(execution);
  do {
    absl::StatusOr<v1::ListTaskRunsResponse> page = Call(stub, &Stub::ListTaskRuns, list);
    if (!page.ok()) return page.status();
    runs.insert(runs.end(), page->task_runs().begin(), page->task_runs().end());
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty());
  return runs;
}

void WriteBytes(std::FILE* out, absl::string_view data) {
  std::fwrite(data.data(), 1, data.size(), out);
}

// `gyre logs EXECUTION`: every attempt's stored output, in the order the
// attempts began, each under a header naming it; then the tasks that have
// none and why. All on stdout, so the order holds in a pipe.
int AllLogs(const Command& command, const CommandLine& line, Stub& stub,
            const std::string& execution) {
  absl::StatusOr<std::vector<v1::TaskRun>> runs = ListRuns(stub, execution);
  if (!runs.ok()) return Failed(command, line, absl::StrCat("tasks of ", execution), runs.status());
  struct Piece {
    absl::Time begin;
    size_t order;
    const v1::TaskRun* run;
    const v1::TaskAttempt* attempt;
  };
  std::vector<Piece> pieces;
  for (const v1::TaskRun& run : *runs) {
    for (const v1::TaskAttempt& attempt : run.attempts()) {
      const google::protobuf::Timestamp& begin =
          attempt.has_start_time() ? attempt.start_time() : attempt.lease_time();
      pieces.push_back({FromTimestamp(begin), pieces.size(), &run, &attempt});
    }
  }
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.order < b.order;
  });
  for (const Piece& piece : pieces) {
    const std::string title =
        TerminalSafe(absl::StrCat(piece.run->task_id(), " attempt ", piece.attempt->attempt()));
    const std::string ended = TerminalSafe(AttemptEndText(*piece.attempt));
    if (!piece.attempt->has_end_time()) {
      std::printf(
          "==> %s: %s; its output is stored when it ends (gyre logs --follow shows "
          "it live) <==\n",
          title.c_str(), ended.c_str());
      continue;
    }
    v1::GetTaskLogsRequest request;
    request.set_name(piece.run->name());
    request.set_attempt(piece.attempt->attempt());
    absl::StatusOr<v1::GetTaskLogsResponse> logs = Call(stub, &Stub::GetTaskLogs, request);
    if (!logs.ok()) {
      return Failed(command, line,
                    absl::StrCat("logs of ", request.name(), " attempt ", request.attempt()),
                    logs.status());
    }
    std::printf("==> %s: %s%s <==\n", title.c_str(), ended.c_str(),
                logs->stdout().empty() && logs->stderr().empty() ? ", no output" : "");
    const auto print = [](absl::string_view data) {
      WriteBytes(stdout, data);
      if (!data.empty() && data.back() != '\n') std::fputc('\n', stdout);
    };
    print(logs->stdout());
    if (!logs->stderr().empty()) {
      std::printf("==> %s stderr <==\n", title.c_str());
      print(logs->stderr());
    }
    if (logs->truncated()) {
      std::printf("==> %s: output truncated at the agent's max_output_bytes <==\n", title.c_str());
    }
  }
  for (const v1::TaskRun& run : *runs) {
    if (!run.attempts().empty()) continue;
    std::printf("==> %s <==\n",
                TerminalSafe(absl::StrCat(run.task_id(), " ", NoAttemptText(run))).c_str());
  }
  std::fflush(stdout);
  return kRunSucceeded;
}

// Follows an execution's output live (`gyre logs --follow`): the output
// streamed in TASK_LOG events as tasks write it, and for attempts that
// ended before the stream began (or whose chunks it missed) their stored
// output. With `task` empty, every task's lines, each prefixed with its
// task id; until the execution ends. With a task, its output as written
// (stdout to stdout, stderr to stderr) until the task ends.
class LogFollower {
 public:
  LogFollower(Stub& stub, std::string execution, std::string task)
      : stub_(stub), execution_(std::move(execution)), task_(std::move(task)) {}

  // Follows to the end; the stream's status when it broke early.
  absl::Status Run() {
    grpc::ClientContext context;
    v1::WatchRequest request;
    request.set_execution(execution_);
    request.set_from_sequence(1);
    request.set_include_logs(true);
    auto reader = stub_.WatchBatches(&context, request);
    v1::EventBatch batch;
    while (!done_ && reader->Read(&batch)) {
      for (const v1::Event& event : batch.events()) {
        Take(event);
        if (done_) break;
      }
      std::fflush(stdout);
      std::fflush(stderr);
    }
    if (done_) {
      context.TryCancel();
      (void)reader->Finish();
      return absl::OkStatus();
    }
    const grpc::Status status = reader->Finish();
    return status.ok() ? absl::UnavailableError("the event stream ended before the execution")
                       : FromGrpcStatus(status);
  }

 private:
  static bool Holding(v1::TaskState state) {
    return state == v1::TASK_LEASED || state == v1::TASK_RUNNING;
  }
  static bool Final(v1::TaskState state) {
    return state == v1::TASK_SUCCEEDED || state == v1::TASK_FAILED || state == v1::TASK_SKIPPED ||
           state == v1::TASK_CANCELLED || state == v1::TASK_TIMED_OUT;
  }

  void Take(const v1::Event& event) {
    if (event.type() == v1::Event::TASK_LOG) {
      const v1::TaskLog& log = event.log();
      if (!task_.empty() && log.task_id() != task_) return;
      Write(log.task_id(), log.attempt(), log.chunk().stream() == v1::LogChunk::STDERR,
            log.chunk().offset(), log.chunk().data());
      return;
    }
    if (event.type() == v1::Event::TASK_STATE_CHANGED) {
      const v1::TaskRun& run = event.task_run();
      if (!task_.empty() && run.task_id() != task_) return;
      v1::TaskState& state = states_[run.task_id()];
      if (run.state() == v1::TASK_LEASED) ++attempts_[run.task_id()];
      if (Holding(state) && !Holding(run.state())) EndAttempt(run.task_id());
      state = run.state();
      if (!task_.empty() && Final(run.state())) {
        if (attempts_[run.task_id()] == 0) {
          std::fprintf(stderr, "gyre logs: %s\n",
                       TerminalSafe(absl::StrCat(run.name(), " ", NoAttemptText(run))).c_str());
        }
        done_ = true;
      }
      return;
    }
    if (event.has_execution_snapshot()) {
      const v1::ExecutionState state = event.execution_snapshot().state();
      if (state == v1::EXECUTION_SUCCEEDED || state == v1::EXECUTION_FAILED ||
          state == v1::EXECUTION_CANCELLED) {
        done_ = true;
      }
    }
  }

  // Writes what of [offset, offset + data) was not written yet.
  void Write(const std::string& task, int64_t attempt, bool is_stderr, int64_t offset,
             absl::string_view data) {
    Stream& stream = streams_[{task, attempt, is_stderr}];
    const int64_t end = offset + static_cast<int64_t>(data.size());
    if (end <= stream.written) return;
    if (offset > stream.written) {
      // Joined while the attempt ran: its beginning streamed before us.
      std::fprintf(stderr,
                   "gyre logs: %s attempt %lld: %lld bytes of %s came before following "
                   "began (gyre logs shows them once the attempt ends)\n",
                   TerminalSafe(task).c_str(), static_cast<long long>(attempt),
                   static_cast<long long>(offset - stream.written),
                   is_stderr ? "stderr" : "stdout");
    } else {
      data.remove_prefix(static_cast<size_t>(stream.written - offset));
    }
    stream.written = end;
    std::FILE* out = is_stderr ? stderr : stdout;
    if (!task_.empty()) {
      WriteBytes(out, data);
      return;
    }
    // Every task's lines interleave: whole lines only, each with its task.
    stream.partial.append(data.data(), data.size());
    size_t begin = 0;
    for (size_t newline; (newline = stream.partial.find('\n', begin)) != std::string::npos;
         begin = newline + 1) {
      WriteLine(out, task, attempt,
                absl::string_view(stream.partial).substr(begin, newline - begin));
    }
    stream.partial.erase(0, begin);
  }

  // A line of `task`'s output with its task, and its attempt after a retry:
  // "load | ..." then "load#2 | ...".
  void WriteLine(std::FILE* out, const std::string& task, int64_t attempt, absl::string_view line) {
    const std::string prefix =
        absl::StrCat(TerminalSafe(task), attempt > 1 ? absl::StrCat("#", attempt) : "", " | ");
    WriteBytes(out, prefix);
    WriteBytes(out, line);
    std::fputc('\n', out);
  }

  // The task's current attempt ended: whatever of its stored output was
  // not streamed to us (all of it when it ended before we followed).
  void EndAttempt(const std::string& task) {
    const int64_t attempt = attempts_[task];
    if (attempt == 0) return;
    v1::GetTaskLogsRequest request;
    request.set_name(absl::StrCat(execution_, "/tasks/", task));
    request.set_attempt(attempt);
    absl::StatusOr<v1::GetTaskLogsResponse> logs = Call(stub_, &Stub::GetTaskLogs, request);
    if (logs.ok()) {
      Write(task, attempt, false, 0, logs->stdout());
      Write(task, attempt, true, 0, logs->stderr());
    }
    for (const bool is_stderr : {false, true}) {
      Stream& stream = streams_[{task, attempt, is_stderr}];
      if (!task_.empty() || stream.partial.empty()) continue;
      WriteLine(is_stderr ? stderr : stdout, task, attempt, stream.partial);
      stream.partial.clear();
    }
  }

  struct Stream {
    int64_t written = 0;  // bytes of the stream written so far
    std::string partial;  // an unfinished line (every-task mode)
  };

  Stub& stub_;
  const std::string execution_;
  const std::string task_;  // empty: every task
  bool done_ = false;
  std::map<std::string, v1::TaskState> states_;
  std::map<std::string, int64_t> attempts_;  // leases seen = the current attempt
  std::map<std::tuple<std::string, int64_t, bool>, Stream> streams_;
};

// `gyre logs`: the stored output of a task's attempt, stdout to stdout and
// stderr to stderr, byte for byte; of every task with no TASK; live with
// --follow.
int LogsCommand(const Command& command, int argc, char** argv) {
  v1::GetTaskLogsRequest request;
  bool follow = false;
  const CommandOption options[] = {
      {"attempt",
       [&request](const std::string& value) {
         int64_t number = 0;
         if (!absl::SimpleAtoi(value, &number) || number < 1) {
           return absl::InvalidArgumentError(
               absl::StrCat("--attempt \"", value, "\": expected 1, 2, ..."));
         }
         request.set_attempt(number);
         return absl::OkStatus();
       }},
      {"follow",
       [&follow](const std::string&) {
         follow = true;
         return absl::OkStatus();
       },
       /*takes_value=*/false},
  };
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, options);
  if (!line.ok()) return BadUsage(command, line.status().message());
  const std::vector<std::string>& positional = line->positional;
  if (positional.empty()) return BadUsage(command, "which execution?");
  if (positional.size() > 2) {
    return BadUsage(command, absl::StrCat("unexpected argument ", positional[2]));
  }
  absl::StatusOr<std::string> execution = ExecutionName(positional[0]);
  if (!execution.ok()) return BadUsage(command, execution.status().message());
  const std::string task = positional.size() > 1 ? positional[1] : "";
  if (positional.size() > 1 && (task.empty() || absl::StrContains(task, '/'))) {
    return BadUsage(command, absl::StrCat("\"", task, "\" is not a task id"));
  }
  if (task.empty() && request.attempt() != 0) {
    return BadUsage(command, "--attempt needs a TASK");
  }
  if (follow && request.attempt() != 0) {
    return BadUsage(command, "--follow follows the latest attempts; leave out --attempt");
  }
  std::unique_ptr<Stub> stub = Connect(*line);
  if (follow) {
    // Checked first: a watch of an unknown task would wait for nothing.
    v1::GetExecutionRequest get;
    get.set_name(*execution);
    absl::Status exists = Call(*stub, &Stub::GetExecution, get).status();
    if (exists.ok() && !task.empty()) {
      v1::GetTaskRunRequest one;
      one.set_name(absl::StrCat(*execution, "/tasks/", task));
      exists = Call(*stub, &Stub::GetTaskRun, one).status();
    }
    if (!exists.ok()) {
      return Failed(
          command, *line,
          absl::StrCat("following ",
                       task.empty() ? *execution : absl::StrCat(*execution, "/tasks/", task)),
          exists);
    }
    LogFollower follower(*stub, *execution, task);
    if (absl::Status status = follower.Run(); !status.ok()) {
      return Failed(command, *line, absl::StrCat("following ", *execution), status);
    }
    return kRunSucceeded;
  }
  if (task.empty()) return AllLogs(command, *line, *stub, *execution);
  request.set_name(absl::StrCat(*execution, "/tasks/", task));
  absl::StatusOr<v1::GetTaskLogsResponse> logs = Call(*stub, &Stub::GetTaskLogs, request);
  if (absl::IsNotFound(logs.status()) && request.attempt() == 0) {
    // A task that never ran has no latest attempt: say why it has none.
    v1::GetTaskRunRequest one;
    one.set_name(request.name());
    absl::StatusOr<v1::TaskRun> run = Call(*stub, &Stub::GetTaskRun, one);
    if (run.ok() && run->attempts().empty()) {
      std::fprintf(stderr, "gyre logs: %s\n",
                   TerminalSafe(absl::StrCat(request.name(), " ", NoAttemptText(*run))).c_str());
      return kRunFailed;
    }
  }
  if (!logs.ok()) {
    return Failed(
        command, *line,
        absl::StrCat("logs of ", request.name(),
                     request.attempt() != 0 ? absl::StrCat(" attempt ", request.attempt()) : ""),
        logs.status());
  }
  std::fwrite(logs->stdout().data(), 1, logs->stdout().size(), stdout);
  std::fflush(stdout);
  std::fwrite(logs->stderr().data(), 1, logs->stderr().size(), stderr);
  if (logs->truncated()) {
    ReportTruncation(request.name(), *logs, GetAttempt(*stub, request.name(), logs->attempt()));
  } else if (logs->stdout().empty() && logs->stderr().empty()) {
    // Output is stored when an attempt ends: nothing yet is not "no output".
    absl::StatusOr<v1::TaskAttempt> ran = GetAttempt(*stub, request.name(), logs->attempt());
    if (ran.ok() && !ran->has_end_time()) {
      std::fprintf(stderr,
                   "gyre logs: %s attempt %lld has not ended; its output is stored when it "
                   "does (gyre logs --follow shows it live)\n",
                   TerminalSafe(request.name()).c_str(), static_cast<long long>(logs->attempt()));
      return kRunFailed;
    }
  }
  return kRunSucceeded;
}

// The end of `gyre cancel`, `pause` and `resume`: the state the call left
// the execution in, or why it failed.
int ReportControl(const Command& command, const ExecutionArguments& arguments,
                  absl::string_view doing, const absl::StatusOr<v1::Execution>& execution) {
  if (!execution.ok()) {
    return Failed(command, arguments.line, absl::StrCat(doing, " ", arguments.execution),
                  execution.status());
  }
  std::printf("%s %s%s\n", TerminalSafe(execution->name()).c_str(),
              ExecutionStateWord(execution->state()).c_str(),
              execution->reason().empty()
                  ? ""
                  : absl::StrCat(" (", TerminalSafe(execution->reason()), ")").c_str());
  return kRunSucceeded;
}

int CancelCommand(const Command& command, int argc, char** argv) {
  v1::CancelExecutionRequest request;
  const CommandOption reason = {"reason", [&request](const std::string& value) {
                                  request.set_reason(value);
                                  return absl::OkStatus();
                                }};
  absl::StatusOr<ExecutionArguments> arguments = ParseExecutionArguments(argc, argv, {reason});
  if (!arguments.ok()) return BadUsage(command, arguments.status().message());
  request.set_name(arguments->execution);
  return ReportControl(command, *arguments, "cancelling",
                       Call(*Connect(arguments->line), &Stub::CancelExecution, request));
}

// `gyre pause` and `gyre resume`: an execution name and nothing else.
template <typename Request>
int SimpleControlCommand(const Command& command, int argc, char** argv, absl::string_view doing,
                         grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                      v1::Execution*)) {
  absl::StatusOr<ExecutionArguments> arguments = ParseExecutionArguments(argc, argv, {});
  if (!arguments.ok()) return BadUsage(command, arguments.status().message());
  Request request;
  request.set_name(arguments->execution);
  return ReportControl(command, *arguments, doing,
                       Call(*Connect(arguments->line), method, request));
}

int PauseCommand(const Command& command, int argc, char** argv) {
  return SimpleControlCommand(command, argc, argv, "pausing", &Stub::PauseExecution);
}

int ResumeCommand(const Command& command, int argc, char** argv) {
  return SimpleControlCommand(command, argc, argv, "resuming", &Stub::ResumeExecution);
}

// Prints `rows` (the first is the header) as columns as wide as their
// longest value, two spaces apart.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const std::vector<std::string>& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const std::vector<std::string>& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, TerminalSafe(row[i]),
                      i + 1 < row.size() ? std::string(widths[i] - row[i].size() + 2, ' ') : "");
    }
    std::printf("%s\n", line.c_str());
  }
}

// The command line of a command that takes only --orchestrator.
absl::StatusOr<CommandLine> ParseNoArguments(int argc, char** argv) {
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, {});
  if (line.ok() && !line->positional.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", line->positional[0]));
  }
  return line;
}

// `gyre queues`: each queue's backlog, what runs, and the workers it has
// against the workers the autoscaling signal asks for.
int QueuesCommand(const Command& command, int argc, char** argv) {
  absl::StatusOr<CommandLine> line = ParseNoArguments(argc, argv);
  if (!line.ok()) return BadUsage(command, line.status().message());
  absl::StatusOr<v1::ListQueuesResponse> response =
      Call(*Connect(*line), &Stub::ListQueues, v1::ListQueuesRequest());
  if (!response.ok()) return Failed(command, *line, "listing queues", response.status());
  if (response->queues().empty()) {
    std::fprintf(stderr, "no queues yet (a queue appears when a task or an agent names it)\n");
    return kRunSucceeded;
  }
  std::vector<std::vector<std::string>> rows = {
      {"QUEUE", "DEPTH", "RUNNING", "AGENTS", "FREE SLOTS", "DESIRED WORKERS"}};
  for (const v1::QueueInfo& queue : response->queues()) {
    rows.push_back({std::string(absl::StripPrefix(queue.name(), "queues/")),
                    absl::StrCat(queue.depth()), absl::StrCat(queue.running()),
                    absl::StrCat(queue.agents()), absl::StrCat(queue.free_slots()),
                    absl::StrCat(queue.desired_workers())});
  }
  PrintTable(rows);
  return kRunSucceeded;
}

std::string AgentStateWord(v1::AgentInfo::State state) {
  std::string word = v1::AgentInfo::State_Name(state);
  return absl::AsciiStrToLower(word);
}

// `gyre agents`: the agents the orchestrator knows, their state and slots.
int AgentsCommand(const Command& command, int argc, char** argv) {
  absl::StatusOr<CommandLine> line = ParseNoArguments(argc, argv);
  if (!line.ok()) return BadUsage(command, line.status().message());
  absl::StatusOr<v1::ListAgentsResponse> response =
      Call(*Connect(*line), &Stub::ListAgents, v1::ListAgentsRequest());
  if (!response.ok()) return Failed(command, *line, "listing agents", response.status());
  if (response->agents().empty()) {
    std::fprintf(stderr, "no agents (start one with gyre-agent, or use gyre dev)\n");
    return kRunSucceeded;
  }
  std::vector<std::vector<std::string>> rows = {
      {"AGENT", "STATE", "QUEUES", "SLOTS", "FREE", "VERSION", "HOST"}};
  for (const v1::AgentInfo& agent : response->agents()) {
    rows.push_back({std::string(absl::StripPrefix(agent.name(), "agents/")),
                    AgentStateWord(agent.state()), absl::StrJoin(agent.queues(), ","),
                    absl::StrCat(agent.slots()), absl::StrCat(agent.free_slots()), agent.version(),
                    agent.display_name()});
  }
  PrintTable(rows);
  return kRunSucceeded;
}

// `gyre library`: the task library's tasks, which gyre schedule takes as
// targets and workflow files may depend on.
int LibraryCommand(const Command& command, int argc, char** argv) {
  absl::StatusOr<CommandLine> line = ParseNoArguments(argc, argv);
  if (!line.ok()) return BadUsage(command, line.status().message());
  absl::StatusOr<v1::WorkflowDefinition> library =
      Call(*Connect(*line), &Stub::GetTaskLibrary, v1::GetTaskLibraryRequest());
  if (absl::IsNotFound(library.status()) || (library.ok() && library->tasks().empty())) {
    std::fprintf(stderr,
                 "no task library (the orchestrator loads one from its task_library_dir)\n");
    return kRunSucceeded;
  }
  if (!library.ok()) return Failed(command, *line, "reading the task library", library.status());
  std::vector<std::vector<std::string>> rows = {{"TASK", "DEPENDS ON", "DESCRIPTION"}};
  for (const v1::TaskSpec& task : library->tasks()) {
    rows.push_back({task.id(),
                    task.depends_on().empty() ? "-" : absl::StrJoin(task.depends_on(), ","),
                    task.description()});
  }
  PrintTable(rows);
  return kRunSucceeded;
}

// "noop", "sleep 2s" or the command line: what a task runs, in a column.
std::string RunsText(const v1::TaskSpec& task) {
  if (task.builtin().kind() != v1::BuiltinExecutor::KIND_UNSPECIFIED) {
    return absl::AsciiStrToLower(v1::BuiltinExecutor::Kind_Name(task.builtin().kind()));
  }
  std::string command = absl::StrJoin(task.command(), " ");
  // A column, not the script: long commands end in "...".
  if (command.size() > 60) command = absl::StrCat(command.substr(0, 57), "...");
  return command;
}

// `gyre workflows list`: the stored workflows, latest versions.
int ListWorkflows(const Command& command, const CommandLine& line, Stub& stub) {
  std::vector<std::vector<std::string>> rows = {
      {"WORKFLOW", "VERSION", "TASKS", "CREATED", "DESCRIPTION"}};
  v1::ListWorkflowsRequest request;
  do {
    absl::StatusOr<v1::ListWorkflowsResponse> page = Call(stub, &Stub::ListWorkflows, request);
    if (!page.ok()) return Failed(command, line, "listing workflows", page.status());
    for (const v1::WorkflowDefinition& workflow : page->workflows()) {
      std::string description = workflow.description().substr(0, workflow.description().find('\n'));
      rows.push_back({std::string(absl::StripPrefix(workflow.name(), "workflows/")),
                      absl::StrCat(workflow.version()), absl::StrCat(workflow.tasks_size()),
                      TimeText(workflow.create_time()), description});
    }
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  if (rows.size() == 1) {
    std::fprintf(stderr,
                 "no stored workflows (gyre run runs a file without storing it; the API's "
                 "CreateWorkflow stores one)\n");
    return kRunSucceeded;
  }
  PrintTable(rows);
  return kRunSucceeded;
}

// `gyre workflows show NAME [--version=N]`: one stored definition.
int ShowWorkflow(const Command& command, const CommandLine& line, Stub& stub,
                 const std::string& name, int64_t version) {
  v1::GetWorkflowRequest request;
  request.set_name(absl::StrCat("workflows/", absl::StripPrefix(name, "workflows/"),
                                version > 0 ? absl::StrCat("/versions/", version) : ""));
  absl::StatusOr<v1::WorkflowDefinition> workflow = Call(stub, &Stub::GetWorkflow, request);
  if (!workflow.ok()) return Failed(command, line, request.name(), workflow.status());
  std::printf("workflow   %s\n",
              TerminalSafe(absl::StripPrefix(workflow->name(), "workflows/")).c_str());
  std::printf("version    %lld\n", static_cast<long long>(workflow->version()));
  std::printf("created    %s\n", TimeText(workflow->create_time()).c_str());
  if (!workflow->source().empty()) {
    std::printf("source     %s\n", TerminalSafe(workflow->source()).c_str());
  }
  if (!workflow->description().empty()) {
    std::printf("about      %s\n", TerminalSafe(workflow->description()).c_str());
  }
  std::map<std::string, std::string> context(workflow->default_context().begin(),
                                             workflow->default_context().end());
  const char* label = "context    ";
  for (const auto& [key, value] : context) {
    std::printf("%s%s\n", label, TerminalSafe(absl::StrCat(key, "=", value)).c_str());
    label = "           ";
  }
  std::printf("tasks      %d\n", workflow->tasks_size());
  std::vector<std::vector<std::string>> rows = {{"  TASK", "DEPENDS ON", "QUEUE", "RUNS"}};
  for (const v1::TaskSpec& task : workflow->tasks()) {
    rows.push_back({absl::StrCat("  ", task.id()),
                    task.depends_on().empty() ? "-" : absl::StrJoin(task.depends_on(), ","),
                    task.queue().empty() ? "-" : task.queue(), RunsText(task)});
  }
  PrintTable(rows);
  return kRunSucceeded;
}

// `gyre workflows list|show`: the workflows the orchestrator stores.
int WorkflowsCommand(const Command& command, int argc, char** argv) {
  int64_t version = 0;
  const CommandOption options[] = {{"version", [&version](const std::string& value) {
                                      if (!absl::SimpleAtoi(value, &version) || version < 1) {
                                        return absl::InvalidArgumentError(absl::StrCat(
                                            "--version \"", value, "\": expected 1, 2, ..."));
                                      }
                                      return absl::OkStatus();
                                    }}};
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, options);
  if (!line.ok()) return BadUsage(command, line.status().message());
  const std::vector<std::string>& positional = line->positional;
  if (positional.empty()) return BadUsage(command, "list or show?");
  std::unique_ptr<Stub> stub = Connect(*line);
  if (positional[0] == "list" && positional.size() == 1 && version == 0) {
    return ListWorkflows(command, *line, *stub);
  }
  if (positional[0] == "show" && positional.size() == 2) {
    return ShowWorkflow(command, *line, *stub, positional[1], version);
  }
  if (positional[0] == "show") return BadUsage(command, "which workflow?");
  return BadUsage(command, absl::StrCat("unexpected argument ", positional.back()));
}

// `gyre why EXECUTION [TASK]`: why each task that is not running waits (or
// the one named), from the explanations the orchestrator computes when the
// task runs are read.
int WhyCommand(const Command& command, int argc, char** argv) {
  absl::StatusOr<ExecutionArguments> arguments = ParseExecutionArguments(argc, argv, {});
  if (!arguments.ok()) {
    // One optional TASK after EXECUTION.
    arguments = ParseExecutionArguments(argc, argv, {}, {"task"});
    if (!arguments.ok()) return BadUsage(command, arguments.status().message());
  }
  const std::string& name = arguments->execution;
  std::unique_ptr<Stub> stub = Connect(arguments->line);
  std::vector<v1::TaskRun> runs;
  if (!arguments->more.empty()) {
    v1::GetTaskRunRequest one;
    one.set_name(absl::StrCat(name, "/tasks/", arguments->more[0]));
    absl::StatusOr<v1::TaskRun> run = Call(*stub, &Stub::GetTaskRun, one);
    if (!run.ok()) return Failed(command, arguments->line, one.name(), run.status());
    runs.push_back(*std::move(run));
  } else {
    absl::StatusOr<std::vector<v1::TaskRun>> all = ListRuns(*stub, name);
    if (!all.ok()) {
      return Failed(command, arguments->line, absl::StrCat("tasks of ", name), all.status());
    }
    runs = *std::move(all);
  }
  const absl::Time now = absl::Now();
  int waiting = 0;
  for (const v1::TaskRun& run : runs) {
    if (!run.has_waiting()) {
      if (!arguments->more.empty()) {
        std::printf("%s\n", TerminalSafe(TaskLine(run.task_id(), TaskRunText(run))).c_str());
        std::printf("%snot waiting: %s\n", std::string(kDetailIndent).c_str(),
                    TerminalSafe(TaskStateWord(run.state())).c_str());
      }
      continue;
    }
    ++waiting;
    std::printf("%s\n", TerminalSafe(TaskLine(run.task_id(), TaskRunText(run))).c_str());
    for (const std::string& line : WaitingLines(run.waiting(), now)) {
      std::printf("%s%s\n", std::string(kDetailIndent).c_str(), TerminalSafe(line).c_str());
    }
  }
  if (arguments->more.empty() && waiting == 0) {
    std::printf("no task of %s is waiting\n", TerminalSafe(name).c_str());
  }
  return kRunSucceeded;
}

constexpr Command kCommands[] = {
    {"status", "EXECUTION [--orchestrator=host:port]", StatusCommand},
    {"why", "EXECUTION [TASK] [--orchestrator=host:port]", WhyCommand},
    {"list", "[--limit=N] [--workflow=NAME] [--state=STATE[,STATE]...] [--orchestrator=host:port]",
     ListCommand},
    {"logs", "EXECUTION [TASK] [--attempt=N] [--follow] [--orchestrator=host:port]", LogsCommand},
    {"cancel", "EXECUTION [--reason=TEXT] [--orchestrator=host:port]", CancelCommand},
    {"pause", "EXECUTION [--orchestrator=host:port]", PauseCommand},
    {"resume", "EXECUTION [--orchestrator=host:port]", ResumeCommand},
    {"queues", "[--orchestrator=host:port]", QueuesCommand},
    {"agents", "[--orchestrator=host:port]", AgentsCommand},
    {"library", "[--orchestrator=host:port]", LibraryCommand},
    {"workflows", "list|show NAME [--version=N] [--orchestrator=host:port]", WorkflowsCommand},
};

const Command* FindCommand(absl::string_view name) {
  for (const Command& command : kCommands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

}  // namespace

bool IsExecutionCommand(absl::string_view command) { return FindCommand(command) != nullptr; }

int RunExecutionCommand(int argc, char** argv) {
  const Command* command = FindCommand(argv[1]);
  return command->run(*command, argc, argv);
}

}  // namespace gyre::cli
