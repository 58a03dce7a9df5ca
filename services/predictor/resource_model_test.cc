#include "services/predictor/resource_model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace gyre::predictor {
namespace {

TaskFeatures Task(const std::string& program, const std::string& task_id = "t",
                  double input_bytes = -1) {
  TaskFeatures task;
  task.workflow = "wf";
  task.task_id = task_id;
  task.program = program;
  task.queue = "default";
  task.input_bytes = input_bytes;
  return task;
}

Observation Observed(const TaskFeatures& task, double seconds, double memory = 0, double cpu = 0,
                     int64_t end_time = 1000) {
  Observation o;
  o.task = task;
  o.duration_seconds = seconds;
  o.memory_bytes = memory;
  o.cpu_cores = cpu;
  o.end_time_seconds = end_time;
  return o;
}

TEST(ResourceModelTest, ConvergesToTheMedianAndCalibratedIntervalOfALogNormal) {
  ResourceModel model;
  std::mt19937 rng(7);
  std::lognormal_distribution<double> duration(std::log(100.0), 0.3);
  std::lognormal_distribution<double> memory(std::log(2e9), 0.2);
  for (int i = 0; i < 500; ++i) {
    model.Observe(Observed(Task("sim", absl::StrCat(i)), duration(rng), memory(rng), 1.5));
  }
  const Prediction p = model.Predict(Task("sim", "new"));
  EXPECT_NEAR(p.duration_seconds.value, 100.0, 12.0);
  EXPECT_NEAR(p.memory_bytes.value, 2e9, 0.2e9);
  EXPECT_NEAR(p.cpu_cores.value, 1.5, 1e-3);
  EXPECT_EQ(p.duration_seconds.level, Level::kProgram);
  // The true p10/p90 are 100·e^(∓1.2816·0.3) = 68 / 147.
  EXPECT_GT(p.duration_seconds.p10, 50.0);
  EXPECT_LT(p.duration_seconds.p10, 85.0);
  EXPECT_GT(p.duration_seconds.p90, 120.0);
  EXPECT_LT(p.duration_seconds.p90, 200.0);

  // Coverage of fresh draws (predict, then observe, as in production).
  int covered = 0;
  const int draws = 2000;
  for (int i = 0; i < draws; ++i) {
    const double actual = duration(rng);
    const Prediction q = model.Predict(Task("sim", "new"));
    if (actual >= q.duration_seconds.p10 && actual <= q.duration_seconds.p90) ++covered;
    model.Observe(Observed(Task("sim", "x"), actual));
  }
  EXPECT_GT(covered, draws * 0.72) << covered << " of " << draws;
  EXPECT_LT(covered, draws * 0.88) << covered << " of " << draws;
}

TEST(ResourceModelTest, LearnsDurationThatGrowsWithInputSize) {
  ResourceModel model;
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> log_size(std::log(1e6), std::log(1e10));
  std::lognormal_distribution<double> noise(0, 0.1);
  for (int i = 0; i < 200; ++i) {
    const double bytes = std::exp(log_size(rng));
    model.Observe(Observed(Task("gzip", absl::StrCat(i), bytes), bytes / 50e6 * noise(rng)));
  }
  for (double bytes : {3e6, 2e8, 5e9}) {
    const Prediction p = model.Predict(Task("gzip", "new", bytes));
    EXPECT_NEAR(p.duration_seconds.value, bytes / 50e6, 0.25 * bytes / 50e6) << bytes;
    EXPECT_LE(p.duration_seconds.p10, p.duration_seconds.value);
    EXPECT_GE(p.duration_seconds.p90, p.duration_seconds.value);
  }
  // Without a size the median of the window answers, far from a 5 GB run.
  EXPECT_LT(model.Predict(Task("gzip", "new")).duration_seconds.value, 50.0);
}

TEST(ResourceModelTest, ColdStartFallsBackToMoreGeneralLevelsWithWiderIntervals) {
  ResourceModel empty;
  const Prediction prior = empty.Predict(Task("never"));
  EXPECT_EQ(prior.duration_seconds.level, Level::kNone);
  EXPECT_GT(prior.duration_seconds.p90 / prior.duration_seconds.p10, 100.0);

  ResourceModel model;
  for (int i = 0; i < 40; ++i) {
    model.Observe(Observed(Task("short", absl::StrCat(i)), 1.0 + (i % 5) * 0.1));
    model.Observe(Observed(Task("long", absl::StrCat(i)), 1000.0 + (i % 5) * 100));
  }
  const Prediction known = model.Predict(Task("short", "new"));
  EXPECT_EQ(known.duration_seconds.level, Level::kProgram);
  EXPECT_NEAR(known.duration_seconds.value, 1.2, 0.2);

  TaskFeatures stranger = Task("unknown-program", "new");
  const Prediction cold = model.Predict(stranger);
  EXPECT_TRUE(cold.duration_seconds.level == Level::kQueue ||
              cold.duration_seconds.level == Level::kGlobal);
  // Similar tasks disagree by 1000x: the interval says so.
  EXPECT_GT(cold.duration_seconds.p90 / cold.duration_seconds.p10, 100.0);
  EXPECT_LT(known.duration_seconds.p90 / known.duration_seconds.p10, 2.0);
}

TEST(ResourceModelTest, PrefersTheExactIdentityWhenItPredictsBetter) {
  ResourceModel model;
  TaskFeatures fast = Task("tool", "a");
  fast.identity = "tool-small-input";
  TaskFeatures slow = Task("tool", "b");
  slow.identity = "tool-large-input";
  for (int i = 0; i < 20; ++i) {
    model.Observe(Observed(fast, 2.0));
    model.Observe(Observed(slow, 200.0));
  }
  const Prediction p = model.Predict(fast);
  EXPECT_LE(static_cast<int>(p.duration_seconds.level), static_cast<int>(Level::kTaskInWorkflow));
  EXPECT_NEAR(p.duration_seconds.value, 2.0, 1e-3);
  EXPECT_EQ(p.duration_seconds.observations, 20);
}

TEST(ResourceModelTest, EvictsTheLeastRecentlyObservedKeysBeyondMaxKeys) {
  ResourceModel model({/*max_keys=*/100, /*max_age_seconds=*/1 << 30});
  for (int i = 0; i < 1000; ++i) {
    const std::string name = absl::StrCat("p", i);
    model.Observe(Observed(Task(name, name), 5.0));
  }
  EXPECT_LE(model.key_count(), 100 + 100 / 8 + 1);
  // The newest program and task are still known, the first ones forgotten.
  EXPECT_LE(model.Predict(Task("p999", "p999")).duration_seconds.level, Level::kProgram);
  EXPECT_GT(model.Predict(Task("p0", "p0")).duration_seconds.level, Level::kProgram);
}

TEST(ResourceModelTest, EvictsKeysOlderThanMaxAge) {
  ResourceModel model({/*max_keys=*/1000000, /*max_age_seconds=*/3600});
  model.Observe(Observed(Task("old", "old"), 5.0, 0, 0, /*end_time=*/0));
  for (int i = 0; i < 5000; ++i) {
    model.Observe(Observed(Task("new", "new"), 5.0, 0, 0, /*end_time=*/7200 + i));
  }
  EXPECT_GT(model.Predict(Task("old", "old")).duration_seconds.level, Level::kProgram);
  EXPECT_LE(model.Predict(Task("new", "new")).duration_seconds.level, Level::kProgram);
}

TEST(ResourceModelTest, SerializedModelPredictsExactlyTheSameAfterParse) {
  ResourceModel model;
  std::mt19937 rng(3);
  std::lognormal_distribution<double> noise(0, 0.5);
  for (int i = 0; i < 300; ++i) {
    model.Observe(Observed(Task(absl::StrCat("p", i % 7), absl::StrCat(i % 13), 1e6 * (1 + i)),
                           10 * noise(rng), 1e8 * noise(rng), noise(rng)));
  }
  const std::string bytes = model.Serialize();
  ResourceModel loaded;
  ASSERT_TRUE(loaded.Parse(bytes).ok());
  EXPECT_EQ(loaded.Serialize(), bytes);
  EXPECT_EQ(loaded.key_count(), model.key_count());
  for (int i = 0; i < 20; ++i) {
    TaskFeatures task = Task(absl::StrCat("p", i % 9), absl::StrCat(i), 5e6 * i);
    const Prediction a = model.Predict(task);
    const Prediction b = loaded.Predict(task);
    EXPECT_EQ(a.duration_seconds.value, b.duration_seconds.value);
    EXPECT_EQ(a.memory_bytes.p90, b.memory_bytes.p90);
    EXPECT_EQ(a.cpu_cores.level, b.cpu_cores.level);
  }
}

// ObserveBatch refits each sketch once per batch (and skips the fits of
// residuals the window overwrites): it must learn exactly what one Observe
// per observation learns, byte for byte, also across evictions in a batch.
TEST(ResourceModelTest, ABatchLearnsExactlyWhatOneObservationAtATimeLearns) {
  ResourceModelOptions options;
  options.max_keys = 40;  // evictions happen inside the batches
  ResourceModel one_by_one(options);
  ResourceModel batched(options);
  std::mt19937 rng(5);
  std::lognormal_distribution<double> noise(0, 0.4);
  std::vector<Observation> observations;
  for (int i = 0; i < 3000; ++i) {
    // Hot keys (the queue, the global level, "p0") get hundreds of values a
    // batch, more than twice the window; cold ones a few.
    const double bytes = i % 5 == 0 ? -1 : 1e6 * (1 + i % 97);
    observations.push_back(
        Observed(Task(absl::StrCat("p", i % 3 == 0 ? 0 : i % 11), absl::StrCat(i % 29), bytes),
                 (bytes > 0 ? bytes / 1e6 : 7) * noise(rng), i % 4 == 0 ? 0 : 1e8 * noise(rng),
                 noise(rng), 1000 + i));
  }
  for (const Observation& o : observations) one_by_one.Observe(o);
  for (size_t start = 0; start < observations.size(); start += 700) {
    const size_t n = std::min<size_t>(700, observations.size() - start);
    batched.ObserveBatch(absl::MakeConstSpan(observations).subspan(start, n));
  }
  EXPECT_EQ(batched.Serialize(), one_by_one.Serialize());
  for (int i = 0; i < 20; ++i) {
    TaskFeatures task = Task(absl::StrCat("p", i % 12), absl::StrCat(i), 3e6 * i);
    const Prediction a = one_by_one.Predict(task);
    const Prediction b = batched.Predict(task);
    EXPECT_EQ(a.duration_seconds.value, b.duration_seconds.value);
    EXPECT_EQ(a.duration_seconds.p10, b.duration_seconds.p10);
    EXPECT_EQ(a.memory_bytes.p90, b.memory_bytes.p90);
    EXPECT_EQ(a.cpu_cores.level, b.cpu_cores.level);
  }
}

TEST(ResourceModelTest, CorruptBytesAreRejectedAndLeaveTheModelEmpty) {
  ResourceModel model;
  for (int i = 0; i < 50; ++i) model.Observe(Observed(Task("p"), 3.0));
  std::string bytes = model.Serialize();

  ResourceModel truncated;
  absl::Status status = truncated.Parse(absl::string_view(bytes).substr(0, bytes.size() / 2));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_EQ(truncated.key_count(), 0);

  std::string future = bytes;
  future[0] = 9;  // format version 9
  status = truncated.Parse(future);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("format version 9"), std::string::npos) << status;
}

}  // namespace
}  // namespace gyre::predictor
