// The orchestrator's predictor link between real processes: attempts that
// run on a real agent reach a real gyre-predictor and shape its later
// predictions (`gyre plan` and `gyre status` show them); a predictor
// SIGKILLed mid-run changes nothing for the executions (observations are
// buffered, then dropped oldest-first and counted), and once it is back
// forwarding resumes. Against a predictor served in this process, which
// records what it is sent: every field an observation carries, and a slow
// predictor costs the engine nothing.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// Six sleeps of 300 ms: the same program (builtin:sleep) six times.
constexpr char kWorkflow[] = R"(
name: predlink
tasks:
  - {id: s1, builtin: sleep, duration: 300ms}
  - {id: s2, builtin: sleep, duration: 300ms}
  - {id: s3, builtin: sleep, duration: 300ms}
  - {id: s4, builtin: sleep, duration: 300ms}
  - {id: s5, builtin: sleep, duration: 300ms}
  - {id: s6, builtin: sleep, duration: 300ms}
)";

// Then a chain that declares no resources: predicted from the sleeps above.
constexpr char kChain[] = R"(
name: predlink
tasks:
  - {id: first, builtin: sleep, duration: 500ms}
  - {id: after, builtin: sleep, duration: 300ms, depends_on: [first]}
)";

// One task declaring no resources, run again and again with the same input.
constexpr char kRepeated[] = R"(
name: predrepeat
context: {input_bytes: "1000"}
tasks:
  - {id: nap, builtin: sleep, duration: 300ms}
)";

// Two tasks whose durations grow with input_bytes: `work` sleeps SECS, which
// the test sets to input_bytes / 10,000 (0.1–0.8 s). Both declare one core,
// so that with a price of 3,600 per core-hour a task costs its predicted
// seconds.
constexpr char kPlanned[] = R"(
name: predplan
context: {input_bytes: "1000", SECS: "0.1"}
tasks:
  - {id: prep, builtin: noop, resources: {cpu: 1}}
  - {id: work, command: [sleep, "${SECS}"], resources: {cpu: 1}, depends_on: [prep]}
)";

// A task that runs long enough to be seen running (a process: the agent
// reports it started; a builtin sleep stays leased until it ends).
constexpr char kLong[] = R"(
name: predlong
tasks:
  - {id: long, command: [sleep, "120"]}
)";

// What `gyre ...` printed and how it exited.
struct CommandRun {
  int exit_code = -1;
  std::string output;
};

// The one JSON object in `output` (from its first '{' to its last '}': a
// library may log a line before it).
std::optional<google::protobuf::Struct> JsonObjectIn(const std::string& output) {
  const size_t begin = output.find('{');
  const size_t end = output.rfind('}');
  if (begin == std::string::npos || end == std::string::npos || end < begin) return std::nullopt;
  google::protobuf::Struct object;
  if (!google::protobuf::util::JsonStringToMessage(output.substr(begin, end - begin + 1), &object)
           .ok()) {
    return std::nullopt;
  }
  return object;
}

const google::protobuf::Value& Field(const google::protobuf::Struct& object,
                                     const std::string& key) {
  auto it = object.fields().find(key);
  EXPECT_NE(it, object.fields().end()) << key;
  return it == object.fields().end() ? google::protobuf::Value::default_instance() : it->second;
}

class PredictorLinkTest : public Cluster {
 protected:
  void SetUp() override {
    StartPredictor("127.0.0.1:0");
    if (HasFatalFailure()) return;
    Cluster::SetUp();
    if (HasFatalFailure()) return;
    StartAgent("agent-1", 4);
  }
  void TearDown() override {
    predictor_.reset();
    Cluster::TearDown();
  }

  std::vector<std::string> ExtraOrchestratorEnv() override {
    std::vector<std::string> env = {"GYRE_PREDICTOR_ADDRESS=" + predictor_address_};
    if (buffer_ > 0) env.push_back(absl::StrCat("GYRE_PREDICTOR_OBSERVATION_BUFFER=", buffer_));
    return env;
  }

