// What the engine exports for the autoscaler and dashboards, read back from
// its prometheus registry.
#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using testing::RecordingChannel;

// The value of `name`{worker_type=`worker_type`} (or of the unlabelled
// series when `worker_type` is empty; a histogram's sample count), or -1
// when there is no such series.
double Value(prometheus::Registry& registry, const std::string& name,
             const std::string& worker_type = "") {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      const bool match = worker_type.empty()
                             ? metric.label.empty()
                             : metric.label.size() == 1 && metric.label[0].value == worker_type;
      if (!match) continue;
      if (family.type == prometheus::MetricType::Histogram) {
        return static_cast<double>(metric.histogram.sample_count);
      }
      return metric.gauge.value;
    }
  }
  return -1;
}

class WorkflowEngineMetricsTest : public ::testing::Test {
 protected:
  WorkflowEngineMetricsTest() : registry_(std::make_shared<prometheus::Registry>()) {
    WorkflowEngine::Options options;
    options.metrics = registry_.get();
    WorkerPoolPolicy gpu;
    gpu.min_workers = 1;
    gpu.max_workers = 4;
    options.worker_pools["gpu"] = gpu;
    engine_ = std::make_unique<WorkflowEngine>(options);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<WorkflowEngine> engine_;
};

TEST_F(WorkflowEngineMetricsTest, AConfiguredPoolIsExportedFromTheStart) {
  // No task and no agent yet: the pool's min already reaches the autoscaler.
  EXPECT_EQ(Value(*registry_, "orchestrator_desired_workers", "gpu"), 1);
  EXPECT_EQ(Value(*registry_, "gyre_queue_depth", "gpu"), 0);
  EXPECT_EQ(Value(*registry_, "gyre_queue_agents", "gpu"), 0);
}

TEST_F(WorkflowEngineMetricsTest, ConnectedAgentsAreCountedPerWorkerType) {
  auto channel = std::make_shared<RecordingChannel>();
  v1::Register registration = testing::Registration("g1", 2);
  registration.clear_queues();
  registration.add_queues("gpu");
  ASSERT_TRUE(engine_->RegisterAgent(registration, channel).ok());
  EXPECT_EQ(Value(*registry_, "gyre_queue_agents", "gpu"), 1);
  engine_->DisconnectAgent("g1", channel.get());
  EXPECT_EQ(Value(*registry_, "gyre_queue_agents", "gpu"), 0);
}

TEST_F(WorkflowEngineMetricsTest, AnEndedExecutionsDurationIsObservedOnce) {
  EXPECT_EQ(Value(*registry_, "gyre_execution_duration_seconds"), 0);
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->RegisterAgent(testing::Registration("a1", 2), channel).ok());
  ASSERT_TRUE(
      engine_->StartExecution(testing::StartRequest(testing::Workflow({testing::Task("t")}))).ok());
  auto tasks = channel->Take(1);
  ASSERT_EQ(tasks.size(), 1u);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", testing::ResultMessage(tasks[0].ref(), 1)).ok());
  EXPECT_EQ(Value(*registry_, "gyre_execution_duration_seconds"), 1);
}

// Several orchestrators (postgres_sharding): the engine publishes its own
// backlog to the ClusterBacklog the lease rounds exchange, and its desired
// workers and ListQueues add the other members' (its depth gauge stays its
// own, since dashboards sum it over replicas).
TEST(WorkflowEngineClusterBacklogTest, DesiredWorkersAndListedQueuesAddTheOtherMembersBacklog) {
  auto registry = std::make_shared<prometheus::Registry>();
  ClusterBacklog backlog;
  backlog.SetOthers({{"gpu", {5, 1}}, {"arm", {2, 0}}});
  WorkflowEngine::Options options;
  options.metrics = registry.get();
  options.cluster_backlog = &backlog;
  options.worker_pools["gpu"] = WorkerPoolPolicy{0, 100, 1};
  options.default_worker_pool = WorkerPoolPolicy{0, 100, 1};
  WorkflowEngine engine(options);
  v1::TaskSpec task = testing::Task("t");
  task.set_queue("gpu");
  // No agent serves "gpu": the task stays queued here.
  ASSERT_TRUE(engine.StartExecution(testing::StartRequest(testing::Workflow({task}))).ok());
  engine.RefreshQueueGauges();

  EXPECT_EQ(Value(*registry, "orchestrator_desired_workers", "gpu"), 7) << "1 + 5 + 1 running";
  EXPECT_EQ(Value(*registry, "gyre_queue_depth", "gpu"), 1) << "this engine's own";
  EXPECT_EQ(Value(*registry, "orchestrator_desired_workers", "arm"), 2)
      << "a queue only the others have a backlog in";
  EXPECT_EQ(backlog.Own(), (std::map<std::string, QueueBacklog>{{"gpu", {1, 0}}}))
      << "what the next heartbeat publishes";
  std::map<std::string, v1::QueueInfo> listed;
  for (const v1::QueueInfo& info : engine.ListQueues()) listed[info.name()] = info;
  ASSERT_TRUE(listed.contains("queues/gpu"));
  EXPECT_EQ(listed["queues/gpu"].depth(), 6);
  EXPECT_EQ(listed["queues/gpu"].running(), 1);
  EXPECT_EQ(listed["queues/gpu"].desired_workers(), 7);
  ASSERT_TRUE(listed.contains("queues/arm"));
  EXPECT_EQ(listed["queues/arm"].depth(), 2);
  EXPECT_EQ(listed["queues/arm"].agents(), 0);
  EXPECT_EQ(listed["queues/arm"].desired_workers(), 2);

  // The next round found the others' backlog gone.
  backlog.SetOthers({});
  engine.RefreshQueueGauges();
  EXPECT_EQ(Value(*registry, "orchestrator_desired_workers", "gpu"), 1);
  EXPECT_EQ(Value(*registry, "orchestrator_desired_workers", "arm"), -1) << "series removed";
  for (const v1::QueueInfo& info : engine.ListQueues()) {
    EXPECT_NE(info.name(), "queues/arm") << "listed with no backlog anywhere";
  }
}

TEST_F(WorkflowEngineMetricsTest, AProcessThatEndedBeforeReportingItsStartIsCountedOnce) {
  const std::string metric = "gyre_task_submit_to_start_seconds";
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_->RegisterAgent(testing::Registration("a1", 2), channel).ok());
  ASSERT_TRUE(engine_
                  ->StartExecution(testing::StartRequest(
                      testing::Workflow({testing::Task("quick"), testing::Task("slow")})))
                  .ok());
  auto tasks = channel->Take(2);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(Value(*registry_, metric), 0);
  // The agent's start_report_delay had not passed when "quick" ended: its
  // result is the only message, and its start is counted from it.
  v1::AgentMessage quick = testing::ResultMessage(tasks[0].ref(), 1);
  quick.mutable_task_result()->mutable_wall_time()->set_nanos(5'000'000);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", quick).ok());
  EXPECT_EQ(Value(*registry_, metric), 1) << "a process started, reported or not";
  // "slow" reported its start, then its result: counted at the start only.
  v1::AgentMessage started;
  *started.mutable_task_started()->mutable_ref() = tasks[1].ref();
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", started).ok());
  EXPECT_EQ(Value(*registry_, metric), 2);
  v1::AgentMessage slow = testing::ResultMessage(tasks[1].ref(), 2);
  slow.mutable_task_result()->mutable_wall_time()->set_seconds(3);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", slow).ok());
  EXPECT_EQ(Value(*registry_, metric), 2) << "counted once";
}

}  // namespace
}  // namespace gyre::orchestrator
