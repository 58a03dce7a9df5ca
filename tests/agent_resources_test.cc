// A started gyre-agent offers what it detects on its machine (issue 26):
// here a fake one (--detection_root) with two NVIDIA devices, 4 GiB of
// memory and a cgroup quota of half a CPU; the orchestrator has exactly
// that registered, and the agent's start log says where each came from.
#include <filesystem>
#include <fstream>

#include "libs/testing/scratch_dir.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

class AgentResourcesTest : public Cluster {};

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST_F(AgentResourcesTest, AStartedAgentRegistersTheResourcesItDetects) {
  const testing::ScratchDir root("gyre_fake_machine");
  ASSERT_FALSE(root.path().empty());
  for (const char* device : {"nvidia0", "nvidia1", "nvidiactl"}) {
    WriteFile(root.path() + "/dev/" + device, "");
  }
  WriteFile(root.path() + "/proc/meminfo", "MemTotal:        4194304 kB\n");
  WriteFile(root.path() + "/proc/self/cgroup", "0::/agent\n");
  WriteFile(root.path() + "/sys/fs/cgroup/agent/cpu.max", "50000 100000\n");

  ChildProcess* agent = StartAgent("detecting", 2, {"--detection_root=" + root.path()});
  ASSERT_NE(agent, nullptr);
  EXPECT_TRUE(absl::StrContains(agent->Output(), "\"msg\":\"agent offers\"")) << agent->Output();
  EXPECT_TRUE(absl::StrContains(agent->Output(), "\"gpus_from\":\"/dev/nvidia*\""))
      << agent->Output();

  grpc::ClientContext call;
  v1::ListAgentsResponse agents;
  ASSERT_TRUE(stub_->ListAgents(&call, v1::ListAgentsRequest(), &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  const v1::Resources& offered = agents.agents(0).resources();
  EXPECT_EQ(offered.gpus(), 2);
  EXPECT_EQ(offered.memory_bytes(), int64_t{4194304} * 1024);
  EXPECT_DOUBLE_EQ(offered.cpu(), 0.5);

  // Configured values win over detection.
  ChildProcess* configured = StartAgent(
      "configured", 2, {"--detection_root=" + root.path(), "--gpus=1", "--memory_bytes=1000000"});
  ASSERT_NE(configured, nullptr);
  grpc::ClientContext again;
  agents.Clear();
  ASSERT_TRUE(stub_->ListAgents(&again, v1::ListAgentsRequest(), &agents).ok());
  bool found = false;
  for (const v1::AgentInfo& info : agents.agents()) {
    if (info.display_name() != "configured") continue;
    found = true;
    EXPECT_EQ(info.resources().gpus(), 1);
    EXPECT_EQ(info.resources().memory_bytes(), 1000000);
  }
  EXPECT_TRUE(found) << agents.DebugString();
}

}  // namespace
}  // namespace gyre::e2e