  // Starts gyre-predictor on `address` (port 0: any; its address is kept,
  // so that a restart takes the same one).
  void StartPredictor(const std::string& address) {
    auto predictor =
        ChildProcess::Start({Binary("services/predictor/gyre-predictor"),
                             "--grpc_address=" + address, "--metrics_address=127.0.0.1:0",
                             "--shutdown_grace=2s", "--data_dir=" + root_ + "/predictor"});
    ASSERT_TRUE(predictor.ok()) << predictor.status();
    predictor_ = *std::move(predictor);
    auto serving = predictor_->WaitForLine(IsServing, absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status() << predictor_->Output();
    predictor_address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    predictor_metrics_port_ = testing::JsonIntField(*serving, "metrics_port").value_or(0);
    predictor_stub_ = v1::PredictorService::NewStub(
        grpc::CreateChannel(predictor_address_, grpc::InsecureChannelCredentials()));
  }

  // The predictor's answer for a sleep it never saw, in the same workflow.
  v1::PredictedValue PredictNewSleep() {
    v1::PredictResourcesRequest request;
    request.set_workflow("workflows/predlink");
    v1::TaskSpec* task = request.add_tasks();
    task->set_id("never-ran");
    task->mutable_builtin()->set_kind(v1::BuiltinExecutor::SLEEP);
    task->set_queue("default");
    v1::PredictResourcesResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    const grpc::Status status = predictor_stub_->PredictResources(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.predictions_size() == 1 ? response.predictions(0).duration_seconds()
                                            : v1::PredictedValue();
  }

  // Polls the orchestrator's metric until it reaches `at_least` (generous
  // bound: the machine is shared); returns the last value read.
  double AwaitMetric(const std::string& sample, double at_least) {
    double value = Metric(sample);
    for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
         value < at_least && absl::Now() < deadline; value = Metric(sample)) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return value;
  }

  // The value of one sample in the predictor's /metrics; 0 when absent
  // (a counter nobody incremented is not exported), -1 when unreadable.
  double PredictorMetric(const std::string& sample) {
    auto response = testing::HttpGet("127.0.0.1", predictor_metrics_port_, "/metrics");
    if (!response.ok()) return -1;
    const std::string prefix = "\n" + sample + " ";
    const size_t at = response->body.find(prefix);
    if (at == std::string::npos) return 0;
    const size_t start = at + prefix.size();
    double value = -1;
    if (!absl::SimpleAtod(response->body.substr(start, response->body.find('\n', start) - start),
                          &value)) {
      return -1;
    }
    return value;
  }

  // Runs `gyre ARGS...` to its end.
  CommandRun Gyre(std::vector<std::string> args) {
    args.insert(args.begin(), Binary("cmd/gyre/gyre"));
    auto process = ChildProcess::Start(args);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return {};
    const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(60));
    EXPECT_TRUE(status.has_value()) << "gyre did not finish";
    CommandRun run;
    run.output = (*process)->Output();
    if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
    return run;
  }

  // `yaml` written to a file under the test's directory.
  std::string WorkflowFile(const std::string& yaml) {
    const std::string path = absl::StrCat(root_, "/planned", ++workflow_files_, ".yaml");
    std::ofstream(path) << yaml;
    return path;
  }

  int buffer_ = 0;  // GYRE_PREDICTOR_OBSERVATION_BUFFER when > 0
  int predictor_metrics_port_ = 0;
  std::unique_ptr<ChildProcess> predictor_;
  std::string predictor_address_;
  std::unique_ptr<v1::PredictorService::Stub> predictor_stub_;
};

