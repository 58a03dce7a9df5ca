#include "services/agent/gpu_assignment.h"

#include "gtest/gtest.h"

namespace gyre::agent {
namespace {

TEST(GpuAssignmentTest, EachDeviceGoesToOneTaskAtATime) {
  GpuAssignment gpus({"0", "1"});
  absl::StatusOr<std::vector<std::string>> a = gpus.Acquire("a", 1);
  absl::StatusOr<std::vector<std::string>> b = gpus.Acquire("b", 1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  absl::StatusOr<std::vector<std::string>> c = gpus.Acquire("c", 1);
  EXPECT_EQ(c.status().message(), "the task needs 1 GPUs; 0 of the agent's 2 are free");
  gpus.Release("a");
  c = gpus.Acquire("c", 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, *a) << "the released device";
  EXPECT_TRUE(gpus.Acquire("d", 0).ok()) << "no GPU asked, none needed";
}

TEST(GpuAssignmentTest, ATaskSeesItsDevicesOrNone) {
  std::map<std::string, std::string> env;
  GpuAssignment::SetEnvironment({"1", "3"}, &env);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "1,3");
  EXPECT_EQ(env["NVIDIA_VISIBLE_DEVICES"], "1,3");
  GpuAssignment::SetEnvironment({}, &env);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "");
  EXPECT_EQ(env["NVIDIA_VISIBLE_DEVICES"], "void");
}

}  // namespace
}  // namespace gyre::agent
