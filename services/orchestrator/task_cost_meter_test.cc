#include "services/orchestrator/task_cost_meter.h"

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The gyre_task_cost_total series whose labels are exactly `labels`, or -1.
double Cost(prometheus::Registry& registry, const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != "gyre_task_cost_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> found;
      for (const auto& label : metric.label) found[label.name] = label.value;
      if (found == labels) return metric.counter.value;
    }
  }
  return -1;
}

int SeriesCount(prometheus::Registry& registry) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name == "gyre_task_cost_total") return static_cast<int>(family.metric.size());
  }
  return 0;
}

TaskCostOptions Options() {
  TaskCostOptions options;
  options.prices["cpu"] = {0.04, 0.01, 0};
  options.prices["gpu"] = {0.10, 0.01, 2.0};
  options.label_keys = {"department"};
  return options;
}

AttemptRecord Attempt(double wall_seconds, double cpu_seconds, double rss_bytes) {
  AttemptRecord attempt;
  attempt.wall_time = static_cast<int64_t>(wall_seconds * 1e9);
  attempt.cpu_time = static_cast<int64_t>(cpu_seconds * 1e9);
  attempt.peak_rss_bytes = static_cast<int64_t>(rss_bytes);
  return attempt;
}

TEST(TaskCostMeterTest, ChargesDeclaredResourcesElseUsedOnesPerWorkerTypeAndLabel) {
  prometheus::Registry registry;
  TaskCostMeter meter(&registry, Options());
  google::protobuf::Map<std::string, std::string> ai;
  ai["department"] = "ai-research";
  ai["owner"] = "not-a-cost-label";
  v1::Resources declared;
  declared.set_cpu(4);
  declared.set_memory_bytes(static_cast<int64_t>(8 * kGiB));
  declared.set_gpus(1);
  // One hour on a GPU worker, declared 4 cores, 8 GiB, 1 GPU:
  // 4 x 0.10 + 8 x 0.01 + 1 x 2.0 = 2.48, whatever it used.
  EXPECT_NEAR(meter.Record("gpu", ai, declared, Attempt(3600, 60, kGiB)), 2.48, 1e-9);
  // Half an hour on a CPU worker, nothing declared: used 900 s of CPU over
  // 1800 s (0.5 core) and 2 GiB peak: 0.5 x (0.5 x 0.04 + 2 x 0.01) = 0.02.
  EXPECT_NEAR(meter.Record("cpu", ai, v1::Resources(), Attempt(1800, 900, 2 * kGiB)), 0.02, 1e-9);
  EXPECT_NEAR(meter.Record("cpu", ai, v1::Resources(), Attempt(1800, 900, 2 * kGiB)), 0.02, 1e-9);
  // A task without the label counts under "".
  meter.Record("cpu", {}, v1::Resources(), Attempt(3600, 3600, 0));
  // An unpriced worker type is not counted.
  EXPECT_EQ(meter.Record("arm", ai, declared, Attempt(3600, 60, kGiB)), 0);

  EXPECT_NEAR(Cost(registry, {{"worker_type", "gpu"}, {"department", "ai-research"}}), 2.48, 1e-9);
  EXPECT_NEAR(Cost(registry, {{"worker_type", "cpu"}, {"department", "ai-research"}}), 0.04, 1e-9);
  EXPECT_NEAR(Cost(registry, {{"worker_type", "cpu"}, {"department", ""}}), 0.04, 1e-9);
  EXPECT_EQ(Cost(registry, {{"worker_type", "arm"}, {"department", "ai-research"}}), -1);
  EXPECT_EQ(SeriesCount(registry), 3);
}

TEST(TaskCostMeterTest, LabelValuesAreCutAndTheirNumberCapped) {
  prometheus::Registry registry;
  TaskCostMeter meter(&registry, Options());
  for (size_t i = 0; i < TaskCostMeter::kMaxValuesPerLabel + 50; ++i) {
    google::protobuf::Map<std::string, std::string> labels;
    labels["department"] = absl::StrCat("team-", i);
    meter.Record("cpu", labels, v1::Resources(), Attempt(3600, 3600, 0));
  }
  // The first kMaxValuesPerLabel values each have a series; the rest are "other".
  EXPECT_EQ(SeriesCount(registry), static_cast<int>(TaskCostMeter::kMaxValuesPerLabel) + 1);
  EXPECT_NEAR(Cost(registry, {{"worker_type", "cpu"}, {"department", "other"}}), 50 * 0.04, 1e-9);
  google::protobuf::Map<std::string, std::string> longer;
  longer["department"] = std::string(500, 'x');
  prometheus::Registry other;
  TaskCostMeter cut(&other, Options());
  cut.Record("cpu", longer, v1::Resources(), Attempt(3600, 3600, 0));
  EXPECT_NEAR(Cost(other, {{"worker_type", "cpu"},
                           {"department", std::string(TaskCostMeter::kMaxLabelValueLength, 'x')}}),
              0.04, 1e-9);
}

TEST(TaskCostMeterTest, OptionsRefuseLabelKeysPrometheusCannotCarry) {
  TaskCostOptions options = Options();
  EXPECT_TRUE(options.Validate().ok());
  options.label_keys = {"worker_type"};
  EXPECT_FALSE(options.Validate().ok());
  options.label_keys = {"team-name"};
  EXPECT_NE(options.Validate().message().find("team-name"), absl::string_view::npos);
  options.label_keys = {"a", "a"};
  EXPECT_FALSE(options.Validate().ok());
  options.label_keys = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
  EXPECT_NE(options.Validate().message().find("limit of 8"), absl::string_view::npos);
  options.label_keys = {};
  options.prices["cpu"].core_hour = -1;
  EXPECT_FALSE(options.Validate().ok());
}

TEST(TaskCostMeterTest, TheEngineChargesEveryAttemptThatReportsAResult) {
  prometheus::Registry registry;
  WorkflowEngine::Options options;
  options.metrics = &registry;
  options.task_cost = Options();
  WorkflowEngine engine(options);
  auto channel = std::make_shared<testing::RecordingChannel>();
  v1::Register registration = testing::Registration("a1", 2);
  registration.clear_queues();
  registration.add_queues("cpu");
  ASSERT_TRUE(engine.RegisterAgent(registration, channel).ok());
  v1::TaskSpec task = testing::Task("t");
  task.set_queue("cpu");
  (*task.mutable_labels())["department"] = "finance";
  task.mutable_resources()->set_cpu(2);
  ASSERT_TRUE(engine.StartExecution(testing::StartRequest(testing::Workflow({task}))).ok());
  auto tasks = channel->Take(1);
  ASSERT_EQ(tasks.size(), 1u);
  v1::AgentMessage result = testing::ResultMessage(tasks[0].ref(), 1);
  result.mutable_task_result()->mutable_wall_time()->set_seconds(1800);
  ASSERT_TRUE(engine.HandleAgentMessage("a1", result).ok());
  // 0.5 h x 2 declared cores x 0.04 (no memory declared nor measured).
  EXPECT_NEAR(Cost(registry, {{"worker_type", "cpu"}, {"department", "finance"}}), 0.04, 1e-9);
}

}  // namespace
}  // namespace gyre::orchestrator