TEST_F(PredictorLinkTest, FinishedAttemptsReachThePredictorAndShapeItsPredictions) {
  // Nothing learnt yet: the prior answers.
  EXPECT_EQ(PredictNewSleep().level(), v1::PREDICTION_LEVEL_PRIOR);

  const std::string execution = Start(kWorkflow);
  ASSERT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total", 6), 6);
  EXPECT_EQ(Metric("gyre_orchestrator_predictor_observations_dropped_total"), 0);

  // Learnt from what ran: six sleeps of at least 300 ms each.
  const v1::PredictedValue duration = PredictNewSleep();
  EXPECT_EQ(duration.level(), v1::PREDICTION_LEVEL_PROGRAM);
  EXPECT_EQ(duration.observations(), 6);
  EXPECT_GE(duration.value(), 0.3);
  EXPECT_LT(duration.value(), 30.0);

  // Tasks declaring no resources are given predicted ones, shown on the
  // task run beside what they used.
  const std::string chain = Start(kChain);
  ASSERT_EQ(Wait(chain), v1::EXECUTION_SUCCEEDED);
  v1::TaskRun after = Task(chain, "after");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !after.has_predicted_duration() && absl::Now() < deadline; after = Task(chain, "after")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(after.has_predicted_duration()) << after.DebugString();
  EXPECT_GE(after.predicted_duration().seconds() * 1e9 + after.predicted_duration().nanos(), 3e8);
  // A builtin sleep measures neither memory nor CPU: the predictor has only
  // its prior for them, and nothing is reserved on a prior.
  EXPECT_EQ(after.predicted_memory_bytes(), 0);
  EXPECT_EQ(after.predicted_cpu(), 0);

  auto status =
      ChildProcess::Start({Binary("cmd/gyre/gyre"), "status", chain, "--orchestrator=" + address_});
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE((*status)->WaitForExit(absl::Seconds(30)).has_value());
  const std::string output = (*status)->Output();
  EXPECT_TRUE(absl::StrContains(output, "predicted ")) << output;
  EXPECT_TRUE(absl::StrContains(output, "(p90)")) << output;
  EXPECT_TRUE(absl::StrContains(output, "  actual ")) << output;
}

TEST_F(PredictorLinkTest, RepeatedRunsOfAWorkflowArePredictedFromTheTasksOwnIdentity) {
  constexpr char kIdentity[] = "gyre_predictor_predictions_total{level=\"identity\"}";
  const std::map<std::string, std::string> input = {{"input_bytes", "1000"}};
  // The identity level answers once it has proven itself on its own
  // out-of-sample errors (ResourceModel::kMinResiduals = 3: four runs);
  // until then the task's other levels do.
  for (int run = 1; run <= 4; ++run) {
    const std::string execution = Start(kRepeated, input);
    ASSERT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
    ASSERT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total", run), run);
  }
  EXPECT_EQ(PredictorMetric(kIdentity), 0);

  // The fifth run is answered from the four before it: the orchestrator
  // reported them and asks for this one under the same identity.
  const std::string fifth = Start(kRepeated, input);
  ASSERT_EQ(Wait(fifth), v1::EXECUTION_SUCCEEDED);
  double identity = PredictorMetric(kIdentity);
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       identity < 1 && absl::Now() < deadline; identity = PredictorMetric(kIdentity)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(identity, 1);
  v1::TaskRun nap = Task(fifth, "nap");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !nap.has_predicted_duration() && absl::Now() < deadline; nap = Task(fifth, "nap")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(nap.has_predicted_duration()) << nap.DebugString();

  // Another input is another identity: answered by the task's other runs.
  const std::string other = Start(kRepeated, {{"input_bytes", "2000"}});
  ASSERT_EQ(Wait(other), v1::EXECUTION_SUCCEEDED);
  double task_level = 0;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       task_level < 1 && absl::Now() < deadline;
       task_level = PredictorMetric("gyre_predictor_predictions_total{level=\"task\"}")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GE(task_level, 1);
  EXPECT_EQ(PredictorMetric(kIdentity), 1);
}

// Prices every task of the default queue at 3,600 per core-hour: a task
// declaring one core costs its predicted seconds.
class PredictorPlanTest : public PredictorLinkTest {
 protected:
  std::vector<std::string> ExtraOrchestratorEnv() override {
    std::vector<std::string> env = PredictorLinkTest::ExtraOrchestratorEnv();
    env.push_back("GYRE_WORKER_PRICES={default: {core_hour: 3600}}");
    return env;
  }

  // `gyre plan --json` of kPlanned with input_bytes set to `input_bytes`.
  google::protobuf::Struct PlanJson(const std::string& file, int input_bytes) {
    const CommandRun plan =
        Gyre({"plan", file, "--json", "--predictor=" + predictor_address_,
              "--orchestrator=" + address_, absl::StrCat("--set=input_bytes=", input_bytes)});
    EXPECT_EQ(plan.exit_code, 0) << plan.output;
    std::optional<google::protobuf::Struct> json = JsonObjectIn(plan.output);
    EXPECT_TRUE(json.has_value()) << plan.output;
    return json.value_or(google::protobuf::Struct());
  }
};

