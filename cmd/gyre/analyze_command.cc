#include "cmd/gyre/analyze_command.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cmd/gyre/command_line.h"
#include "cmd/gyre/run_command.h"
#include "cmd/gyre/terminal_text.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "libs/common/status_mapping.h"
#include "libs/workflow/workflow_parser.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

// An analysis of 100,000 tasks takes well under a second; the rest is the
// orchestrator fetching history.
constexpr absl::Duration kCallDeadline = absl::Seconds(60);

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

std::string Secs(const google::protobuf::Duration& d) {
  const double s = Seconds(d);
  if (s >= 100) return absl::StrFormat("%.0f s", s);
  if (s >= 1) return absl::StrFormat("%.1f s", s);
  return absl::StrFormat("%.3f s", s);
}

int Fail(absl::string_view what, const absl::Status& status, const std::string& address) {
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kDeadlineExceeded) {
    std::fprintf(stderr, "gyre analyze: cannot reach the optimizer at %s (%s)\n", address.c_str(),
                 TerminalSafe(status.message()).c_str());
    return kRunUnavailable;
  }
  std::fprintf(stderr, "gyre analyze: %s: %s\n", std::string(what).c_str(),
               TerminalSafe(status.message()).c_str());
  return status.code() == absl::StatusCode::kNotFound ||
                 status.code() == absl::StatusCode::kInvalidArgument
             ? kRunBadInput
             : kRunFailed;
}

// Width over time as one line of block characters (one per profile step).
std::string Sparkline(const v1::AnalyzeWorkflowResponse& r) {
  static const char* kBlocks[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string line;
  const double peak = std::max(1, r.peak_width());
  for (const auto& step : r.profile()) {
    int level = static_cast<int>(std::ceil(step.width() / peak * 8));
    line += kBlocks[std::clamp(level, 0, 8)];
  }
  return line;
}

void Print(const v1::AnalyzeWorkflowResponse& r) {
  const auto& src = r.duration_sources();
  std::vector<std::string> sources;
  if (src.actual() > 0) sources.push_back(absl::StrCat(src.actual(), " actual"));
  if (src.recorded() > 0) sources.push_back(absl::StrCat(src.recorded(), " recorded"));
  if (src.predicted() > 0) sources.push_back(absl::StrCat(src.predicted(), " predicted"));
  if (src.builtin() > 0) sources.push_back(absl::StrCat(src.builtin(), " builtin"));
  if (src.default_unit() > 0) {
    sources.push_back(absl::StrCat(src.default_unit(), " default (", Secs(src.default_duration()),
                                   " each: no duration known)"));
  }
  std::printf("workflow %s: %d tasks; durations: %s\n", TerminalSafe(r.workflow()).c_str(),
              src.actual() + src.recorded() + src.predicted() + src.builtin() + src.default_unit(),
              absl::StrJoin(sources, ", ").c_str());
  if (!r.predictor_error().empty()) {
    std::printf("predictor's durations not used: %s\n", TerminalSafe(r.predictor_error()).c_str());
  }
  std::vector<std::string> path(r.critical_path().begin(), r.critical_path().end());
  std::printf("critical path: %s of %s total work (%.0f%%): %s\n",
              Secs(r.critical_path_duration()).c_str(), Secs(r.total_work()).c_str(),
              r.critical_path_share() * 100, TerminalSafe(absl::StrJoin(path, " -> ")).c_str());
  std::printf("makespan (simulated under the pool limits): %s; unlimited: %s; peak width %d\n",
              Secs(r.expected_makespan()).c_str(), Secs(r.unlimited_makespan()).c_str(),
              r.peak_width());
  std::printf("with the recommendations that change no computation: %s\n",
              Secs(r.optimized_makespan()).c_str());
  if (r.profile_size() > 0) {
    std::printf("width over time: |%s| (0 to %s, peak %d)\n", Sparkline(r).c_str(),
                Secs(r.expected_makespan()).c_str(), r.peak_width());
  }
  if (r.bottlenecks_size() > 0) std::printf("bottlenecks:\n");
  for (const auto& b : r.bottlenecks()) {
    std::printf("  %s: %s\n", absl::AsciiStrToLower(v1::Bottleneck::Kind_Name(b.kind())).c_str(),
                TerminalSafe(b.reason()).c_str());
  }
  if (r.recommendations_size() > 0) std::printf("recommendations:\n");
  for (const auto& rec : r.recommendations()) {
    std::string note;
    if (rec.changes_semantics()) note = " (changes what the workflow computes: by hand only)";
    if (rec.configuration_only()) note = " (cluster configuration)";
    std::printf("  [%s] %s%s\n", TerminalSafe(rec.id()).c_str(),
                TerminalSafe(rec.description()).c_str(), note.c_str());
  }
  if (r.recommendations_size() == 0) std::printf("no recommendation\n");
}

}  // namespace

