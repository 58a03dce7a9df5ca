#include "services/optimizer/workflow_analysis.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "libs/workflow/workflow_parser.h"

namespace gyre::optimizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

AnalysisInput Input(const std::string& yaml) {
  auto def = workflow::ParseWorkflowYaml(yaml, "test.yaml");
  EXPECT_TRUE(def.ok()) << def.status();
  AnalysisInput input;
  input.definition = *def;
  return input;
}

Analysis Analyze(const AnalysisInput& input) {
  auto analysis = AnalyzeWorkflow(input);
  EXPECT_TRUE(analysis.ok()) << analysis.status();
  return analysis.ok() ? *analysis : Analysis{};
}

const Finding* FindKind(const Analysis& a, FindingKind kind) {
  for (const auto& f : a.findings) {
    if (f.kind == kind) return &f;
  }
  return nullptr;
}

const Recommendation* FindRec(const Analysis& a, const std::string& id) {
  for (const auto& r : a.recommendations) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

// a(2) -> b(3), c(5) -> d(1): the longest path is a, c, d = 8 s of 11 s.
constexpr char kDiamond[] = R"(
name: diamond
tasks:
  - {id: a, builtin: sleep, duration: 2s}
  - {id: b, builtin: sleep, duration: 3s, depends_on: a}
  - {id: c, builtin: sleep, duration: 5s, depends_on: a}
  - {id: d, builtin: sleep, duration: 1s, depends_on: [b, c]}
)";

TEST(WorkflowAnalysisTest, CriticalPathAndShareOfTheWork) {
  Analysis a = Analyze(Input(kDiamond));
  EXPECT_THAT(a.critical_path, ElementsAre("a", "c", "d"));
  EXPECT_DOUBLE_EQ(a.critical_path_seconds, 8);
  EXPECT_DOUBLE_EQ(a.total_work_seconds, 11);
  EXPECT_DOUBLE_EQ(a.critical_path_share, 8.0 / 11);
  EXPECT_DOUBLE_EQ(a.makespan_seconds, 8);  // no pool limit: the critical path
  EXPECT_EQ(a.peak_width, 2);
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kSleep)], 4);
}

TEST(WorkflowAnalysisTest, FanInEveryPathCrosses) {
  Analysis a = Analyze(Input(kDiamond));
  const Finding* f = FindKind(a, FindingKind::kFanIn);
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->task_ids, ElementsAre("d"));
  // b ends at 5 s, c (the slowest) at 7 s.
  EXPECT_THAT(f->evidence, HasSubstr("all 2 of its dependencies"));
  EXPECT_THAT(f->evidence, HasSubstr("first done at 5.0 s, the last, c, at 7.0 s"));
}