TEST_F(PredictorPlanTest, PlanPredictsFromWhatRanWithItsCriticalPathFinishAndCost) {
  // Eight runs with input_bytes 1,000..8,000: `work` sleeps 0.1..0.8 s.
  constexpr int kRuns = 8;
  for (int run = 1; run <= kRuns; ++run) {
    const std::string execution = Start(
        kPlanned, {{"input_bytes", absl::StrCat(run * 1000)}, {"SECS", absl::StrCat(run / 10.0)}});
    ASSERT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  }
  ASSERT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total", 2 * kRuns),
            2 * kRuns);

  const std::string file = WorkflowFile(kPlanned);
  const absl::Time before = absl::Now();
  const google::protobuf::Struct large = PlanJson(file, 8000);
  const absl::Time after = absl::Now();
  EXPECT_TRUE(Field(large, "predicted").bool_value());
  const google::protobuf::ListValue& tasks = Field(large, "tasks").list_value();
  ASSERT_EQ(tasks.values_size(), 2);
  std::map<std::string, double> seconds;
  double cost_sum = 0;
  for (const google::protobuf::Value& task : tasks.values()) {
    const google::protobuf::Struct& t = task.struct_value();
    const std::string id = Field(t, "id").string_value();
    const google::protobuf::Struct& duration = Field(t, "duration_seconds").struct_value();
    // From what ran: this very task's history (a plan sends no identity,
    // so `task` is the most specific level it can hit), every run of it.
    // Nothing else ran on this predictor, so no more general level can
    // have proven better on the same values.
    EXPECT_EQ(Field(duration, "level").string_value(), "task") << id;
    EXPECT_EQ(Field(duration, "observations").number_value(), static_cast<double>(kRuns)) << id;
    seconds[id] = Field(duration, "value").number_value();
    // (The interval need not hold the point here: every run was longer
    // than the one before, so all of the residuals behind it are positive.)
    EXPECT_LE(Field(duration, "p10").number_value(), Field(duration, "p90").number_value()) << id;
    // One declared core at 3,600 per core-hour: the cost is the seconds.
    EXPECT_TRUE(Field(t, "priced").bool_value()) << id;
    EXPECT_NEAR(Field(t, "cost").number_value(), seconds[id], 1e-9 * (1 + seconds[id])) << id;
    cost_sum += Field(t, "cost").number_value();
  }
  ASSERT_EQ(seconds.count("work"), 1u);
  // The sleep's duration follows its input: at 8,000 bytes it ran ~0.8 s.
  EXPECT_GT(seconds["work"], 0.4);
  EXPECT_LT(seconds["work"], 3.0);
  EXPECT_NEAR(Field(large, "total_cost").number_value(), cost_sum, 1e-9 * (1 + cost_sum));

  // A chain: the critical path is both tasks, the finish their sum from now.
  const google::protobuf::ListValue& path = Field(large, "critical_path").list_value();
  ASSERT_EQ(path.values_size(), 2);
  EXPECT_EQ(path.values(0).string_value(), "prep");
  EXPECT_EQ(path.values(1).string_value(), "work");
  const double makespan = seconds["prep"] + seconds["work"];
  EXPECT_NEAR(Field(large, "critical_path_seconds").number_value(), makespan, 1e-9);
  EXPECT_NEAR(Field(large, "makespan_seconds").number_value(), makespan, 1e-9);
  absl::Time finish;
  std::string error;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, Field(large, "finish_time").string_value(),
                              &finish, &error))
      << error;
  // Printed to the second.
  EXPECT_GE(finish, before + absl::Seconds(makespan) - absl::Seconds(1));
  EXPECT_LE(finish, after + absl::Seconds(makespan) + absl::Seconds(1));

  // --set changes what is predicted: at 1,000 bytes `work` ran ~0.1 s.
  const google::protobuf::Struct small = PlanJson(file, 1000);
  double small_work = 0;
  for (const google::protobuf::Value& task : Field(small, "tasks").list_value().values()) {
    const google::protobuf::Struct& t = task.struct_value();
    if (Field(t, "id").string_value() != "work") continue;
    const google::protobuf::Struct& duration = Field(t, "duration_seconds").struct_value();
    EXPECT_EQ(Field(duration, "level").string_value(), "task");
    small_work = Field(duration, "value").number_value();
  }
  EXPECT_GT(small_work, 0.0);
  EXPECT_GT(seconds["work"], 2 * small_work) << "at 8,000 bytes vs 1,000";

  // The table a person reads: each task's level and observations, the
  // cost, the critical path and the finish.
  const CommandRun text = Gyre({"plan", file, "--predictor=" + predictor_address_,
                                "--orchestrator=" + address_, "--set", "input_bytes=8000"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, "workflow workflows/predplan: 2 tasks, predicted by"))
      << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, absl::StrCat("task (", kRuns, ")"))) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, "predicted cost: ")) << text.output;
  EXPECT_FALSE(absl::StrContains(text.output, "predicted cost: unknown")) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, "critical path: ")) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, ": prep -> work")) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, "predicted finish: ")) << text.output;
  EXPECT_TRUE(absl::StrContains(text.output, " UTC), ")) << text.output;

  // A --set that is not key=value is refused.
  EXPECT_EQ(Gyre({"plan", file, "--predictor=" + predictor_address_, "--orchestrator=" + address_,
                  "--set=input_bytes"})
                .exit_code,
            2);
}

