#include "services/scheduler/schedule_simulator.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "services/scheduler/upward_rank.h"

namespace gyre::scheduler {
namespace {

// Roots a(1), b(1), c(2) in this order; c -> d(3).
SimulatedWorkflow Tiny() {
  SimulatedWorkflow w;
  w.name = "tiny";
  w.types = {"a", "b", "c", "d"};
  w.durations = {1, 1, 2, 3};
  w.children = {{}, {}, {3}, {}};
  w.parent_counts = {0, 0, 0, 1};
  w.topological_order = {0, 1, 2, 3};
  w.total_work_seconds = 7;
  return w;
}

TEST(ScheduleSimulatorTest, FifoMatchesTheScheduleComputedByHand) {
  // Two slots. t=0: a, b (first ready). t=1: c. t=3: d, ends at 6.
  SimulationOptions options;
  options.slots = 2;
  auto r = Simulate({Tiny()}, SimulationPolicy::kFifo, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->start_seconds[0], (std::vector<double>{0, 0, 1, 3}));
  EXPECT_EQ(r->makespan_seconds, 6);
  EXPECT_EQ(r->mean_flow_seconds, 6);
  EXPECT_DOUBLE_EQ(r->mean_utilisation, 7.0 / 12);
}

TEST(ScheduleSimulatorTest, HeftMatchesTheScheduleComputedByHand) {
  // Ranks a=1, b=1, c=5, d=3. t=0: c, a. t=1: b. t=2: d, ends at 5.
  SimulationOptions options;
  options.slots = 2;
  auto r = Simulate({Tiny()}, SimulationPolicy::kHeft, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->start_seconds[0], (std::vector<double>{0, 1, 0, 2}));
  EXPECT_EQ(r->makespan_seconds, 5);
}

TEST(ScheduleSimulatorTest, SrptRunsTheSmallerExecutionFirst) {
  // One slot, both arrive at 0: a 7-second execution, then a 1-second one.
  // By hand, SRPT: the 1 s one first (flow 1), then the other (flow 8).
  SimulatedWorkflow single;
  single.types = {"x"};
  single.durations = {1};
  single.children = {{}};
  single.parent_counts = {0};
  single.topological_order = {0};
  single.total_work_seconds = 1;
  SimulationOptions options;
  options.slots = 1;
  auto srpt = Simulate({Tiny(), single}, SimulationPolicy::kSrpt, options);
  ASSERT_TRUE(srpt.ok()) << srpt.status();
  EXPECT_EQ(srpt->flow_seconds, (std::vector<double>{8, 1}));
  // FIFO: a, b, c, then x (ready at 0, after the first execution's roots),
  // then d: x starts at 4, d at 5, ends 8.
  auto fifo = Simulate({Tiny(), single}, SimulationPolicy::kFifo, options);
  ASSERT_TRUE(fifo.ok()) << fifo.status();
  EXPECT_EQ(fifo->flow_seconds, (std::vector<double>{8, 5}));
}

TEST(ScheduleSimulatorTest, ArrivalsAreSeededAndTheSameForEveryPolicy) {
  SimulationOptions options;
  options.slots = 2;
  options.mean_arrival_gap_seconds = 5;
  options.seed = 7;
  auto a = Simulate({Tiny(), Tiny(), Tiny()}, SimulationPolicy::kFifo, options);
  auto b = Simulate({Tiny(), Tiny(), Tiny()}, SimulationPolicy::kGyre, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->arrival_seconds, b->arrival_seconds);
  EXPECT_EQ(a->arrival_seconds[0], 0);
  EXPECT_GT(a->arrival_seconds[2], a->arrival_seconds[1]);
}

SimulatedWorkflow OneTask(const std::string& type, double seconds) {
  SimulatedWorkflow w;
  w.types = {type};
  w.durations = {seconds};
  w.children = {{}};
  w.parent_counts = {0};
  w.topological_order = {0};
  w.total_work_seconds = seconds;
  return w;
}

// Answers the true durations and records what it was told, in order.
class RecordingPredictor final : public SimulationPredictor {
 public:
  explicit RecordingPredictor(const std::vector<SimulatedWorkflow>* workflows)
      : workflows_(workflows) {}
  double PredictSeconds(int workflow, int task) override {
    ++predictions;
    return (*workflows_)[workflow].durations[task];
  }
  void Observe(int workflow, int task, double seconds) override {
    observed.push_back({workflow, task});
    EXPECT_EQ(seconds, (*workflows_)[workflow].durations[task]);
  }
  int predictions = 0;
  std::vector<std::pair<int, int>> observed;

