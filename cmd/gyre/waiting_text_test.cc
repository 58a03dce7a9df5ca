#include "cmd/gyre/waiting_text.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

TEST(WaitingTextTest, SlotsBusyShowsPositionEstimateAndTheAgentThatFreesFirst) {
  v1::WaitingExplanation why;
  why.set_kind(v1::WaitingExplanation::SLOTS_BUSY);
  why.set_message("all 1 slot(s) of the agent(s) that could run it (gpu-1) are busy");
  why.set_queue_position(1);
  why.set_matching_agents(1);
  why.set_matching_slots(1);
  why.mutable_best_candidate()->set_agent("agents/gpu-1");
  (*why.mutable_best_candidate()->mutable_labels())["gpu"] = "a100";
  why.mutable_best_candidate()->set_gpus(1);
  why.mutable_best_candidate()->set_slots(1);
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  why.mutable_estimated_start()->set_seconds(1'800'000'090);

  const std::vector<std::string> lines = WaitingLines(why, now);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            "slots busy: all 1 slot(s) of the agent(s) that could run it (gpu-1) are busy");
  EXPECT_EQ(lines[1],
            "first agent to free: agents/gpu-1: labels {gpu=a100}, cpu any, memory any, gpus 1, "
            "0 of 1 slot(s) free");
  EXPECT_EQ(lines[2],
            "queue position: 1 (of the ready tasks that 1 matching agent(s), 1 slot(s), could "
            "run)");
  EXPECT_EQ(lines[3], "estimated start: 2027-01-15 08:01:30 UTC (in 1m30s)");
}

TEST(WaitingTextTest, DependenciesAndFailingRequirementAreListed) {
  v1::WaitingExplanation deps;
  deps.set_kind(v1::WaitingExplanation::WAITING_ON_DEPENDENCIES);
  deps.set_message("waiting on 1 dependency: a (RUNNING)");
  v1::DependencyState& a = *deps.add_waiting_on();
  a.set_task_id("a");
  a.set_state(v1::TASK_RUNNING);
  EXPECT_EQ(WaitingLines(deps, absl::Now())[1], "waiting on: a (running)");

  v1::WaitingExplanation label;
  label.set_kind(v1::WaitingExplanation::NO_MATCHING_AGENT);
  label.set_failing_requirement("label zone=mars");
  EXPECT_EQ(WaitingLines(label, absl::Now())[0], "no matching agent: ");
  EXPECT_EQ(WaitingLines(label, absl::Now())[1], "failing requirement: label zone=mars");
}

}  // namespace
}  // namespace gyre::cli