TEST(WorkflowAnalysisTest, FanInThatAPathAvoidsIsNoFinding) {
  // b -> e avoids c, so c is not crossed by every path.
  Analysis a = Analyze(Input(R"(
name: side
tasks:
  - {id: a, builtin: sleep, duration: 1s}
  - {id: b, builtin: sleep, duration: 1s}
  - {id: c, builtin: sleep, duration: 1s, depends_on: [a, b]}
  - {id: e, builtin: sleep, duration: 1s, depends_on: b}
)"));
  EXPECT_EQ(FindKind(a, FindingKind::kFanIn), nullptr);
}

TEST(WorkflowAnalysisTest, SimulationFollowsPriorityThenReadyOrderUnderACap) {
  // One slot: b (priority 90) first, then a and c in definition order.
  SimGraph g;
  g.duration = {1, 2, 3};
  g.queue = {0, 0, 0};
  g.priority = {50, 90, 50};
  g.children = {{}, {}, {}};
  g.parent_count = {0, 0, 0};
  g.caps = {1};
  SimResult r = Simulate(g);
  EXPECT_DOUBLE_EQ(r.makespan_seconds, 6);
  EXPECT_THAT(r.start_seconds, ElementsAre(2, 0, 3));
  EXPECT_DOUBLE_EQ(r.wait_per_queue[0], 2 + 3);
  EXPECT_EQ(r.peak_width, 1);
  // Two slots, c depends on b: a 0-1, b 0-2, c 2-5.
  g.caps = {2};
  g.children = {{}, {2}, {}};
  g.parent_count = {0, 0, 1};
  r = Simulate(g);
  EXPECT_DOUBLE_EQ(r.makespan_seconds, 5);
  EXPECT_THAT(r.start_seconds, ElementsAre(0, 0, 2));
  ASSERT_EQ(r.steps.size(), 3u);  // width 2 at 0, 1 at 1, (c starts at 2: still 1)
  EXPECT_DOUBLE_EQ(r.steps[1].start_seconds, 1);
  EXPECT_DOUBLE_EQ(r.steps[1].width, 1);
  EXPECT_DOUBLE_EQ(r.steps[2].start_seconds, 5);
  EXPECT_DOUBLE_EQ(r.steps[2].width, 0);
}

TEST(WorkflowAnalysisTest, BucketizeKeepsTheArea) {
  std::vector<ProfileStep> steps = {{0, 4}, {1, 2}, {2, 0}, {3, 1}};
  auto b = Bucketize(steps, 4, 2);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_DOUBLE_EQ(b[0].width, 3);    // (4 + 2) / 2
  EXPECT_DOUBLE_EQ(b[1].width, 0.5);  // (0 + 1) / 2
}

TEST(WorkflowAnalysisTest, PoolMaxThatCapsTheWidthIsMeasured) {
  AnalysisInput input = Input(R"(
name: gpus
tasks:
  - {id: t1, builtin: sleep, duration: 10s, queue: gpu}
  - {id: t2, builtin: sleep, duration: 10s, queue: gpu}
  - {id: t3, builtin: sleep, duration: 10s, queue: gpu}
  - {id: t4, builtin: sleep, duration: 10s, queue: gpu}
)");
  input.pool_max["gpu"] = 2;
  Analysis a = Analyze(input);
  EXPECT_DOUBLE_EQ(a.makespan_seconds, 20);
  EXPECT_DOUBLE_EQ(a.unlimited_makespan_seconds, 10);
  const Finding* f = FindKind(a, FindingKind::kPoolCap);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->queue, "gpu");
  EXPECT_DOUBLE_EQ(f->seconds, 20);  // t3 and t4 waited 10 s each
  const Recommendation* r = FindRec(a, "pool-gpu-max-4");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->new_pool_max, 4);
  EXPECT_DOUBLE_EQ(r->makespan_after, 10);
  EXPECT_TRUE(r->configuration_only);
  EXPECT_THAT(r->description, HasSubstr("raise pool gpu max from 2 to 4: predicted makespan -50%"));
  EXPECT_DOUBLE_EQ(a.optimized_makespan_seconds, 10);
}

TEST(WorkflowAnalysisTest, PrioritizingTheCriticalPathIsMeasured) {
  // cpu has one slot; z and w come first in FIFO order, so x (which gates
  // the long y on gpu) starts at 10 s: 21 s. x first: y runs beside z, w: 11 s.
  AnalysisInput input = Input(R"(
name: prio
tasks:
  - {id: z, builtin: sleep, duration: 5s, queue: cpu}
  - {id: w, builtin: sleep, duration: 5s, queue: cpu}
  - {id: x, builtin: sleep, duration: 1s, queue: cpu}
  - {id: y, builtin: sleep, duration: 10s, queue: gpu, depends_on: x}
)");
  input.pool_max["cpu"] = 1;
  Analysis a = Analyze(input);
  EXPECT_THAT(a.critical_path, ElementsAre("x", "y"));
  EXPECT_DOUBLE_EQ(a.makespan_seconds, 21);
  const Recommendation* r = FindRec(a, "prioritize-critical-path");
  ASSERT_NE(r, nullptr);
  EXPECT_THAT(r->task_ids, ElementsAre("x", "y"));
  EXPECT_EQ(r->new_priority, 60);
  EXPECT_DOUBLE_EQ(r->makespan_after, 11);
  EXPECT_FALSE(r->changes_semantics);
}

TEST(WorkflowAnalysisTest, SerialChainThatRunsAloneIsMeasuredButNeverAutomatic) {
  Analysis a = Analyze(Input(R"(
name: chain
tasks:
  - {id: a, builtin: sleep, duration: 5s}
  - {id: b, builtin: sleep, duration: 5s, depends_on: a}
)"));
  const Finding* f = FindKind(a, FindingKind::kSerialChain);
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->task_ids, ElementsAre("a", "b"));
  const Recommendation* r = FindRec(a, "parallel-b-a");
  ASSERT_NE(r, nullptr);
  EXPECT_DOUBLE_EQ(r->makespan_after, 5);
  EXPECT_TRUE(r->changes_semantics);
  EXPECT_EQ(r->dependency, "a");
  // Changes that alter what the workflow computes are not in the optimized makespan.
  EXPECT_DOUBLE_EQ(a.optimized_makespan_seconds, 10);
}

