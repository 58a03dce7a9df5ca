#include "services/scheduler/best_fit_placer.h"

#include "gtest/gtest.h"

namespace gyre::scheduler {
namespace {

constexpr int64_t kGiB = 1 << 30;

AgentCapacity Agent(std::string name, double cpu, int64_t memory, int gpus, int free_slots,
                    std::vector<std::string> queues = {"default"}) {
  AgentCapacity a;
  a.name = std::move(name);
  a.queues = std::move(queues);
  a.free_slots = free_slots;
  a.free = {cpu, memory, gpus};
  return a;
}

PlacementTask Task(double cpu, int64_t memory = 0, int gpus = 0, double seconds = 10) {
  PlacementTask t;
  t.queue = "default";
  t.needs = {cpu, memory, gpus};
  t.predicted_seconds = seconds;
  return t;
}

TEST(BestFitPlacerTest, PicksTheAgentLeftWithTheLeastFreeCpu) {
  std::vector<AgentCapacity> agents = {Agent("big", 8, 64 * kGiB, 0, 4),
                                       Agent("snug", 3, 64 * kGiB, 0, 4),
                                       Agent("small", 1.5, 64 * kGiB, 0, 4)};
  const PlacementPlan plan = BestFitPlacer().Place({Task(2)}, {0}, agents);
  EXPECT_EQ(plan.agent[0], 1);  // leaves 1 cpu, "big" would leave 6
  EXPECT_EQ(plan.estimated_start_seconds[0], 0);
}

TEST(BestFitPlacerTest, KeepsAGpuAgentForTheGpuTaskWhileCpuWorkFlowsElsewhere) {
  std::vector<AgentCapacity> agents = {Agent("gpu", 8, 64 * kGiB, 1, 1),
                                       Agent("cpu", 8, 64 * kGiB, 0, 1)};
  // Rank order: two CPU tasks, then a GPU task.
  const PlacementPlan plan =
      BestFitPlacer().Place({Task(1), Task(1), Task(1, 0, 1)}, {0, 1, 2}, agents);
  EXPECT_EQ(plan.agent[0], 1);   // the CPU agent's only slot
  EXPECT_EQ(plan.agent[1], -1);  // not onto the GPU agent although it ranks higher
  EXPECT_EQ(plan.agent[2], 0);
}

TEST(BestFitPlacerTest, TheGpuHoldLiftsOnceTheGpuTasksArePlaced) {
  std::vector<AgentCapacity> agents = {Agent("gpu", 8, 64 * kGiB, 1, 2)};
  // A CPU task, a GPU task that fits, and one that needs 2 GPUs (never here).
  const PlacementPlan plan = BestFitPlacer().Place({Task(1), Task(1, 0, 1)}, {0, 1}, agents);
  EXPECT_EQ(plan.agent[1], 0);
  EXPECT_EQ(plan.agent[0], 0) << "the second slot is free once the GPU task has its GPU";
  const PlacementPlan waiting = BestFitPlacer().Place({Task(1), Task(1, 0, 2)}, {0, 1}, agents);
  EXPECT_EQ(waiting.agent[0], -1);
  EXPECT_NE(waiting.Reason(0).find("kept for GPU tasks"), std::string::npos) << waiting.Reason(0);
  EXPECT_EQ(waiting.Reason(1), "needs 2 GPUs, most free on a matching agent: 1");
}

TEST(BestFitPlacerTest, SaysWhichRequirementNoAgentMeets) {
  std::vector<AgentCapacity> agents = {Agent("a", 4, 16 * kGiB, 0, 2)};
  agents[0].labels["zone"] = "eu";
  PlacementTask other_queue = Task(1);
  other_queue.queue = "gpu";
  PlacementTask wrong_zone = Task(1);
  wrong_zone.selector = {{"zone", "us"}};
  const PlacementPlan plan = BestFitPlacer().Place(
      {other_queue, wrong_zone, Task(1, 64 * kGiB), Task(1, 0, 2)}, {0, 1, 2, 3}, agents);
  EXPECT_EQ(plan.Reason(0), "no connected agent serves queue \"gpu\"");
  EXPECT_EQ(plan.Reason(1), "no agent serving queue \"default\" has labels zone=us");
  EXPECT_EQ(plan.Reason(2), "needs 64.0 GiB memory, largest free on a matching agent: 16.0 GiB");
  EXPECT_EQ(plan.Reason(3), "needs 2 GPUs, most free on a matching agent: 0");
  EXPECT_EQ(plan.estimated_start_seconds[0], -1);  // never, as things stand
}

TEST(BestFitPlacerTest, EstimatesStartsByListSchedulingOnTheSlotsAsTheyFree) {
  // One agent, two slots: one free, one busy for 5 more seconds.
  std::vector<AgentCapacity> agents = {Agent("a", 8, 64 * kGiB, 0, 1)};
  agents[0].busy_slots = 1;
  agents[0].busy_slot_free_in_seconds = {5};
  const PlacementPlan plan = BestFitPlacer().Place(
      {Task(1, 0, 0, 10), Task(1, 0, 0, 20), Task(1, 0, 0, 1)}, {0, 1, 2}, agents);
  // By hand: task 0 now on the free slot (until 10); task 1 on the busy
  // slot when it frees at 5 (until 25); task 2 at 10 when task 0 ends.
  EXPECT_EQ(plan.agent[0], 0);
  EXPECT_EQ(plan.agent[1], -1);
  EXPECT_NE(plan.Reason(1).find("busy"), std::string::npos) << plan.Reason(1);
  EXPECT_EQ(plan.estimated_start_seconds[1], 5);
  EXPECT_EQ(plan.estimated_start_seconds[2], 10);
}

}  // namespace
}  // namespace gyre::scheduler
