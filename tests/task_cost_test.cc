// What work costs, through the real processes: an orchestrator configured
// with worker prices and a cost label charges every attempt in
// gyre_task_cost_total, reports the prices in ListQueues, and gyre plan
// prices a workflow with them.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_split.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

class TaskCost : public Cluster {
 protected:
  std::vector<std::string> ExtraOrchestratorEnv() override {
    return {"GYRE_WORKER_PRICES={default: {core_hour: 0.5, gib_hour: 0.25, gpu_hour: 3}}",
            "GYRE_COST_LABELS=[department]"};
  }

  // The value of the gyre_task_cost_total series whose line holds every
  // one of `labels` ("key=\"value\""), or -1.
  double CostSample(const std::vector<std::string>& labels) {
    auto response = testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
    if (!response.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(response->body, '\n')) {
      if (!absl::StartsWith(line, "gyre_task_cost_total{")) continue;
      bool all = true;
      for (const std::string& label : labels) all = all && absl::StrContains(line, label);
      double value = -1;
      if (all && absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
    }
    return -1;
  }
};

constexpr char kWorkflow[] = R"(name: priced
tasks:
  - id: train
    command: [sleep, "0.3"]
    labels: {department: ai-research}
    resources: {cpu: 2, memory: 1Gi}
)";

TEST_F(TaskCost, EveryAttemptIsChargedByWorkerTypeAndConfiguredLabel) {
  StartAgent("a1");
  const std::string execution = Start(kWorkflow);
  ASSERT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun run = Task(execution, "train");
  ASSERT_EQ(run.attempts_size(), 1);
  const double hours =
      (run.attempts(0).wall_time().seconds() + run.attempts(0).wall_time().nanos() / 1e9) / 3600;
  ASSERT_GT(hours, 0);
  // Declared 2 cores and 1 GiB: hours x (2 x 0.5 + 1 x 0.25).
  const double cost = CostSample({"worker_type=\"default\"", "department=\"ai-research\""});
  EXPECT_NEAR(cost, hours * 1.25, 1e-9) << orchestrator_->Output();

  // The prices are in the API ...
  grpc::ClientContext call;
  v1::ListQueuesResponse queues;
  ASSERT_TRUE(stub_->ListQueues(&call, v1::ListQueuesRequest(), &queues).ok());
  ASSERT_EQ(queues.worker_prices().count("default"), 1u);
  EXPECT_EQ(queues.worker_prices().at("default").core_hour(), 0.5);
  EXPECT_EQ(queues.worker_prices().at("default").gpu_hour(), 3);

  // ... and gyre plan prices a workflow with them: with no predictor, the
  // declared resources and a declared hour-long sleep: 1 h x (4 x 0.5 + 2 x
  // 0.25 + 1 x 3) = 5.5.
  const std::string file = root_ + "/hour.yaml";
  std::ofstream(file) << R"(name: hour
tasks:
  - id: hour
    builtin: sleep
    duration: 1h
    resources: {cpu: 4, memory: 2Gi, gpu: 1}
)";
  auto plan = ChildProcess::Start({Binary("cmd/gyre/gyre"), "plan", file, "--json",
                                   "--orchestrator=" + address_, "--predictor=127.0.0.1:1"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::optional<int> status = (*plan)->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << (*plan)->Output();
  const std::string output = (*plan)->Output();
  const size_t start = output.find('{');
  ASSERT_NE(start, std::string::npos) << output;
  google::protobuf::Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  output.substr(start, output.find('\n', start) - start), &json)
                  .ok())
      << output;
  EXPECT_NEAR(json.fields().at("total_cost").number_value(), 5.5, 1e-9) << output;
}

}  // namespace
}  // namespace gyre::e2e