TEST(WorkflowAnalysisTest, TimeoutsAgainstHistory) {
  AnalysisInput input = Input(R"(
name: timeouts
tasks:
  - {id: low, command: [true], timeout: 20s}
  - {id: high, command: [true], timeout: 1h}
  - {id: fine, command: [true], timeout: 1m}
)");
  input.history["low"].run_seconds = {10, 12, 30};
  input.history["high"].run_seconds = {1, 2, 3};
  input.history["fine"].run_seconds = {10, 20, 30};
  Analysis a = Analyze(input);
  const Recommendation* low = FindRec(a, "timeout-low");
  ASSERT_NE(low, nullptr);
  EXPECT_DOUBLE_EQ(low->new_timeout_seconds, 60);
  const Recommendation* high = FindRec(a, "timeout-high");
  ASSERT_NE(high, nullptr);
  EXPECT_DOUBLE_EQ(high->new_timeout_seconds, 10);
  EXPECT_DOUBLE_EQ(high->saved_seconds, 3590);
  EXPECT_EQ(FindRec(a, "timeout-fine"), nullptr);
  ASSERT_NE(FindKind(a, FindingKind::kTimeoutTooLow), nullptr);
  ASSERT_NE(FindKind(a, FindingKind::kTimeoutTooHigh), nullptr);
  // Durations without a recorded one: the unit default, said as such.
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kDefault)], 3);
}

TEST(WorkflowAnalysisTest, RetriesThatNeverSucceed) {
  AnalysisInput input = Input(R"(
name: retries
tasks:
  - {id: flaky, command: [false], retries: 3}
  - {id: recovers, command: [false], retries: 3}
)");
  input.history["flaky"].retried_runs = 2;
  input.history["flaky"].failed_attempt_seconds = 40;
  input.history["recovers"].retried_runs = 2;
  input.history["recovers"].retry_successes = 1;
  Analysis a = Analyze(input);
  const Recommendation* r = FindRec(a, "retries-flaky");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->new_max_retries, 0);
  EXPECT_DOUBLE_EQ(r->saved_seconds, 20);
  EXPECT_EQ(FindRec(a, "retries-recovers"), nullptr);
}

TEST(WorkflowAnalysisTest, MemoryAgainstPeakRss) {
  AnalysisInput input = Input(R"(
name: memory
tasks:
  - {id: greedy, command: [true], resources: {memory: 8Gi}}
  - {id: tight, command: [true], resources: {memory: 100Mi}}
  - {id: fine, command: [true], resources: {memory: 1Gi}}
)");
  input.history["greedy"].peak_rss_bytes = 1 << 30;  // 1 GiB of 8
  input.history["tight"].peak_rss_bytes = 200 << 20;
  input.history["fine"].peak_rss_bytes = 600 << 20;
  Analysis a = Analyze(input);
  const Recommendation* greedy = FindRec(a, "memory-greedy");
  ASSERT_NE(greedy, nullptr);
  EXPECT_EQ(greedy->new_memory_bytes, int64_t{1536} << 20);  // 1.5 x 1 GiB
  const Recommendation* tight = FindRec(a, "memory-tight");
  ASSERT_NE(tight, nullptr);
  EXPECT_EQ(tight->new_memory_bytes, int64_t{300} << 20);
  EXPECT_EQ(FindRec(a, "memory-fine"), nullptr);
  const Finding* f = FindKind(a, FindingKind::kMemoryMisfit);
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->evidence, HasSubstr("greedy declares 8192 MiB of memory; its runs peaked at "
                                     "1024 MiB"));
}

TEST(WorkflowAnalysisTest, DurationSourcesInOrder) {
  AnalysisInput input = Input(R"(
name: sources
tasks:
  - {id: a, builtin: sleep, duration: 9s}
  - {id: b, builtin: sleep, duration: 9s}
  - {id: c, builtin: sleep, duration: 9s}
  - {id: d, command: [true]}
  - {id: e, command: [true]}
)");
  input.actual_seconds["a"] = 1;
  input.recorded_seconds["a"] = 2;
  input.recorded_seconds["b"] = 3;
  input.predicted_seconds["b"] = 6;  // the caller's recorded one wins
  input.predicted_seconds["e"] = 7;
  input.default_seconds = 4;
  Analysis a = Analyze(input);
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kActual)], 1);
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kRecorded)], 1);
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kPredicted)], 1);
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kSleep)], 1);
  EXPECT_EQ(a.duration_sources[static_cast<int>(DurationSource::kDefault)], 1);
  EXPECT_DOUBLE_EQ(a.total_work_seconds, 1 + 3 + 9 + 4 + 7);
}

TEST(WorkflowAnalysisTest, RejectsBadInput) {
  AnalysisInput input = Input(kDiamond);
  input.recorded_seconds["b"] = -1;
  auto a = AnalyzeWorkflow(input);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("task \"b\""));
  input = Input(kDiamond);
  input.pool_max["default"] = 0;
  a = AnalyzeWorkflow(input);
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("pool \"default\": max 0"));
}

}  // namespace
}  // namespace gyre::optimizer
