// The load forecast's input, taken from the engine on a known DAG.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "services/orchestrator/load_snapshot.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

v1::TaskSpec Sleep(const std::string& id, int seconds, const std::vector<std::string>& deps = {}) {
  v1::TaskSpec task = testing::Task(id, deps);
  task.clear_command();
  task.mutable_builtin()->set_kind(v1::BuiltinExecutor::SLEEP);
  task.mutable_builtin()->mutable_duration()->set_seconds(seconds);
  return task;
}

TEST(LoadSnapshotTest, GivesEachUnstartedTaskItsEarliestStartFromTheDag) {
  FakeClock clock;
  WorkflowEngine::Options options;
  options.clock = &clock;
  options.lease_timeout = absl::Hours(1);  // the agent sends no heartbeats
  WorkflowEngine engine(options);
  auto channel = std::make_shared<testing::RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(testing::Registration("a1", 2), channel).ok());
  // a (30 s) -> b, c (20 s each) -> d (10 s) -> e (a command on "gpu":
  // nothing says how long, so the default 60 s).
  v1::TaskSpec e = testing::Task("e", {"d"});
  e.set_queue("gpu");
  ASSERT_TRUE(engine
                  .StartExecution(testing::StartRequest(
                      testing::Workflow({Sleep("a", 30), Sleep("b", 20, {"a"}),
                                         Sleep("c", 20, {"a"}), Sleep("d", 10, {"b", "c"}), e})))
                  .ok());
  ASSERT_EQ(channel->Take(1).size(), 1u);  // a is leased
  clock.Advance(absl::Seconds(10));

  LoadSnapshotOptions snapshot_options;
  snapshot_options.default_task_seconds = 60;
  const LoadSnapshot snapshot = engine.SnapshotLoad(snapshot_options);
  ASSERT_EQ(snapshot.count("default"), 1u);
  ASSERT_EQ(snapshot.count("gpu"), 1u);
  const WorkerTypeLoad& cpu = snapshot.at("default");
  // a has run 10 of its 30 s.
  ASSERT_EQ(cpu.running_remaining_seconds.size(), 1u);
  EXPECT_DOUBLE_EQ(cpu.running_remaining_seconds[0], 20);
  // b and c can start when a ends (20 s), d when they end (40 s).
  ASSERT_EQ(cpu.pending.size(), 3u);
  EXPECT_DOUBLE_EQ(cpu.pending[0].earliest_start_seconds(), 20);
  EXPECT_DOUBLE_EQ(cpu.pending[0].duration_seconds(), 20);
  EXPECT_DOUBLE_EQ(cpu.pending[1].earliest_start_seconds(), 20);
  EXPECT_DOUBLE_EQ(cpu.pending[2].earliest_start_seconds(), 40);
  EXPECT_DOUBLE_EQ(cpu.pending[2].duration_seconds(), 10);
  // One agent, 1 slot busy and 1 free: 2 slots per agent.
  EXPECT_EQ(cpu.slots_per_agent, 2);
  // The execution arrived within the 5 min window: 4 tasks averaging 20 s.
  EXPECT_DOUBLE_EQ(cpu.arrival_rate_per_second, 4.0 / 300);
  EXPECT_DOUBLE_EQ(cpu.arrival_task_seconds, 20);
  const WorkerTypeLoad& gpu = snapshot.at("gpu");
  ASSERT_EQ(gpu.pending.size(), 1u);
  EXPECT_DOUBLE_EQ(gpu.pending[0].earliest_start_seconds(), 50);
  EXPECT_DOUBLE_EQ(gpu.pending[0].duration_seconds(), 60);
  EXPECT_TRUE(gpu.running_remaining_seconds.empty());

  // Past its expectation a running task is given 10% of it more.
  clock.Advance(absl::Seconds(60));
  EXPECT_DOUBLE_EQ(engine.SnapshotLoad(snapshot_options).at("default").running_remaining_seconds[0],
                   3);
}

TEST(LoadSnapshotTest, UsesPredictedDurationsWhereTheEngineHoldsThem) {
  FakeClock clock;
  WorkflowEngine::Options options;
  options.clock = &clock;
  WorkflowEngine engine(options);
  // No agent: nothing starts. p -> q, r: commands declaring no resources,
  // on a queue with no agent; q gets a prediction, p and r do not.
  v1::TaskSpec p = testing::Task("p");
  v1::TaskSpec q = testing::Task("q", {"p"});
  v1::TaskSpec r = testing::Task("r", {"p"});
  for (v1::TaskSpec* task : {&p, &q, &r}) {
    task->clear_resources();
    task->set_queue("batch");
  }
  auto started = engine.StartExecution(testing::StartRequest(testing::Workflow({p, q, r})));
  ASSERT_TRUE(started.ok()) << started.status();
  TaskPrediction predicted;
  predicted.duration_seconds = 7.5;
  predicted.cpu = 1;
  predicted.memory_bytes = 1 << 20;
  std::vector<std::pair<std::string, TaskPrediction>> predictions;
  predictions.emplace_back("q", predicted);
  engine.ApplyPredictions(started->name(), std::move(predictions));

  LoadSnapshotOptions snapshot_options;
  snapshot_options.default_task_seconds = 60;
  const LoadSnapshot snapshot = engine.SnapshotLoad(snapshot_options);
  ASSERT_EQ(snapshot.count("batch"), 1u);
  const WorkerTypeLoad& batch = snapshot.at("batch");
  ASSERT_EQ(batch.pending.size(), 3u);
  // p: nothing predicted, the default; q: its prediction; r: the default.
  EXPECT_DOUBLE_EQ(batch.pending[0].duration_seconds(), 60);
  EXPECT_DOUBLE_EQ(batch.pending[1].earliest_start_seconds(), 60);
  EXPECT_DOUBLE_EQ(batch.pending[1].duration_seconds(), 7.5);
  EXPECT_DOUBLE_EQ(batch.pending[2].duration_seconds(), 60);
  // Arrivals average what is expected of each: (60 + 7.5 + 60) / 3.
  EXPECT_DOUBLE_EQ(batch.arrival_task_seconds, 127.5 / 3);
}

}  // namespace
}  // namespace gyre::orchestrator