void PrintAnalysis(const v1::AnalyzeWorkflowResponse& response) { Print(response); }

int AnalyzeCommand(int argc, char** argv) {
  std::string optimizer;
  std::vector<std::string> apply;
  std::vector<std::string> history;
  bool dry_run = false;
  v1::AnalyzeWorkflowRequest request;
  const std::vector<CommandOption> options = {
      {"optimizer",
       [&](const std::string& v) {
         optimizer = v;
         return absl::OkStatus();
       }},
      {"pool",
       [&](const std::string& v) {
         std::pair<std::string, std::string> kv = absl::StrSplit(v, absl::MaxSplits('=', 1));
         int max = 0;
         if (kv.first.empty() || !absl::SimpleAtoi(kv.second, &max) || max < 1) {
           return absl::InvalidArgumentError(
               absl::StrCat("--pool ", v, ": expected QUEUE=MAX with MAX >= 1"));
         }
         (*request.mutable_slots_per_queue())[kv.first] = max;
         return absl::OkStatus();
       }},
      {"history",
       [&](const std::string& v) {
         history.push_back(absl::StartsWith(v, "executions/") ? v : "executions/" + v);
         return absl::OkStatus();
       }},
      {"apply",
       [&](const std::string& v) {
         for (absl::string_view id : absl::StrSplit(v, ',', absl::SkipEmpty())) {
           apply.emplace_back(id);
         }
         return absl::OkStatus();
       }},
      {"dry_run",
       [&](const std::string& v) {
         if (v != "true" && v != "false") {
           return absl::InvalidArgumentError("--dry_run: true or false");
         }
         dry_run = v == "true";
         return absl::OkStatus();
       }},
  };
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, options);
  if (!line.ok()) {
    std::fprintf(stderr, "gyre analyze: %s\n", TerminalSafe(line.status().message()).c_str());
    return kRunBadInput;
  }
  if (line->positional.size() != 1) {
    std::fprintf(stderr,
                 "gyre analyze: which workflow? (FILE.yaml, workflows/NAME or executions/ID)\n");
    return kRunBadInput;
  }
  if (optimizer.empty()) {
    const char* env = std::getenv("GYRE_OPTIMIZER");
    optimizer = env != nullptr && *env != '\0' ? env : line->orchestrator;
  }
  const std::string& what = line->positional[0];
  for (const auto& h : history) request.add_history_executions(h);
  if (absl::StartsWith(what, "workflows/")) {
    request.set_workflow(what);
  } else if (absl::StartsWith(what, "executions/")) {
    request.set_execution(what);
  } else {
    absl::StatusOr<v1::WorkflowDefinition> def = workflow::LoadWorkflowFile(what);
    if (!def.ok()) {
      std::fprintf(stderr, "gyre analyze: %s\n", TerminalSafe(def.status().message()).c_str());
      return kRunBadInput;
    }
    *request.mutable_definition() = *std::move(def);
  }
  auto stub = v1::OptimizerService::NewStub(
      grpc::CreateChannel(optimizer, grpc::InsecureChannelCredentials()));
  if (!apply.empty()) {
    if (!request.has_workflow() || absl::StrContains(what, "/versions/")) {
      std::fprintf(stderr, "gyre analyze: --apply needs workflows/NAME (a stored workflow)\n");
      return kRunBadInput;
    }
    v1::ApplyOptimizationsRequest apply_request;
    apply_request.set_workflow(what);
    for (const auto& id : apply) apply_request.add_recommendation_ids(id);
    apply_request.set_dry_run(dry_run);
    *apply_request.mutable_analysis() = request;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
    v1::ApplyOptimizationsResponse response;
    grpc::Status status = stub->ApplyOptimizations(&context, apply_request, &response);
    if (!status.ok()) return Fail(what, FromGrpcStatus(status), optimizer);
    std::printf("%s version %lld (from version %lld): %s\n", dry_run ? "would store" : "stored",
                static_cast<long long>(response.workflow().version()),
                static_cast<long long>(response.base_version()),
                absl::StrJoin(response.applied(), ", ").c_str());
    for (const auto& change : response.diff()) {
      std::printf("  %s.%s: %s -> %s  [%s]\n", TerminalSafe(change.task_id()).c_str(),
                  change.field().c_str(), TerminalSafe(change.before()).c_str(),
                  TerminalSafe(change.after()).c_str(),
                  TerminalSafe(change.recommendation_id()).c_str());
    }
    return 0;
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
  v1::AnalyzeWorkflowResponse response;
  grpc::Status status = stub->AnalyzeWorkflow(&context, request, &response);
  if (!status.ok()) return Fail(what, FromGrpcStatus(status), optimizer);
  Print(response);
  return 0;
}

}  // namespace gyre::cli
