#include "services/scheduler/batch_scheduler.h"

#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace gyre::scheduler {
namespace {

v1::ReadyTaskInfo* AddTask(v1::RankAndPlaceRequest* request, const std::string& name,
                           const std::string& execution, double rank_seconds, int gpus = 0) {
  v1::ReadyTaskInfo* t = request->add_tasks();
  t->set_task_run(name);
  t->set_queue("default");
  t->set_execution(execution);
  t->set_predicted_seconds(10);
  t->set_upward_rank_seconds(rank_seconds);
  t->mutable_resources()->set_cpu(1);
  t->mutable_resources()->set_gpus(gpus);
  return t;
}

v1::AgentInfo* AddAgent(v1::RankAndPlaceRequest* request, const std::string& name, int slots,
                        int free_slots, int gpus) {
  v1::AgentInfo* a = request->add_agents();
  a->set_name(name);
  a->add_queues("default");
  a->set_slots(slots);
  a->set_free_slots(free_slots);
  a->mutable_resources()->set_cpu(16);
  a->mutable_resources()->set_memory_bytes(int64_t{64} << 30);
  a->mutable_resources()->set_gpus(gpus);
  a->set_state(v1::AgentInfo::CONNECTED);
  return a;
}

TEST(BatchSchedulerTest, RanksPlacesAndSaysWhyTheRestWaits) {
  BatchScheduler scheduler;
  v1::RankAndPlaceRequest request;
  // A small execution (20 s left) and a large one (10,000 s left); the GPU
  // task of the large one must still get the GPU agent, and CPU work must
  // not take that agent from it.
  AddTask(&request, "executions/big/tasks/cpu", "executions/big", 10);
  AddTask(&request, "executions/small/tasks/a", "executions/small", 10);
  AddTask(&request, "executions/small/tasks/b", "executions/small", 10);
  AddTask(&request, "executions/big/tasks/gpu", "executions/big", 10, /*gpus=*/1);
  v1::ExecutionLoad* big = request.add_executions();
  big->set_execution("executions/big");
  big->set_remaining_work_seconds(10'000);
  AddAgent(&request, "agents/cpu", 1, 1, 0);
  AddAgent(&request, "agents/gpu", 1, 1, 1);
  AddAgent(&request, "agents/gone", 8, 8, 0)->set_state(v1::AgentInfo::DISCONNECTED);

  auto response = scheduler.RankAndPlace(request);
  ASSERT_TRUE(response.ok()) << response.status();
  // Ranked: small's a and b (rank 0, 1), then big's tasks. a goes to the CPU
  // agent; b may not take the GPU agent while the GPU task waits, although
  // it ranks higher; the GPU task takes it.
  ASSERT_EQ(response->placements_size(), 2) << response->DebugString();
  EXPECT_EQ(response->placements(0).task_run(), "executions/small/tasks/a");
  EXPECT_EQ(response->placements(0).agent(), "agents/cpu");
  EXPECT_EQ(response->placements(0).rank(), 0);
  EXPECT_EQ(response->placements(1).task_run(), "executions/big/tasks/gpu");
  EXPECT_EQ(response->placements(1).agent(), "agents/gpu");
  ASSERT_EQ(response->unplaced_size(), 2);
  EXPECT_EQ(response->unplaced(0).task_run(), "executions/small/tasks/b");
  EXPECT_EQ(response->unplaced(0).rank(), 1);
  EXPECT_NE(response->unplaced(0).reason().find("busy"), std::string::npos)
      << response->unplaced(0).reason();
  // b starts when a ends (10 s); big's CPU task when the next slot frees.
  EXPECT_EQ(response->unplaced(0).estimated_start_seconds(), 10);
  EXPECT_EQ(response->unplaced(1).task_run(), "executions/big/tasks/cpu");
  EXPECT_EQ(response->unplaced(1).estimated_start_seconds(), 10);
}

TEST(BatchSchedulerTest, LearnsDurationsFromTheFinishedRunsItIsSent) {
  BatchScheduler scheduler;
  v1::RankAndPlaceRequest request;
  // Two tasks of different types, no predictions: the type seen to take
  // 500 s has the longer upward rank and goes first.
  for (const char* type : {"short", "long"}) {
    v1::ReadyTaskInfo* t = AddTask(&request, type, type, 0);
    t->set_predicted_seconds(0);
    t->set_task_type(type);
  }
  for (int i = 0; i < 3; ++i) {
    v1::FinishedRun* run = request.add_finished();
    run->set_task_type(i == 0 ? "long" : "short");
    run->set_seconds(i == 0 ? 500 : 5);
  }
  v1::ExecutionLoad* load = request.add_executions();
  load->set_execution("long");
  load->set_remaining_work_seconds(5);  // same share as "short"
  load = request.add_executions();
  load->set_execution("short");
  load->set_remaining_work_seconds(5);
  auto response = scheduler.RankAndPlace(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->unplaced_size(), 2);  // no agents
  EXPECT_EQ(response->unplaced(0).task_run(), "long");
  EXPECT_EQ(response->unplaced(0).reason(), "no connected agent serves queue \"default\"");
  EXPECT_EQ(response->unplaced(0).estimated_start_seconds(), -1);
}

// Aging as the answer says it: a task that waited 10 min past the grace
// (1 point a minute) ranks at priority 60 and overtakes a newer 55.
TEST(BatchSchedulerTest, AgingRaisesTheEffectivePriorityTheAnswerCarries) {
  RankingConfig config;
  config.aging_grace_seconds = 3600;
  config.aging_seconds_per_point = 60;
  BatchScheduler scheduler(config);
  v1::RankAndPlaceRequest request;
  v1::ReadyTaskInfo* fresh = AddTask(&request, "e1/tasks/fresh", "e1", 10);
  fresh->set_priority(55);
  v1::ReadyTaskInfo* old = AddTask(&request, "e2/tasks/old", "e2", 10);
  old->set_priority(50);
  old->set_waiting_seconds(3600 + 600);
  // No agent: both wait, in rank order.
  auto response = scheduler.RankAndPlace(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->unplaced_size(), 2);
  EXPECT_EQ(response->unplaced(0).task_run(), "e2/tasks/old");
  EXPECT_EQ(response->unplaced(0).effective_priority(), 60);
  EXPECT_EQ(response->unplaced(1).effective_priority(), 55);
  old->set_waiting_seconds(3600 + 1e6);
  response = scheduler.RankAndPlace(request);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->unplaced(0).effective_priority(), 100) << "capped at the top level";
}

// With fair_share_label, a task carrying that label weighs its value's
// weight; a task without it keeps its execution's tenant weight.
TEST(BatchSchedulerTest, TheFairShareLabelsValueWeighsATaskInsteadOfItsTenant) {
  RankingConfig config;
  config.tenant_weights["acme"] = 20;
  v1::RankAndPlaceRequest request;
  (*AddTask(&request, "big/tasks/train", "big", 10)->mutable_labels())["team"] = "ml";
  AddTask(&request, "small/tasks/load", "small", 10);
  (*AddTask(&request, "mid/tasks/report", "mid", 10)->mutable_labels())["other"] = "x";
  for (const auto& [execution, tenant, seconds] :
       std::vector<std::tuple<std::string, std::string, double>>{
           {"big", "acme", 12'000}, {"small", "", 500}, {"mid", "acme", 1'000}}) {
    v1::ExecutionLoad* load = request.add_executions();
    load->set_execution(execution);
    load->set_tenant(tenant);
    load->set_remaining_work_seconds(seconds);
  }
  auto order = [&request](const RankingConfig& ranking) {
    BatchScheduler scheduler(ranking);
    auto response = scheduler.RankAndPlace(request);
    EXPECT_TRUE(response.ok()) << response.status();
    std::vector<std::string> names;
    if (response.ok()) {
      for (const v1::Unplaced& u : response->unplaced()) names.push_back(u.task_run());
    }
    return names;
  };
  // Tenants only (no agent: all wait, in rank order): mid 1,000 / 20 = 50,
  // small 500 / 1, big 12,000 / 20 = 600.
  EXPECT_EQ(order(config),
            (std::vector<std::string>{"mid/tasks/report", "small/tasks/load", "big/tasks/train"}));
  // By team: big's task is team ml, weight 100: 12,000 / 100 = 120. mid's
  // has no team label and keeps acme's 20; small's has none and keeps 1.
  config.fair_share_label = "team";
  config.label_weights["ml"] = 100;
  EXPECT_EQ(order(config),
            (std::vector<std::string>{"mid/tasks/report", "big/tasks/train", "small/tasks/load"}));
  // A team not listed weighs default_tenant_weight (1): 12,000 / 1, last.
  config.label_weights.clear();
  config.label_weights["etl"] = 100;
  EXPECT_EQ(order(config),
            (std::vector<std::string>{"mid/tasks/report", "small/tasks/load", "big/tasks/train"}));
}

TEST(BatchSchedulerTest, RejectsAnOversizedOrMalformedBatch) {
  BatchScheduler scheduler;
  v1::RankAndPlaceRequest request;
  AddTask(&request, "t", "e", 1)->set_priority(101);
  auto bad = scheduler.RankAndPlace(request);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("outside 0..100"), std::string::npos);
  request.Clear();
  for (int i = 0; i <= kMaxBatchTasks; ++i) request.add_tasks();
  auto big = scheduler.RankAndPlace(request);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("batch limit of 10000"), std::string::npos);
}

}  // namespace
}  // namespace gyre::scheduler