TEST_F(PredictorLinkTest, StatusShowsARunningTaskBesideItsPrediction) {
  const std::string execution = Start(kLong);
  ASSERT_TRUE(AwaitTaskState(execution, "long", v1::TASK_RUNNING))
      << Task(execution, "long").DebugString();
  // The prediction arrives once the predictor answered (its prior here:
  // nothing ran yet).
  v1::TaskRun run = Task(execution, "long");
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !run.has_predicted_duration() && absl::Now() < deadline; run = Task(execution, "long")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(run.has_predicted_duration()) << run.DebugString();
  ASSERT_EQ(run.state(), v1::TASK_RUNNING);

  const CommandRun status = Gyre({"status", execution, "--orchestrator=" + address_});
  std::string prediction_line;
  for (absl::string_view line : absl::StrSplit(status.output, '\n')) {
    if (absl::StrContains(line, "predicted ")) prediction_line = std::string(line);
  }
  EXPECT_TRUE(absl::StrContains(prediction_line, "(p90)")) << status.output;
  EXPECT_TRUE(absl::StrContains(prediction_line, "  actual: running")) << status.output;
  ASSERT_TRUE(Cancel(execution).ok());
}

class PredictorLinkOutageTest : public PredictorLinkTest {
 protected:
  void SetUp() override {
    buffer_ = 2;  // so that an outage overflows it
    PredictorLinkTest::SetUp();
  }
};

TEST_F(PredictorLinkOutageTest, APredictorKilledMidRunCostsTheEngineNothingAndIsFoundAgain) {
  // Killed while the first tasks run.
  const std::string first = Start(kWorkflow);
  ASSERT_TRUE(AwaitTaskState(first, "s1", v1::TASK_RUNNING) ||
              AwaitTaskState(first, "s1", v1::TASK_SUCCEEDED));
  predictor_->Signal(SIGKILL);
  ASSERT_TRUE(predictor_->WaitForExit(absl::Seconds(10)).has_value());

  // Every execution still completes, a second one started during the outage too.
  EXPECT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED);
  const std::string second = Start(kWorkflow);
  EXPECT_EQ(Wait(second), v1::EXECUTION_SUCCEEDED);
  // Twelve observations against a buffer of two: sends failed, and the
  // oldest were dropped and counted.
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_send_failures_total", 1), 1);
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_dropped_total", 1), 1);
  const double sent_before = Metric("gyre_orchestrator_predictor_observations_sent_total");

  // Back on the same address (an empty model: it was killed before its
  // first save): the batch held through the outage arrives, and what runs
  // next is forwarded too (with a buffer of two, not all of it: results
  // may come faster than the sends, and the oldest are dropped).
  const std::string address = predictor_address_;
  StartPredictor(address);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total", sent_before + 1),
            sent_before + 1);
  const double resumed = Metric("gyre_orchestrator_predictor_observations_sent_total");
  const std::string third = Start(kWorkflow);
  ASSERT_EQ(Wait(third), v1::EXECUTION_SUCCEEDED);
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total", resumed + 1),
            resumed + 1);
  EXPECT_GE(PredictNewSleep().observations(), 2);
}

