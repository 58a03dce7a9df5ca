#include "cmd/gyre/plan_command.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/gyre/analyze_command.h"
#include "cmd/gyre/command_line.h"
#include "cmd/gyre/run_command.h"
#include "cmd/gyre/terminal_text.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/common/status_mapping.h"
#include "libs/workflow/workflow_parser.h"
#include "services/optimizer/workflow_analysis.h"
#include "services/predictor/resource_predictor.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;
using google::protobuf::Struct;
using google::protobuf::Value;

// A predictor answers 10,000 tasks in milliseconds; the deadline only
// bounds how long an unreachable one is waited for.
constexpr absl::Duration kPredictDeadline = absl::Seconds(10);
constexpr absl::Duration kAnalyzeDeadline = absl::Seconds(60);
constexpr absl::Duration kPricesDeadline = absl::Seconds(5);
// The predictor's batch limit (ResourcePredictor::kMaxBatch).
constexpr int kMaxPlannedTasks = 10000;

std::string Address(const std::string& flag, const char* env, const std::string& fallback) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string LevelName(v1::PredictionLevel level) {
  if (level == v1::PREDICTION_LEVEL_UNSPECIFIED) return "declared";
  std::string name = v1::PredictionLevel_Name(level);
  return absl::AsciiStrToLower(name.substr(name.rfind('_') + 1));
}

std::string Seconds(double s) {
  if (s >= 3600) return absl::StrFormat("%.1f h", s / 3600);
  if (s >= 100) return absl::StrFormat("%.0f s", s);
  if (s >= 1) return absl::StrFormat("%.1f s", s);
  return absl::StrFormat("%.2f s", s);
}

std::string Bytes(double b) {
  if (b <= 0) return "-";
  if (b >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return absl::StrFormat("%.0f MiB", b / (1024.0 * 1024));
  return absl::StrFormat("%.0f KiB", b / 1024.0);
}

// The worker type a task runs on, as the orchestrator resolves it.
std::string QueueOf(const v1::WorkflowDefinition& def, const v1::TaskSpec& task) {
  if (!task.queue().empty()) return task.queue();
  return def.default_queue().empty() ? "default" : def.default_queue();
}

// The declared values, said as such, for a task the predictor did not
// answer: a sleep's length, resources.memory_bytes and resources.cpu.
v1::ResourcePrediction Declared(const v1::TaskSpec& task) {
  v1::ResourcePrediction p;
  p.set_task_id(task.id());
  auto declared = [](v1::PredictedValue* v, double value) {
    v->set_value(value);
    v->set_p10(value);
    v->set_p90(value);
  };
  if (task.builtin().kind() == v1::BuiltinExecutor::SLEEP) {
    declared(p.mutable_duration_seconds(),
             task.builtin().duration().seconds() + task.builtin().duration().nanos() / 1e9);
  }
  declared(p.mutable_memory_bytes(), static_cast<double>(task.resources().memory_bytes()));
  declared(p.mutable_cpu(), task.resources().cpu());
  return p;
}

// The orchestrator's worker prices (ListQueues); empty, with the reason in
// *why, when it cannot say.
google::protobuf::Map<std::string, v1::WorkerPrice> WorkerPrices(
    const std::shared_ptr<grpc::Channel>& channel, std::string* why) {
  auto stub = v1::OrchestratorService::NewStub(channel);
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + kPricesDeadline));
  v1::ListQueuesResponse response;
  grpc::Status status = stub->ListQueues(&call, v1::ListQueuesRequest(), &response);
  if (!status.ok()) {
    *why = TerminalSafe(FromGrpcStatus(status).ToString());
  } else if (response.worker_prices().empty()) {
    *why = "no worker_prices configured";
  }
  return response.worker_prices();
}

