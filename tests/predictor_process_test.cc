// The real gyre-predictor process over gRPC on loopback: observations
// recorded in one run shape the predictions, and survive a restart (in its
// data_dir, or with store: postgres in a real PostgreSQL 15); gyre
// plan prints them, and a real gyre-optimizer's summary of them.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/free_port.h"
#include "libs/testing/postgres_server.h"
#include "libs/testing/scratch_dir.h"

namespace gyre {
namespace {

using testing::ChildProcess;

std::string BinaryPath(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

struct RunningPredictor {
  std::unique_ptr<ChildProcess> process;
  std::unique_ptr<v1::PredictorService::Stub> stub;
  std::string address;  // host:port of its gRPC server
};

// `extra_flags` and `extra_env` ("K=V") after the usual ones.
RunningPredictor StartPredictor(const std::string& data_dir,
                                const std::vector<std::string>& extra_flags = {},
                                std::vector<std::string> extra_env = {}) {
  RunningPredictor running;
  std::vector<std::string> argv = {BinaryPath("services/predictor/gyre-predictor"),
                                   "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                                   "--shutdown_grace=2s", absl::StrCat("--data_dir=", data_dir)};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  auto process = ChildProcess::Start(std::move(argv), std::move(extra_env));
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return running;
  running.process = *std::move(process);
  auto serving = running.process->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
      absl::Seconds(20));
  EXPECT_TRUE(serving.ok()) << serving.status() << running.process->Output();
  if (!serving.ok()) return running;
  const std::optional<int> port = testing::JsonIntField(*serving, "grpc_port");
  running.address = absl::StrCat("127.0.0.1:", port.value_or(0));
  running.stub = v1::PredictorService::NewStub(
      grpc::CreateChannel(running.address, grpc::InsecureChannelCredentials()));
  return running;
}

void Stop(RunningPredictor& running) {
  running.process->Signal(SIGTERM);
  const std::optional<int> status = running.process->WaitForExit(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << running.process->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << running.process->Output();
}

v1::PredictResourcesResponse Predict(v1::PredictorService::Stub& stub) {
  v1::PredictResourcesRequest request;
  request.set_workflow("workflows/etl");
  v1::TaskSpec* task = request.add_tasks();
  task->set_id("transform-new");
  task->add_command("/usr/local/bin/transform");
  task->set_queue("default");
  v1::PredictResourcesResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status = stub.PredictResources(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

TEST(PredictorProcessTest, LearnsFromObservationsAndKeepsTheModelAcrossARestart) {
  testing::ScratchDir dir("predictor_process_test");
  ASSERT_FALSE(dir.path().empty());
  RunningPredictor first = StartPredictor(dir.path());
  ASSERT_NE(first.stub, nullptr);

  // Nothing observed yet: the prior answers.
  EXPECT_EQ(Predict(*first.stub).predictions(0).duration_seconds().level(),
            v1::PREDICTION_LEVEL_PRIOR);

  v1::RecordObservationsRequest batch;
  for (int i = 0; i < 40; ++i) {
    v1::ResourceObservation* o = batch.add_observations();
    o->set_workflow("workflows/etl");
    o->set_task_id(absl::StrCat("transform-", i));
    o->set_program("transform");
    o->set_queue("default");
    o->mutable_duration()->set_seconds(120 + i % 5);
    o->set_peak_memory_bytes(int64_t{3} << 30);
    o->set_cpu_cores(2.0);
    o->set_succeeded(true);
  }
  {
    v1::RecordObservationsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(first.stub->RecordObservations(&context, batch, &response).ok());
    EXPECT_EQ(response.recorded(), 40);
  }
  const v1::PredictResourcesResponse learned = Predict(*first.stub);
  const v1::PredictedValue& duration = learned.predictions(0).duration_seconds();
  EXPECT_EQ(duration.level(), v1::PREDICTION_LEVEL_PROGRAM);
  EXPECT_NEAR(duration.value(), 122, 2.01);
  EXPECT_EQ(duration.observations(), 40);
  EXPECT_NEAR(learned.predictions(0).memory_bytes().value(), 3.0 * (1 << 30), 1e6);

  // A batch over the limit is refused with the limit named.
  v1::RecordObservationsRequest too_many;
  for (int i = 0; i < 10001; ++i) too_many.add_observations();
  v1::RecordObservationsResponse ignored;
  grpc::ClientContext context;
  grpc::Status refused = first.stub->RecordObservations(&context, too_many, &ignored);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "10000")) << refused.error_message();

  Stop(first);
  RunningPredictor second = StartPredictor(dir.path());
  ASSERT_NE(second.stub, nullptr);
  EXPECT_EQ(Predict(*second.stub).SerializeAsString(), learned.SerializeAsString());
  Stop(second);
}

// How many models predictor_models holds whose observation count compares
// to `observations` by `compare` ("=", ">=") (-1 when the table cannot be
// read yet).
int SavedModelsOf(const std::string& dsn, int64_t observations, const char* compare = "=") {
  try {
    pqxx::connection connection(dsn);
    pqxx::read_transaction tx(connection);
    return tx
        .exec_params1(absl::StrCat("SELECT count(*) FROM predictor_models WHERE observation_count ",
                                   compare, " $1"),
                      observations)[0]
        .as<int>();
  } catch (const std::exception&) {
    return -1;
  }
}

// store: postgres: a replacement predictor with nothing in its data_dir (a
// pod without a volume) answers from what the killed one learned, saved in
// the database; the password, given apart, is never printed.
TEST(PredictorProcessTest, WithStorePostgresAKilledPredictorsModelOutlivesItsDataDir) {
  testing::PostgresServer& server = testing::PostgresServer::Shared();
  absl::StatusOr<std::string> database = server.CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  const std::vector<std::string> flags = {
      "--store=postgres", "--postgres_dsn=" + server.TcpDsn(*database), "--save_interval=1s"};
  const std::vector<std::string> env = {"GYRE_POSTGRES_PASSWORD=" + server.password()};
  testing::ScratchDir first_dir("predictor_postgres_first");
  testing::ScratchDir second_dir("predictor_postgres_second");
  ASSERT_FALSE(first_dir.path().empty());
  ASSERT_FALSE(second_dir.path().empty());

  RunningPredictor first = StartPredictor(first_dir.path(), flags, env);
  ASSERT_NE(first.stub, nullptr);
  v1::RecordObservationsRequest batch;
  for (int i = 0; i < 25; ++i) {
    v1::ResourceObservation* o = batch.add_observations();
    o->set_workflow("workflows/etl");
    o->set_task_id(absl::StrCat("transform-", i));
    o->set_program("transform");
    o->set_queue("default");
    o->mutable_duration()->set_seconds(300 + i % 3);
    o->set_peak_memory_bytes(int64_t{5} << 30);
    o->set_cpu_cores(4.0);
    o->set_succeeded(true);
  }
  {
    v1::RecordObservationsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(first.stub->RecordObservations(&context, batch, &response).ok());
    ASSERT_EQ(response.recorded(), 25);
  }
  const v1::PredictResourcesResponse learned = Predict(*first.stub);
  ASSERT_EQ(learned.predictions(0).duration_seconds().level(), v1::PREDICTION_LEVEL_PROGRAM);
  // Saved within a save_interval (1s); killed, it saves nothing more.
  const std::string dsn = server.SocketDsn(*database);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (SavedModelsOf(dsn, 25) < 1 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(100));
  ASSERT_EQ(SavedModelsOf(dsn, 25), 1) << first.process->Output();
  first.process->Signal(SIGKILL);
  ASSERT_TRUE(first.process->WaitForExit(absl::Seconds(15)).has_value());
  EXPECT_TRUE(std::filesystem::is_empty(first_dir.path())) << "no model file in data_dir";

  RunningPredictor second = StartPredictor(second_dir.path(), flags, env);
  ASSERT_NE(second.stub, nullptr);
  EXPECT_EQ(Predict(*second.stub).SerializeAsString(), learned.SerializeAsString());
  Stop(second);
  const std::string output = first.process->Output() + second.process->Output();
  EXPECT_FALSE(absl::StrContains(output, server.password())) << output;
  EXPECT_TRUE(std::filesystem::is_empty(second_dir.path()));
  EXPECT_TRUE(server.DropDatabase(*database).ok());
}

// A workflow of three tasks: prep, then crunch-small and crunch-big in
// parallel; nothing declares a duration.
constexpr char kPlanYaml[] = R"(name: plan-demo
default_queue: default
tasks:
  - id: prep
    command: [/usr/bin/prep]
  - id: crunch-small
    command: [/usr/bin/crunch, small]
    depends_on: [prep]
  - id: crunch-big
    command: [/usr/bin/crunch, big]
    depends_on: [prep]
)";

struct CliRun {
  int exit_code = -1;
  std::string output;
};

CliRun RunGyre(std::vector<std::string> args) {
  args.insert(args.begin(), BinaryPath("cmd/gyre/gyre"));
  CliRun run;
  auto process = ChildProcess::Start(std::move(args), {"GYRE_PREDICTOR=", "GYRE_OPTIMIZER="});
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return run;
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(60));
  run.output = (*process)->Output();
  if (status.has_value() && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  return run;
}

// gyre dev with store: postgres keeps its in-process predictor's model in
// that database too, not in <data_dir>/predictor: what it learned from a run
// is a row of predictor_models once it stops.
TEST(PredictorProcessTest, GyreDevOnPostgresKeepsThePredictorsModelInTheDatabase) {
  testing::PostgresServer& server = testing::PostgresServer::Shared();
  absl::StatusOr<std::string> database = server.CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  testing::ScratchDir data_dir("gyre_dev_postgres_model");
  ASSERT_FALSE(data_dir.path().empty());
  // Its orchestrator sends what it observes to its own predictor.
  const absl::StatusOr<int> port = testing::FreePort();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  auto dev = ChildProcess::Start(
      {BinaryPath("cmd/gyre/gyre"), "dev", "--grpc_address=" + address,
       "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
       absl::StrCat("--data_dir=", data_dir.path())},
      {"GYRE_STORE=postgres", "GYRE_POSTGRES_DSN=" + server.TcpDsn(*database),
       "GYRE_POSTGRES_PASSWORD=" + server.password(), "GYRE_PREDICTOR_ADDRESS=" + address});
  ASSERT_TRUE(dev.ok()) << dev.status();
  auto up = (*dev)->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"gyre dev is up\""); },
      absl::Seconds(30));
  ASSERT_TRUE(up.ok()) << up.status() << (*dev)->Output();
  const std::string orchestrator = "--orchestrator=" + address;
  const std::string workflow = data_dir.path() + "/three.yaml";
  {
    std::ofstream file(workflow);
    file << "name: three\ntasks:\n"
            "  - {id: a, command: [/bin/true]}\n"
            "  - {id: b, command: [/bin/true]}\n"
            "  - {id: c, command: [/bin/true], depends_on: [a, b]}\n";
  }
  const CliRun run = RunGyre({"run", workflow, orchestrator});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  (*dev)->Signal(SIGTERM);  // the predictor saves its model as it stops
  const std::optional<int> status = (*dev)->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << (*dev)->Output();
  EXPECT_EQ(SavedModelsOf(server.SocketDsn(*database), 3, ">="), 1) << (*dev)->Output();
  EXPECT_FALSE(std::filesystem::exists(data_dir.path() + "/predictor") &&
               !std::filesystem::is_empty(data_dir.path() + "/predictor"))
      << "a model file in <data_dir>/predictor";
  EXPECT_FALSE(absl::StrContains((*dev)->Output(), server.password()));
  EXPECT_TRUE(server.DropDatabase(*database).ok());
}