// A gyre.v1.PredictorService served in this process: it keeps every
// RecordObservations request it is sent and, while `slow` is set, answers
// no call before the caller gives up (each handler waits until its call is
// cancelled or its deadline passes), as an overloaded predictor would.
class RecordingPredictor final : public v1::PredictorService::Service {
 public:
  grpc::Status RecordObservations(grpc::ServerContext* context,
                                  const v1::RecordObservationsRequest* request,
                                  v1::RecordObservationsResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*request);
    }
    if (StallWhileSlow(context)) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow predictor");
    }
    absl::MutexLock lock(&mu_);
    acknowledged_ += request->observations_size();
    return grpc::Status::OK;
  }
  grpc::Status PredictResources(grpc::ServerContext* context, const v1::PredictResourcesRequest*,
                                v1::PredictResourcesResponse*) override {
    StallWhileSlow(context);
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "records only");
  }
  grpc::Status ForecastQueueLoad(grpc::ServerContext* context, const v1::ForecastQueueLoadRequest*,
                                 v1::ForecastQueueLoadResponse*) override {
    StallWhileSlow(context);
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "records only");
  }

  void set_slow(bool slow) { slow_ = slow; }
  // Ends every stalled call (before the server shuts down).
  void Stop() { stopping_ = true; }

  std::vector<v1::RecordObservationsRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  int64_t acknowledged() {
    absl::MutexLock lock(&mu_);
    return acknowledged_;
  }

 private:
  // Waits while slow, until the call is cancelled (its deadline passed) or
  // the test ends; returns whether it was stalled to the end.
  bool StallWhileSlow(grpc::ServerContext* context) {
    while (slow_ && !stopping_) {
      if (context->IsCancelled()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return stopping_;
  }

  std::atomic<bool> slow_{false};
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<v1::RecordObservationsRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t acknowledged_ ABSL_GUARDED_BY(mu_) = 0;
};

class RecordedObservationsTest : public Cluster {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&predictor_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    predictor_address_ = absl::StrCat("127.0.0.1:", port);
    Cluster::SetUp();
    if (HasFatalFailure()) return;
    StartAgent("agent-1", 4);
  }
  void TearDown() override {
    Cluster::TearDown();
    predictor_.Stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  std::vector<std::string> ExtraOrchestratorEnv() override {
    std::vector<std::string> env = {"GYRE_PREDICTOR_ADDRESS=" + predictor_address_};
    if (buffer_ > 0) env.push_back(absl::StrCat("GYRE_PREDICTOR_OBSERVATION_BUFFER=", buffer_));
    return env;
  }

  // Polls the orchestrator's metric until it reaches `at_least`.
  double AwaitMetric(const std::string& sample, double at_least) {
    double value = Metric(sample);
    for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
         value < at_least && absl::Now() < deadline; value = Metric(sample)) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return value;
  }

  int buffer_ = 0;  // GYRE_PREDICTOR_OBSERVATION_BUFFER when > 0
  RecordingPredictor predictor_;
  std::unique_ptr<grpc::Server> server_;
  std::string predictor_address_;
};

// Issue 24's list: identity, workflow, task id, command or builtin, queue,
// labels, declared resources, numeric context values and sizes, wall time,
// CPU time, peak RSS, outcome.
constexpr char kObserved[] = R"(
name: predrecord
context: {input_bytes: "4096", region: eu}
tasks:
  - id: burn
    command: [sh, -c, 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done']
    labels: {department: research}
    resources: {cpu: 1, memory: 64Mi}
    env: {input_count: "3", mode: fast}
  - {id: bad, command: [sh, -c, 'exit 3'], depends_on: [burn]}
)";