 private:
  const std::vector<SimulatedWorkflow>* workflows_;
};

TEST(ScheduleSimulatorTest, GyreUsesThePredictorsDurationsAndReportsEachFinishedTask) {
  // One slot; a 10 s execution and a 1 s one arrive together. Unseen types
  // both estimate 60 s, so the first in order goes first (flows 10, 11);
  // with the predictions the 1 s one has less remaining work (flows 11, 1).
  const std::vector<SimulatedWorkflow> workflows = {OneTask("long", 10), OneTask("short", 1)};
  SimulationOptions options;
  options.slots = 1;
  // No critical-path jump (on one slot the long task would be critical):
  // this is about the fair-share order's durations.
  options.ranking.critical_path_fraction = 10;
  auto alone = Simulate(workflows, SimulationPolicy::kGyre, options);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(alone->flow_seconds, (std::vector<double>{10, 11}));

  RecordingPredictor predictor(&workflows);
  options.predictor = &predictor;
  auto predicted = Simulate(workflows, SimulationPolicy::kGyre, options);
  ASSERT_TRUE(predicted.ok()) << predicted.status();
  EXPECT_EQ(predicted->flow_seconds, (std::vector<double>{11, 1}));
  EXPECT_GE(predictor.predictions, 2);
  EXPECT_EQ(predictor.observed, (std::vector<std::pair<int, int>>{{1, 0}, {0, 0}}))
      << "each task reported once, when it finished";

  // The reference policies never ask it.
  RecordingPredictor unused(&workflows);
  options.predictor = &unused;
  ASSERT_TRUE(Simulate(workflows, SimulationPolicy::kFifo, options).ok());
  EXPECT_EQ(unused.predictions, 0);
  EXPECT_TRUE(unused.observed.empty());
}

TEST(ScheduleSimulatorTest, RejectsNoSlots) {
  SimulationOptions options;
  options.slots = 0;
  EXPECT_FALSE(Simulate({Tiny()}, SimulationPolicy::kFifo, options).ok());
  EXPECT_FALSE(ParseSimulationPolicy("lifo").ok());
}

// A real trace: every policy keeps dependencies and work conservation, and
// gyre (learning durations online) is no worse than FIFO by more than 2%.
TEST(ScheduleSimulatorTest, ShippedMontageTraceRunsUnderEveryPolicy) {
  const char* dir = std::getenv("GYRE_WFCOMMONS_DIR");
  ASSERT_NE(dir, nullptr) << "GYRE_WFCOMMONS_DIR names tests/data/wfcommons";
  auto trace = wfcommons::ReadTraceFile(std::string(dir) +
                                        "/pegasus/montage/montage-chameleon-2mass-01d-001.json");
  ASSERT_TRUE(trace.ok()) << trace.status();
  const SimulatedWorkflow w = SimulatedWorkflowFromTrace(*trace);
  auto ranks = UpwardRanks(w.children, w.durations);
  ASSERT_TRUE(ranks.ok());
  const double critical_path = *std::max_element(ranks->begin(), ranks->end());
  SimulationOptions options;
  options.slots = 9;
  double fifo_makespan = 0;
  for (SimulationPolicy policy : {SimulationPolicy::kFifo, SimulationPolicy::kHeft,
                                  SimulationPolicy::kSrpt, SimulationPolicy::kGyre}) {
    SCOPED_TRACE(std::string(SimulationPolicyName(policy)));
    auto r = Simulate({w}, policy, options);
    ASSERT_TRUE(r.ok()) << r.status();
    for (size_t t = 0; t < w.durations.size(); ++t) {
      for (int child : w.children[t]) {
        ASSERT_GE(r->start_seconds[0][child], r->start_seconds[0][t] + w.durations[t] - 1e-9);
      }
    }
    EXPECT_GE(r->makespan_seconds, critical_path - 1e-9);
    EXPECT_GE(r->makespan_seconds, w.total_work_seconds / options.slots - 1e-9);
    EXPECT_LE(r->mean_utilisation, 1.0 + 1e-9);
    if (policy == SimulationPolicy::kFifo) fifo_makespan = r->makespan_seconds;
    if (policy == SimulationPolicy::kGyre) {
      EXPECT_LE(r->makespan_seconds, 1.02 * fifo_makespan);
    }
  }
}

}  // namespace
}  // namespace gyre::scheduler