// The JSON object gyre plan --json printed (its one line starting with '{').
google::protobuf::Struct PlanJson(const std::string& output) {
  google::protobuf::Struct plan;
  const size_t start = output.find('{');
  EXPECT_NE(start, std::string::npos) << output;
  if (start == std::string::npos) return plan;
  const std::string json = output.substr(start, output.find('\n', start) - start);
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &plan).ok()) << json;
  return plan;
}

const google::protobuf::Struct& TaskIn(const google::protobuf::Struct& plan,
                                       const std::string& id) {
  for (const auto& task : plan.fields().at("tasks").list_value().values()) {
    if (task.struct_value().fields().at("id").string_value() == id) return task.struct_value();
  }
  ADD_FAILURE() << "no task " << id;
  static const google::protobuf::Struct kNone;
  return kNone;
}

TEST(PredictorProcessTest, PlanShowsWhatThePredictorLearnedAndItsCriticalPath) {
  testing::ScratchDir dir("plan_command_test");
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.path() + "/plan-demo.yaml";
  std::ofstream(file) << kPlanYaml;
  RunningPredictor predictor = StartPredictor(dir.path() + "/model");
  ASSERT_NE(predictor.stub, nullptr);

  // History: prep ran 10 s; crunch-small 20 s and crunch-big 300 s, 5 times each.
  v1::RecordObservationsRequest batch;
  for (const auto& [task, program, seconds] :
       std::vector<std::tuple<std::string, std::string, int>>{
           {"prep", "prep", 10}, {"crunch-small", "crunch", 20}, {"crunch-big", "crunch", 300}}) {
    for (int i = 0; i < 5; ++i) {
      v1::ResourceObservation* o = batch.add_observations();
      o->set_workflow("workflows/plan-demo");
      o->set_task_id(task);
      o->set_program(program);
      o->set_queue("default");
      o->mutable_duration()->set_seconds(seconds);
      o->set_peak_memory_bytes(int64_t{256} << 20);
      o->set_cpu_cores(1.0);
      o->set_succeeded(true);
    }
  }
  {
    v1::RecordObservationsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(predictor.stub->RecordObservations(&context, batch, &response).ok());
  }
  const std::string& address = predictor.address;
  CliRun run = RunGyre({"plan", file, "--predictor", address, "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const google::protobuf::Struct plan = PlanJson(run.output);
  EXPECT_TRUE(plan.fields().at("predicted").bool_value()) << run.output;
  // Each task is answered by its own history ("this task in other contexts").
  for (const auto& [task, seconds] : std::vector<std::pair<std::string, double>>{
           {"prep", 10}, {"crunch-small", 20}, {"crunch-big", 300}}) {
    const auto& duration = TaskIn(plan, task).fields().at("duration_seconds").struct_value();
    EXPECT_NEAR(duration.fields().at("value").number_value(), seconds, seconds * 0.05) << task;
    EXPECT_EQ(duration.fields().at("level").string_value(), "task") << task;
    EXPECT_EQ(duration.fields().at("observations").number_value(), 5) << task;
    EXPECT_LE(duration.fields().at("p10").number_value(),
              duration.fields().at("p90").number_value());
    const auto& memory = TaskIn(plan, task).fields().at("memory_bytes").struct_value();
    EXPECT_NEAR(memory.fields().at("value").number_value(), 256.0 * (1 << 20), 1 << 20) << task;
  }
  // The critical path goes through the long crunch: 10 s + 300 s.
  const auto& path = plan.fields().at("critical_path").list_value();
  ASSERT_EQ(path.values_size(), 2) << run.output;
  EXPECT_EQ(path.values(0).string_value(), "prep");
  EXPECT_EQ(path.values(1).string_value(), "crunch-big");
  EXPECT_NEAR(plan.fields().at("critical_path_seconds").number_value(), 310, 310 * 0.05);
  EXPECT_NEAR(plan.fields().at("makespan_seconds").number_value(), 310, 310 * 0.05);

  // The table says the same in words.
  CliRun table = RunGyre({"plan", file, "--predictor", address});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_TRUE(absl::StrContains(table.output, "critical path: ")) << table.output;
  EXPECT_TRUE(absl::StrContains(table.output, "prep -> crunch-big")) << table.output;
  EXPECT_TRUE(absl::StrContains(table.output, "task (5)")) << table.output;
  Stop(predictor);
}

// A lone chain: fetch, then parse. The optimizer calls it a serial chain
// and measures running the two side by side.
constexpr char kChainYaml[] = R"(name: plan-chain
default_queue: default
tasks:
  - id: fetch
    command: [/usr/bin/fetch]
  - id: parse
    command: [/usr/bin/parse]
    depends_on: [fetch]
)";

// A gyre-optimizer for inline definitions only (no orchestrator), asking
// the predictor at `predictor_address` when one is given.
struct RunningOptimizer {
  std::unique_ptr<ChildProcess> process;
  std::string address;
};

RunningOptimizer StartOptimizer(const std::string& predictor_address = "") {
  RunningOptimizer running;
  auto process =
      ChildProcess::Start({BinaryPath("services/optimizer/gyre-optimizer"),
                           "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                           "--orchestrator_address=", "--predictor_address=" + predictor_address});
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return running;
  running.process = *std::move(process);
  auto serving = running.process->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
      absl::Seconds(20));
  EXPECT_TRUE(serving.ok()) << serving.status() << running.process->Output();
  if (!serving.ok()) return running;
  running.address =
      absl::StrCat("127.0.0.1:", testing::JsonIntField(*serving, "grpc_port").value_or(0));
  return running;
}

// History of kChainYaml's tasks: fetch ran 40 s and parse 60 s, 5 times each.
bool RecordChainHistory(v1::PredictorService::Stub& stub) {
  v1::RecordObservationsRequest batch;
  for (const auto& [task, seconds] :
       std::vector<std::pair<std::string, int>>{{"fetch", 40}, {"parse", 60}}) {
    for (int i = 0; i < 5; ++i) {
      v1::ResourceObservation* o = batch.add_observations();
      o->set_workflow("workflows/plan-chain");
      o->set_task_id(task);
      o->set_program(task);
      o->set_queue("default");
      o->mutable_duration()->set_seconds(seconds);
      o->set_peak_memory_bytes(int64_t{64} << 20);
      o->set_cpu_cores(1.0);
      o->set_succeeded(true);
    }
  }
  v1::RecordObservationsResponse response;
  grpc::ClientContext context;
  const grpc::Status status = stub.RecordObservations(&context, batch, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return status.ok();
}

TEST(PredictorProcessTest, PlanPrintsTheOptimizersSummaryOnThePredictedDurations) {
  testing::ScratchDir dir("plan_command_test");
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.path() + "/plan-chain.yaml";
  std::ofstream(file) << kChainYaml;
  RunningPredictor predictor = StartPredictor(dir.path() + "/model");
  ASSERT_NE(predictor.stub, nullptr);
  RunningOptimizer optimizer = StartOptimizer();
  ASSERT_FALSE(optimizer.address.empty());

  ASSERT_TRUE(RecordChainHistory(*predictor.stub));

  CliRun run =
      RunGyre({"plan", file, "--predictor", predictor.address, "--optimizer", optimizer.address});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string header = absl::StrCat("optimizer (", optimizer.address, "):\n");
  const size_t summary_at = run.output.find(header);
  ASSERT_NE(summary_at, std::string::npos) << run.output;
  const std::string plan = run.output.substr(0, summary_at);
  const std::string summary = run.output.substr(summary_at + header.size());
  // The optimizer's own analysis, on the durations the predictor gave (sent
  // as task_durations: "recorded"), not its 1 s default.
  EXPECT_TRUE(absl::StrContains(summary, "2 tasks; durations: 2 recorded\n")) << summary;
  EXPECT_TRUE(absl::StrContains(summary, "total work (100%): fetch -> parse\n")) << summary;
  EXPECT_TRUE(absl::StrContains(summary, "bottlenecks:\n  serial_chain: ")) << summary;
  EXPECT_TRUE(absl::StrContains(summary, "recommendations:\n  [parallel-parse-fetch] ")) << summary;
  EXPECT_TRUE(absl::StrContains(summary, "(changes what the workflow computes: by hand only)"))
      << summary;
  // The plan's own lines come before it and say none of this.
  EXPECT_TRUE(absl::StrContains(plan, "critical path: ")) << plan;
  EXPECT_FALSE(absl::StrContains(plan, "total work (")) << plan;
  EXPECT_FALSE(absl::StrContains(plan, "parallel-parse-fetch")) << plan;

  // No optimizer there: one line says so, the plan still succeeds, and none
  // of the summary is printed.
  CliRun without =
      RunGyre({"plan", file, "--predictor", predictor.address, "--optimizer", "127.0.0.1:1"});
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_TRUE(absl::StrContains(without.output, "optimizer at 127.0.0.1:1: no summary ("))
      << without.output;
  EXPECT_FALSE(absl::StrContains(without.output, "total work (")) << without.output;
  EXPECT_FALSE(absl::StrContains(without.output, "parallel-parse-fetch")) << without.output;

  optimizer.process->Signal(SIGTERM);
  EXPECT_TRUE(optimizer.process->WaitForExit(absl::Seconds(15)).has_value())
      << optimizer.process->Output();
  Stop(predictor);
}

// gyre-optimizer with a predictor_address asks it for the durations the
// request does not give (here: none), as gyre analyze sends no durations.
TEST(PredictorProcessTest, TheOptimizerAsksThePredictorForTheDurationsNotGiven) {
  testing::ScratchDir dir("optimizer_predictor_test");
  ASSERT_FALSE(dir.path().empty());
  RunningPredictor predictor = StartPredictor(dir.path() + "/model");
  ASSERT_NE(predictor.stub, nullptr);
  ASSERT_TRUE(RecordChainHistory(*predictor.stub));
  RunningOptimizer optimizer = StartOptimizer(predictor.address);
  ASSERT_FALSE(optimizer.address.empty());
  auto stub = v1::OptimizerService::NewStub(
      grpc::CreateChannel(optimizer.address, grpc::InsecureChannelCredentials()));

  // fetch -> parse (commands: the predictor's), pause beside them (a
  // builtin sleep: its declared 1 s, not asked).
  v1::AnalyzeWorkflowRequest request;
  v1::WorkflowDefinition& def = *request.mutable_definition();
  def.set_name("workflows/plan-chain");
  v1::TaskSpec* fetch = def.add_tasks();
  fetch->set_id("fetch");
  fetch->add_command("/usr/bin/fetch");
  v1::TaskSpec* parse = def.add_tasks();
  parse->set_id("parse");
  parse->add_command("/usr/bin/parse");
  parse->add_depends_on("fetch");
  v1::TaskSpec* pause = def.add_tasks();
  pause->set_id("pause");
  pause->mutable_builtin()->set_kind(v1::BuiltinExecutor::SLEEP);
  pause->mutable_builtin()->mutable_duration()->set_seconds(1);
  v1::AnalyzeWorkflowResponse analysis;
  {
    grpc::ClientContext call;
    const grpc::Status status = stub->AnalyzeWorkflow(&call, request, &analysis);
    ASSERT_TRUE(status.ok()) << status.error_message() << optimizer.process->Output();
  }
  EXPECT_EQ(analysis.duration_sources().predicted(), 2) << analysis.DebugString();
  EXPECT_EQ(analysis.duration_sources().builtin(), 1) << analysis.DebugString();
  EXPECT_EQ(analysis.duration_sources().default_unit(), 0) << analysis.DebugString();
  EXPECT_TRUE(analysis.predictor_error().empty()) << analysis.predictor_error();
  ASSERT_EQ(analysis.critical_path_size(), 2) << analysis.DebugString();
  EXPECT_EQ(analysis.critical_path(0), "fetch");
  EXPECT_EQ(analysis.critical_path(1), "parse");
  const double path = static_cast<double>(analysis.critical_path_duration().seconds()) +
                      analysis.critical_path_duration().nanos() / 1e9;
  EXPECT_NEAR(path, 100, 5) << "40 s + 60 s as observed";

  // A duration the request gives wins over the predictor's.
  (*request.mutable_task_durations())["parse"].set_seconds(7);
  {
    grpc::ClientContext call;
    ASSERT_TRUE(stub->AnalyzeWorkflow(&call, request, &analysis).ok());
  }
  EXPECT_EQ(analysis.duration_sources().predicted(), 1) << analysis.DebugString();
  EXPECT_EQ(analysis.duration_sources().recorded(), 1) << analysis.DebugString();
  request.clear_task_durations();

  // gyre analyze prints where the durations came from.
  const std::string file = dir.path() + "/plan-chain.yaml";
  std::ofstream(file) << kChainYaml;
  CliRun cli = RunGyre({"analyze", file, "--optimizer", optimizer.address});
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_TRUE(absl::StrContains(cli.output, "2 tasks; durations: 2 predicted\n")) << cli.output;

  // The predictor gone: the analysis goes on with the default, and says why.
  Stop(predictor);
  {
    grpc::ClientContext call;
    const grpc::Status status = stub->AnalyzeWorkflow(&call, request, &analysis);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(analysis.duration_sources().predicted(), 0) << analysis.DebugString();
  EXPECT_EQ(analysis.duration_sources().default_unit(), 2) << analysis.DebugString();
  EXPECT_TRUE(absl::StrContains(analysis.predictor_error(), "gyre-predictor"))
      << analysis.predictor_error();
  cli = RunGyre({"analyze", file, "--optimizer", optimizer.address});
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_TRUE(absl::StrContains(cli.output, "predictor's durations not used: gyre-predictor"))
      << cli.output;

  optimizer.process->Signal(SIGTERM);
  EXPECT_TRUE(optimizer.process->WaitForExit(absl::Seconds(15)).has_value())
      << optimizer.process->Output();
}

TEST(PredictorProcessTest, PlanWithoutAPredictorSaysSoAndUsesDeclaredValues) {
  testing::ScratchDir dir("plan_command_test");
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.path() + "/plan-demo.yaml";
  std::ofstream(file) << kPlanYaml;
  // Port 1 on loopback: nothing listens there.
  CliRun run = RunGyre({"plan", file, "--predictor", "127.0.0.1:1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "no predictor at 127.0.0.1:1")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "declared values")) << run.output;
  CliRun json = RunGyre({"plan", file, "--predictor", "127.0.0.1:1", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const google::protobuf::Struct plan = PlanJson(json.output);
  EXPECT_FALSE(plan.fields().at("predicted").bool_value());
  EXPECT_EQ(TaskIn(plan, "crunch-big")
                .fields()
                .at("duration_seconds")
                .struct_value()
                .fields()
                .at("level")
                .string_value(),
            "declared");
  // A bad file is exit 2, as for gyre run.
  EXPECT_EQ(RunGyre({"plan", dir.path() + "/missing.yaml"}).exit_code, 2);
}

}  // namespace
}  // namespace gyre