// Asks the predictor for every task; nullopt (with the reason in *why) when
// it cannot answer, so the plan falls back to declared values.
std::optional<v1::PredictResourcesResponse> Predict(
    const std::string& address, const v1::WorkflowDefinition& def,
    const std::map<std::string, std::string>& context,
    const google::protobuf::Map<std::string, v1::WorkerPrice>& prices, std::string* why) {
  v1::PredictResourcesRequest request;
  *request.mutable_worker_prices() = prices;
  request.set_workflow(absl::StartsWith(def.name(), "workflows/") ? def.name()
                                                                  : "workflows/" + def.name());
  for (const v1::TaskSpec& task : def.tasks()) {
    v1::TaskSpec* spec = request.add_tasks();
    *spec = task;
    // No identity: the identity level must prove itself over 3+ runs of
    // the same spec and context, which a plan seldom repeats (and cmd/
    // keeps out of the engine's internals, where TaskIdentity lives).
    v1::TaskContext* c = request.add_contexts();
    spec->set_queue(QueueOf(def, task));
    for (const auto& [key, value] : context) {
      double number = 0;
      if (absl::SimpleAtod(value, &number)) (*c->mutable_context_values())[key] = number;
    }
  }
  auto stub = v1::PredictorService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + kPredictDeadline));
  v1::PredictResourcesResponse response;
  grpc::Status status = stub->PredictResources(&call, request, &response);
  if (!status.ok()) {
    *why = TerminalSafe(FromGrpcStatus(status).ToString());
    return std::nullopt;
  }
  if (response.predictions_size() != def.tasks_size()) {
    *why = absl::StrCat("it answered ", response.predictions_size(), " predictions for ",
                        def.tasks_size(), " tasks");
    return std::nullopt;
  }
  return response;
}

Value Number(double v) {
  Value out;
  out.set_number_value(v);
  return out;
}

Value Text(const std::string& s) {
  Value out;
  out.set_string_value(s);
  return out;
}

Value Interval(const v1::PredictedValue& v) {
  Value out;
  Struct* s = out.mutable_struct_value();
  (*s->mutable_fields())["value"] = Number(v.value());
  (*s->mutable_fields())["p10"] = Number(v.p10());
  (*s->mutable_fields())["p90"] = Number(v.p90());
  (*s->mutable_fields())["level"] = Text(LevelName(v.level()));
  (*s->mutable_fields())["observations"] = Number(static_cast<double>(v.observations()));
  return out;
}

struct Plan {
  std::string workflow;
  bool predicted = false;
  std::string predictor;
  std::string no_predictor_reason;
  std::vector<v1::ResourcePrediction> tasks;
  double total_cost = 0;
  bool priced = false;  // some task's worker type has a price
  std::string no_prices_reason;
  optimizer::Analysis analysis;
  absl::Time finish;
};

std::string PlanJson(const Plan& plan) {
  Struct root;
  auto& f = *root.mutable_fields();
  f["workflow"] = Text(plan.workflow);
  f["predicted"] = Value();
  f["predicted"].set_bool_value(plan.predicted);
  f["predictor"] = Text(plan.predictor);
  if (!plan.predicted) f["no_predictor_reason"] = Text(plan.no_predictor_reason);
  Value tasks;
  for (const v1::ResourcePrediction& p : plan.tasks) {
    Value task;
    auto& t = *task.mutable_struct_value()->mutable_fields();
    t["id"] = Text(p.task_id());
    t["duration_seconds"] = Interval(p.duration_seconds());
    t["memory_bytes"] = Interval(p.memory_bytes());
    t["cpu"] = Interval(p.cpu());
    t["priced"] = Value();
    t["priced"].set_bool_value(p.priced());
    if (p.priced()) t["cost"] = Number(p.cost());
    *tasks.mutable_list_value()->add_values() = std::move(task);
  }
  f["tasks"] = std::move(tasks);
  Value path;
  path.mutable_list_value();
  for (const std::string& id : plan.analysis.critical_path) {
    *path.mutable_list_value()->add_values() = Text(id);
  }
  f["critical_path"] = std::move(path);
  f["critical_path_seconds"] = Number(plan.analysis.critical_path_seconds);
  f["makespan_seconds"] = Number(plan.analysis.makespan_seconds);
  f["total_work_seconds"] = Number(plan.analysis.total_work_seconds);
  if (plan.priced) {
    f["total_cost"] = Number(plan.total_cost);
  } else {
    f["no_prices_reason"] = Text(plan.no_prices_reason);
  }
  f["finish_time"] = Text(absl::FormatTime(absl::RFC3339_sec, plan.finish, absl::UTCTimeZone()));
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(root, &json, options);
  return json;
}

