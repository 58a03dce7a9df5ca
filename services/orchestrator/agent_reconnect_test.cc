// What an agent that comes back on a new stream may be given: what it offers,
// less what the leases it keeps hold.
#include <memory>

#include "gtest/gtest.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using testing::RecordingChannel;

v1::TaskSpec OneCpuTask(const std::string& id) {
  v1::TaskSpec task = testing::Task(id);
  task.mutable_resources()->set_cpu(1);
  return task;
}

v1::Register TwoCpuAgent(const std::vector<v1::AttemptRef>& running = {}) {
  v1::Register registration = testing::Registration("a", 4, running);
  registration.mutable_resources()->set_cpu(2);
  return registration;
}

TEST(AgentReconnectTest, ALeaseLostAtReconnectDoesNotGiveTheAgentMoreThanItOffers) {
  WorkflowEngine engine{WorkflowEngine::Options()};
  auto first = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(TwoCpuAgent(), first).ok());
  ASSERT_TRUE(engine
                  .StartExecution(testing::StartRequest(
                      testing::Workflow({OneCpuTask("t1"), OneCpuTask("t2"), OneCpuTask("t3")})))
                  .ok());
  // Two cpus: two of the three tasks run, the third waits.
  std::vector<v1::TaskAssignment> running = first->Take(2);
  ASSERT_EQ(running.size(), 2u);
  EXPECT_EQ(first->Take(1, absl::Milliseconds(100)).size(), 0u);

  // The stream breaks; the agent comes back still running only the first.
  engine.DisconnectAgent("a", first.get());
  auto second = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(TwoCpuAgent({running[0].ref()}), second).ok());

  // The lost attempt goes back to the queue; with one cpu kept, one cpu is
  // free: one task may be given, not two (three cpus' worth on a two-cpu
  // agent, as when the lost lease's cpu was given back twice).
  EXPECT_EQ(second->Take(2, absl::Milliseconds(500)).size(), 1u);
  EXPECT_EQ(engine.DispatchStallForTest(), "");
}

}  // namespace
}  // namespace gyre::orchestrator
