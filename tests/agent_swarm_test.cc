// Many agents on one orchestrator (issue 27, the small version of
// bench/agent_swarm): 500 lightweight agents, each its own Connect stream,
// heartbeating every 200 ms against a 1.5 s lease timeout while executions
// run on them. Every task completes and no live agent is timed out.
#include "libs/testing/agent_swarm.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

using ::gyre::testing::AgentSwarm;

class AgentSwarmTest : public Cluster {};

TEST_F(AgentSwarmTest, FiveHundredAgentsRunEveryTaskAndNoneIsDeclaredDead) {
  constexpr int64_t kAgents = 500;
  constexpr int64_t kExecutions = 100;
  constexpr int64_t kTasks = 10;
  AgentSwarm swarm({.address = address_, .agents = static_cast<int>(kAgents), .channels = 8});
  ASSERT_EQ(swarm.Connect(absl::Seconds(120)), kAgents)
      << ::testing::PrintToString(swarm.Problems());

  std::string yaml = "name: swarm\ntasks:\n";
  for (int i = 0; i < kTasks; ++i) absl::StrAppend(&yaml, "  - {id: t", i, ", builtin: noop}\n");
  std::vector<std::string> executions;
  executions.reserve(kExecutions);
  for (int i = 0; i < kExecutions; ++i) executions.push_back(Start(yaml));
  for (const std::string& execution : executions) {
    EXPECT_EQ(Wait(execution, absl::Seconds(120)), v1::EXECUTION_SUCCEEDED) << execution;
  }
  // Each task ran once, on one of the agents.
  EXPECT_EQ(swarm.results_sent(), kExecutions * kTasks);

  // Several lease timeouts of heartbeats alone: still every agent is there.
  const int64_t heartbeats = swarm.heartbeats_sent();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (swarm.heartbeats_sent() < heartbeats + 4 * kAgents && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(swarm.heartbeats_sent(), heartbeats + 4 * kAgents) << "the swarm stopped heartbeating";
  grpc::ClientContext call;
  v1::ListAgentsResponse agents;
  ASSERT_TRUE(stub_->ListAgents(&call, v1::ListAgentsRequest(), &agents).ok());
  int connected = 0;
  for (const v1::AgentInfo& agent : agents.agents()) {
    connected += agent.state() == v1::AgentInfo::CONNECTED;
  }
  EXPECT_EQ(connected, kAgents);
  // No stream ended, no Shutdown ("declared dead") or Cancel came.
  EXPECT_TRUE(swarm.Problems().empty()) << ::testing::PrintToString(swarm.Problems());
  // TearDown: the orchestrator never logged "agent declared dead".
}

}  // namespace
}  // namespace gyre::e2e