void PrintPlan(const Plan& plan) {
  if (plan.predicted) {
    std::printf("workflow %s: %d tasks, predicted by %s\n", TerminalSafe(plan.workflow).c_str(),
                static_cast<int>(plan.tasks.size()), TerminalSafe(plan.predictor).c_str());
  } else {
    std::printf("workflow %s: %d tasks; no predictor at %s (%s): declared values\n",
                TerminalSafe(plan.workflow).c_str(), static_cast<int>(plan.tasks.size()),
                TerminalSafe(plan.predictor).c_str(), plan.no_predictor_reason.c_str());
  }
  std::printf("  %-24s %-28s %-30s %s\n", "task", "duration [p10-p90]", "memory [p10-p90]",
              "history (observations)");
  for (const v1::ResourcePrediction& p : plan.tasks) {
    const v1::PredictedValue& d = p.duration_seconds();
    const v1::PredictedValue& m = p.memory_bytes();
    std::string duration =
        d.value() > 0 || d.level() != v1::PREDICTION_LEVEL_UNSPECIFIED
            ? absl::StrCat(Seconds(d.value()), " [", Seconds(d.p10()), "-", Seconds(d.p90()), "]")
            : "unknown (1 s assumed)";
    std::string memory = m.value() > 0 ? absl::StrCat(Bytes(m.value()), " [", Bytes(m.p10()), "-",
                                                      Bytes(m.p90()), "]")
                                       : "-";
    std::string level = plan.predicted
                            ? absl::StrCat(LevelName(d.level()), " (", d.observations(), ")")
                            : "declared";
    std::printf("  %-24s %-28s %-30s %s\n", TerminalSafe(p.task_id()).c_str(), duration.c_str(),
                memory.c_str(), level.c_str());
  }
  if (plan.priced) {
    std::printf("predicted cost: %.4f (one run of every task; per task:", plan.total_cost);
    for (const v1::ResourcePrediction& p : plan.tasks) {
      if (p.priced()) std::printf(" %s %.4f", TerminalSafe(p.task_id()).c_str(), p.cost());
    }
    std::printf(")\n");
  } else {
    std::printf("predicted cost: unknown (%s)\n", plan.no_prices_reason.c_str());
  }
  std::printf("critical path: %s: %s\n", Seconds(plan.analysis.critical_path_seconds).c_str(),
              TerminalSafe(absl::StrJoin(plan.analysis.critical_path, " -> ")).c_str());
  std::printf("predicted finish: %s from now (%s), %s of work\n",
              Seconds(plan.analysis.makespan_seconds).c_str(),
              absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", plan.finish, absl::UTCTimeZone()).c_str(),
              Seconds(plan.analysis.total_work_seconds).c_str());
}

// The optimizer's analysis of the same durations, printed after the plan;
// a line saying why when it does not answer.
void PrintOptimizerSummary(const std::string& address, const v1::WorkflowDefinition& def,
                           const Plan& plan) {
  v1::AnalyzeWorkflowRequest request;
  *request.mutable_definition() = def;
  if (plan.predicted) {
    for (const v1::ResourcePrediction& p : plan.tasks) {
      const double s = p.duration_seconds().value();
      google::protobuf::Duration& d = (*request.mutable_task_durations())[p.task_id()];
      d.set_seconds(static_cast<int64_t>(s));
      d.set_nanos(static_cast<int32_t>((s - static_cast<double>(d.seconds())) * 1e9));
    }
  }
  auto stub = v1::OptimizerService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + kAnalyzeDeadline));
  v1::AnalyzeWorkflowResponse response;
  grpc::Status status = stub->AnalyzeWorkflow(&call, request, &response);
  if (!status.ok()) {
    std::printf("optimizer at %s: no summary (%s)\n", TerminalSafe(address).c_str(),
                TerminalSafe(FromGrpcStatus(status).ToString()).c_str());
    return;
  }
  std::printf("optimizer (%s):\n", TerminalSafe(address).c_str());
  PrintAnalysis(response);
}

}  // namespace