TEST_F(RecordedObservationsTest, AnObservationCarriesEveryFieldTheIssueLists) {
  const absl::Time started = absl::Now();
  const std::string execution = Start(kObserved);
  ASSERT_EQ(Wait(execution), v1::EXECUTION_FAILED);  // `bad` exits 3, after `burn`
  ASSERT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total", 2), 2);

  std::map<std::string, v1::ResourceObservation> by_task;
  for (const v1::RecordObservationsRequest& request : predictor_.requests()) {
    for (const v1::ResourceObservation& observation : request.observations()) {
      EXPECT_EQ(by_task.count(observation.task_id()), 0u)
          << "sent twice: " << observation.DebugString();
      by_task[observation.task_id()] = observation;
    }
  }
  ASSERT_EQ(by_task.size(), 2u);
  const v1::ResourceObservation& burn = by_task["burn"];
  const v1::ResourceObservation& bad = by_task["bad"];

  EXPECT_EQ(burn.workflow(), "workflows/predrecord");
  EXPECT_EQ(burn.task_id(), "burn");
  EXPECT_FALSE(burn.identity().empty());
  EXPECT_FALSE(bad.identity().empty());
  EXPECT_NE(burn.identity(), bad.identity()) << "two specs, one identity";
  EXPECT_EQ(burn.program(), "sh");
  EXPECT_EQ(burn.queue(), "default");
  EXPECT_EQ(burn.labels().size(), 1u);
  EXPECT_EQ(burn.labels().at("department"), "research");
  EXPECT_EQ(burn.requested().cpu(), 1);
  EXPECT_EQ(burn.requested().memory_bytes(), int64_t{64} << 20);
  // The execution's numeric context and the task's numeric env; not the
  // words (`region`, `mode`).
  const std::map<std::string, double> values(burn.context_values().begin(),
                                             burn.context_values().end());
  EXPECT_EQ(values, (std::map<std::string, double>{{"input_bytes", 4096}, {"input_count", 3}}));
  // What it used: a shell loop burns CPU and has a resident set.
  const absl::Duration wall =
      absl::Seconds(burn.duration().seconds()) + absl::Nanoseconds(burn.duration().nanos());
  const absl::Duration cpu =
      absl::Seconds(burn.cpu_time().seconds()) + absl::Nanoseconds(burn.cpu_time().nanos());
  EXPECT_GT(wall, absl::ZeroDuration());
  EXPECT_GT(cpu, absl::ZeroDuration());
  EXPECT_NEAR(burn.cpu_cores(), absl::FDivDuration(cpu, wall), 1e-6);
  EXPECT_GT(burn.peak_memory_bytes(), 0);
  const absl::Time ended =
      absl::FromUnixSeconds(burn.end_time().seconds()) + absl::Nanoseconds(burn.end_time().nanos());
  EXPECT_GE(ended, started - absl::Seconds(1));
  EXPECT_LE(ended, absl::Now());
  // How each ended.
  EXPECT_TRUE(burn.succeeded());
  EXPECT_EQ(burn.outcome(), "succeeded");
  EXPECT_FALSE(bad.succeeded());
  EXPECT_EQ(bad.outcome(), "failed");
  EXPECT_EQ(bad.program(), "sh");
  EXPECT_EQ(bad.requested().cpu(), 0) << "declares nothing";
}

class SlowPredictorTest : public RecordedObservationsTest {
 protected:
  void SetUp() override {
    buffer_ = 2;  // so that a stalled batch overflows it
    predictor_.set_slow(true);
    RecordedObservationsTest::SetUp();
  }
};

TEST_F(SlowPredictorTest, ASlowPredictorCostsTheEngineNothingAndItsBatchIsRetried) {
  // Every call to the predictor stalls until the caller's deadline (5 s
  // for RecordObservations, 2 s for PredictResources). Two executions of
  // six 300 ms sleeps on four slots: a link that waited on the predictor
  // would take 5 s a result, a minute in all.
  const absl::Time begin = absl::Now();
  const std::string first = Start(kWorkflow);
  ASSERT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED);
  const std::string second = Start(kWorkflow);
  ASSERT_EQ(Wait(second), v1::EXECUTION_SUCCEEDED);
  EXPECT_LT(absl::Now() - begin, absl::Seconds(15)) << "generous: ~1.5 s on an idle machine";

  // The batch in flight timed out and was sent again, the same; what came
  // behind it overflowed the buffer of two and was dropped, counted.
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_send_failures_total", 2), 2);
  EXPECT_GE(Metric("gyre_orchestrator_predictor_observations_dropped_total"), 1);
  EXPECT_EQ(Metric("gyre_orchestrator_predictor_observations_sent_total"), 0);
  const std::vector<v1::RecordObservationsRequest> tries = predictor_.requests();
  ASSERT_GE(tries.size(), 2u);
  EXPECT_GT(tries[0].observations_size(), 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(tries[0], tries[1]))
      << "a retry sends the same batch";

  // Once the predictor answers again, the batch held through the stall
  // arrives.
  predictor_.set_slow(false);
  EXPECT_GE(AwaitMetric("gyre_orchestrator_predictor_observations_sent_total",
                        tries[0].observations_size()),
            tries[0].observations_size());
  EXPECT_GE(predictor_.acknowledged(), tries[0].observations_size());
}

}  // namespace
}  // namespace gyre::e2e