int PlanCommand(int argc, char** argv) {
  std::string predictor_flag;
  std::string optimizer_flag;
  bool json = false;
  std::map<std::string, std::string> sets;
  const std::vector<CommandOption> options = {
      {"set", [&](const std::string& v) { return ParseSetFlag(v, &sets); }},
      {"predictor",
       [&](const std::string& v) {
         predictor_flag = v;
         return absl::OkStatus();
       }},
      {"optimizer",
       [&](const std::string& v) {
         optimizer_flag = v;
         return absl::OkStatus();
       }},
      {"json",
       [&](const std::string&) {
         json = true;
         return absl::OkStatus();
       },
       false},
  };
  absl::StatusOr<CommandLine> line = ParseCommandLine(argc, argv, options);
  if (!line.ok()) {
    std::fprintf(stderr, "gyre plan: %s\n", TerminalSafe(line.status().message()).c_str());
    return kRunBadInput;
  }
  if (line->positional.size() != 1) {
    std::fprintf(stderr, "gyre plan: which workflow file? (gyre plan FILE.yaml)\n");
    return kRunBadInput;
  }
  absl::StatusOr<v1::WorkflowDefinition> def = workflow::LoadWorkflowFile(line->positional[0]);
  if (!def.ok()) {
    std::fprintf(stderr, "gyre plan: %s\n", TerminalSafe(def.status().message()).c_str());
    return kRunBadInput;
  }
  if (def->tasks_size() > kMaxPlannedTasks) {
    std::fprintf(stderr, "gyre plan: %d tasks is over the limit of %d (the predictor's batch)\n",
                 def->tasks_size(), kMaxPlannedTasks);
    return kRunBadInput;
  }
  std::map<std::string, std::string> context(def->default_context().begin(),
                                             def->default_context().end());
  for (const auto& [key, value] : sets) context[key] = value;

  Plan plan;
  plan.workflow = def->name();
  plan.predictor = Address(predictor_flag, "GYRE_PREDICTOR", line->orchestrator);
  const google::protobuf::Map<std::string, v1::WorkerPrice> prices =
      WorkerPrices(line->channel, &plan.no_prices_reason);
  std::optional<v1::PredictResourcesResponse> predicted =
      Predict(plan.predictor, *def, context, prices, &plan.no_predictor_reason);
  plan.predicted = predicted.has_value();
  optimizer::AnalysisInput input;
  input.definition = *def;
  for (int i = 0; i < def->tasks_size(); ++i) {
    if (predicted) {
      plan.tasks.push_back(predicted->predictions(i));
      plan.tasks.back().set_task_id(def->tasks(i).id());
      input.recorded_seconds[def->tasks(i).id()] =
          std::max(0.0, predicted->predictions(i).duration_seconds().value());
    } else {
      plan.tasks.push_back(Declared(def->tasks(i)));
      auto price = prices.find(QueueOf(*def, def->tasks(i)));
      if (price != prices.end()) {
        plan.tasks.back().set_priced(true);
        plan.tasks.back().set_cost(
            predictor::PredictedCost(price->second, def->tasks(i), plan.tasks.back()));
      }
    }
    plan.priced = plan.priced || plan.tasks.back().priced();
    plan.total_cost += plan.tasks.back().cost();
  }
  if (!plan.priced && plan.no_prices_reason.empty()) {
    plan.no_prices_reason = "no price for these tasks' worker types";
  }
  // The optimizer's own critical path and list-scheduling simulation, on
  // the predicted durations (pools unlimited: a plan says what the DAG
  // allows; gyre analyze --pool simulates a capped pool).
  absl::StatusOr<optimizer::Analysis> analysis = optimizer::AnalyzeWorkflow(input);
  if (!analysis.ok()) {
    std::fprintf(stderr, "gyre plan: %s\n", TerminalSafe(analysis.status().message()).c_str());
    return kRunBadInput;
  }
  plan.analysis = *std::move(analysis);
  plan.finish = absl::Now() + absl::Seconds(plan.analysis.makespan_seconds);
  if (json) {
    std::printf("%s\n", PlanJson(plan).c_str());
    return 0;
  }
  PrintPlan(plan);
  const std::string optimizer = Address(optimizer_flag, "GYRE_OPTIMIZER", "");
  if (!optimizer.empty()) PrintOptimizerSummary(optimizer, *def, plan);
  return 0;
}

}  // namespace gyre::cli
