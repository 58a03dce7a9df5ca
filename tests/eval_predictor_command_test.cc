// bench/eval_predictor, the binary anyone reruns (issue 24's "Evaluation"),
// on the two small development traces the unit tests use: leave-one-file-
// out (each trace predicted with the other as history). The baselines'
// figures it prints are checked against a plain recomputation from the
// traces; the model's against the library run in this process on the same
// files (the model's scoring itself is hand-checked on tiny traces in
// services/predictor/trace_evaluation_test.cc); the output must be the same
// on every run apart from the measured latencies.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/scratch_dir.h"
#include "libs/wfcommons/wfcommons_trace.h"
#include "services/predictor/trace_evaluation.h"

namespace gyre::predictor {
namespace {

namespace fs = std::filesystem;
using google::protobuf::ListValue;
using google::protobuf::Struct;
using ::gyre::testing::ChildProcess;

constexpr char kBlast[] = "makeflow/blast/blast-chameleon-small-001.json";
constexpr char kEpigenomics[] = "pegasus/epigenomics/epigenomics-chameleon-hep-1seq-100k-001.json";
constexpr double kMiB = 1024.0 * 1024.0;
// The JSON prints four decimals.
constexpr double kPrinted = 5.1e-5;

std::string Binary(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

struct CommandRun {
  int exit_code = -1;
  std::string output;
};

CommandRun RunEvalPredictor(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Binary("bench/eval_predictor")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = ChildProcess::Start(argv);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return {};
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(120));
  EXPECT_TRUE(status.has_value()) << "eval_predictor did not finish";
  CommandRun run;
  run.output = (*process)->Output();
  if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  return run;
}

double PlainMedian(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The two baselines recomputed the plain way: the history trace replayed
// first (every task seen), then the target, each task guessed before it is
// seen from the running mean of its type (else of everything, else 0) and
// the median of its type's last 50 (else the global mean). Scored under
// both rules: guess and actual floored, and only the actual floored.
struct HandScores {
  double mean_both = 0, median_both = 0;
  double mean_actual = 0, median_actual = 0;
  int64_t tasks = 0;
};

HandScores ByHand(const wfcommons::Trace& history, const wfcommons::Trace& target, bool memory) {
  const double floor = memory ? kMiB : 1.0;
  std::map<std::string, std::vector<double>> seen;
  std::vector<double> all;
  auto value_of = [memory](const wfcommons::TraceTask& task) {
    return memory ? static_cast<double>(task.memory_bytes) : task.runtime_seconds;
  };
  auto see = [&](const wfcommons::TraceTask& task) {
    if (memory && task.memory_bytes <= 0) return;
    seen[task.type].push_back(value_of(task));
    all.push_back(value_of(task));
  };
  for (int i : ReplayOrder(history)) see(history.tasks[i]);
  std::vector<double> mean_both, median_both, mean_actual, median_actual;
  for (int i : ReplayOrder(target)) {
    const wfcommons::TraceTask& task = target.tasks[i];
    if (memory && task.memory_bytes <= 0) continue;
    const double global_mean =
        all.empty() ? 0 : std::accumulate(all.begin(), all.end(), 0.0) / all.size();
    double mean_guess = global_mean;
    double median_guess = global_mean;
    auto it = seen.find(task.type);
    if (it != seen.end()) {
      mean_guess = std::accumulate(it->second.begin(), it->second.end(), 0.0) / it->second.size();
      const size_t keep = std::min<size_t>(50, it->second.size());
      median_guess = PlainMedian(std::vector<double>(it->second.end() - keep, it->second.end()));
    }
    const double actual = std::max(value_of(task), floor);
    mean_both.push_back(std::fabs(std::max(mean_guess, floor) - actual) / actual);
    median_both.push_back(std::fabs(std::max(median_guess, floor) - actual) / actual);
    mean_actual.push_back(std::fabs(mean_guess - actual) / actual);
    median_actual.push_back(std::fabs(median_guess - actual) / actual);
    see(task);
  }
  return {PlainMedian(mean_both), PlainMedian(median_both), PlainMedian(mean_actual),
          PlainMedian(median_actual), static_cast<int64_t>(mean_both.size())};
}

double Number(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  EXPECT_NE(it, object.fields().end()) << key;
  return it == object.fields().end() ? -1 : it->second.number_value();
}

const Struct& Object(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  EXPECT_NE(it, object.fields().end()) << key;
  return it == object.fields().end() ? Struct::default_instance() : it->second.struct_value();
}

std::string Text(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  EXPECT_NE(it, object.fields().end()) << key;
  return it == object.fields().end() ? "" : it->second.string_value();
}

class EvalPredictorCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Copied beside the binaries by the build (tests/CMakeLists.txt).
    const std::string data = Binary("tests/data/wfcommons");
    // A history directory holding only the two traces (the repository's
    // test data has a third), laid out as the development set is.
    history_ = scratch_.path() + "/history";
    for (const std::string relative : {kBlast, kEpigenomics}) {
      const fs::path to = fs::path(history_) / relative;
      std::error_code error;
      fs::create_directories(to.parent_path(), error);
      ASSERT_FALSE(error) << to << ": " << error.message();
      fs::copy_file(fs::path(data) / relative, to, error);
      ASSERT_FALSE(error) << relative << ": " << error.message();
      targets_.push_back(fs::weakly_canonical(to).string());
      absl::StatusOr<wfcommons::Trace> trace = wfcommons::ReadTraceFile(to.string());
      ASSERT_TRUE(trace.ok()) << trace.status();
      traces_.push_back(*std::move(trace));
    }
  }

  std::vector<std::string> Args(std::vector<std::string> flags) const {
    flags.push_back("--history");
    flags.push_back(history_);
    flags.insert(flags.end(), targets_.begin(), targets_.end());
    return flags;
  }

  gyre::testing::ScratchDir scratch_{"gyre_eval_predictor"};
  std::string history_;
  std::vector<std::string> targets_;      // blast, epigenomics (canonical paths)
  std::vector<wfcommons::Trace> traces_;  // the same, read
};

TEST_F(EvalPredictorCommandTest, JsonHasEveryRowAndTheBaselinesMatchAHandComputation) {
  const CommandRun run = RunEvalPredictor(Args({"--json"}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ListValue rows;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(run.output, &rows).ok()) << run.output;
  // One object per trace (in the given order), per family (by name) and
  // the overall one, last.
  ASSERT_EQ(rows.values_size(), 5) << run.output;
  const std::vector<std::pair<std::string, std::string>> expected = {{"trace", targets_[0]},
                                                                     {"trace", targets_[1]},
                                                                     {"family", "blast"},
                                                                     {"family", "epigenomics"},
                                                                     {"overall", "overall"}};
  for (int i = 0; i < 5; ++i) {
    const Struct& row = rows.values(i).struct_value();
    EXPECT_EQ(Text(row, "kind"), expected[i].first) << i;
    EXPECT_EQ(Text(row, "name"), expected[i].second) << i;
    for (const std::string metric : {"duration", "memory"}) {
      const Struct& m = Object(row, metric);
      for (const std::string key :
           {"tasks", "model_mdape", "running_mean_mdape", "running_median_mdape",
            "coverage_p10_p90", "hindsight_median_mdape", "both_within_2pct"}) {
        EXPECT_TRUE(m.fields().contains(key)) << i << " " << metric << " " << key;
      }
      const Struct& issue = Object(m, "actual_floor_only");
      for (const std::string key : {"model_mdape", "running_mean_mdape", "running_median_mdape"}) {
        EXPECT_TRUE(issue.fields().contains(key)) << i << " " << metric << " " << key;
      }
    }
    EXPECT_GE(Number(row, "latency_p99_us"), Number(row, "latency_p50_us"));
  }

  // Each trace's baselines, recomputed from the two files by hand.
  for (int t = 0; t < 2; ++t) {
    const Struct& row = rows.values(t).struct_value();
    const wfcommons::Trace& history = traces_[1 - t];
    for (const bool memory : {false, true}) {
      const Struct& m = Object(row, memory ? "memory" : "duration");
      const HandScores hand = ByHand(history, traces_[t], memory);
      const std::string what = absl::StrCat(targets_[t], memory ? " memory" : " duration");
      EXPECT_EQ(Number(m, "tasks"), hand.tasks) << what;
      if (hand.tasks == 0) continue;
      EXPECT_NEAR(Number(m, "running_mean_mdape"), hand.mean_both, kPrinted) << what;
      EXPECT_NEAR(Number(m, "running_median_mdape"), hand.median_both, kPrinted) << what;
      const Struct& issue = Object(m, "actual_floor_only");
      EXPECT_NEAR(Number(issue, "running_mean_mdape"), hand.mean_actual, kPrinted) << what;
      EXPECT_NEAR(Number(issue, "running_median_mdape"), hand.median_actual, kPrinted) << what;
    }
  }
  // BLAST records memory on all 43 tasks, Epigenomics on none; 84 tasks.
  EXPECT_EQ(Number(Object(rows.values(0).struct_value(), "memory"), "tasks"), 43);
  EXPECT_EQ(Number(Object(rows.values(1).struct_value(), "memory"), "tasks"), 0);
  EXPECT_EQ(Number(Object(rows.values(4).struct_value(), "duration"), "tasks"), 84);

  // The model's figures: what the library computes on the same files,
  // leave-one-file-out, read back from the binary's output.
  std::vector<LabeledTrace> labeled = {{targets_[0], "blast", traces_[0]},
                                       {targets_[1], "epigenomics", traces_[1]}};
  const EvaluationReport report = EvaluateOnTraces(labeled, labeled);
  const std::vector<const EvaluationRow*> in_process = {&report.traces[0], &report.traces[1],
                                                        &report.families[0], &report.families[1],
                                                        &report.overall};
  for (int i = 0; i < 5; ++i) {
    const Struct& row = rows.values(i).struct_value();
    for (const bool memory : {false, true}) {
      const MetricScore& want = memory ? in_process[i]->memory : in_process[i]->duration;
      const Struct& m = Object(row, memory ? "memory" : "duration");
      const std::string what = absl::StrCat(i, memory ? " memory" : " duration");
      EXPECT_EQ(Number(m, "tasks"), want.tasks) << what;
      EXPECT_NEAR(Number(m, "model_mdape"), want.model_mdape, kPrinted) << what;
      EXPECT_NEAR(Number(m, "coverage_p10_p90"), want.coverage, kPrinted) << what;
      EXPECT_NEAR(Number(Object(m, "actual_floor_only"), "model_mdape"),
                  want.model_mdape_actual_floor, kPrinted)
          << what;
      // A share of the tasks, and a score no predictor can make negative.
      EXPECT_GE(Number(m, "coverage_p10_p90"), 0) << what;
      EXPECT_LE(Number(m, "coverage_p10_p90"), 1) << what;
    }
  }
}

TEST_F(EvalPredictorCommandTest, TheSameInputGivesTheSameOutputApartFromLatencies) {
  const CommandRun first = RunEvalPredictor(Args({"--json"}));
  const CommandRun second = RunEvalPredictor(Args({"--json"}));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  ASSERT_EQ(second.exit_code, 0) << second.output;
  const std::regex latency("\"latency_p(50|99)_us\":[0-9.]+");
  const std::string a = std::regex_replace(first.output, latency, "LATENCY");
  const std::string b = std::regex_replace(second.output, latency, "LATENCY");
  EXPECT_NE(a, first.output) << "no latency field was found";
  EXPECT_EQ(a, b);
}

TEST_F(EvalPredictorCommandTest, TheTableShowsTheRuleItIsAskedFor) {
  std::vector<LabeledTrace> labeled = {{targets_[0], "blast", traces_[0]},
                                       {targets_[1], "epigenomics", traces_[1]}};
  const EvaluationReport report = EvaluateOnTraces(labeled, labeled);
  const CommandRun both = RunEvalPredictor(Args({}));
  const CommandRun actual = RunEvalPredictor(Args({"--floor=actual"}));
  ASSERT_EQ(both.exit_code, 0) << both.output;
  ASSERT_EQ(actual.exit_code, 0) << actual.output;
  EXPECT_TRUE(absl::StrContains(both.output, "duration (MdAPE, floor 1 s)")) << both.output;
  EXPECT_TRUE(absl::StrContains(actual.output, "duration (MdAPE, actual floored at 1 s)"))
      << actual.output;
  // The overall line: tasks, then model, running mean, running median.
  const MetricScore& d = report.overall.duration;
  EXPECT_TRUE(
      absl::StrContains(both.output, absl::StrFormat("%6d %6.3f %6.3f %6.3f", d.tasks,
                                                     d.model_mdape, d.mean_mdape, d.median_mdape)))
      << both.output;
  EXPECT_TRUE(absl::StrContains(
      actual.output, absl::StrFormat("%6d %6.3f %6.3f %6.3f", d.tasks, d.model_mdape_actual_floor,
                                     d.mean_mdape_actual_floor, d.median_mdape_actual_floor)))
      << actual.output;

  EXPECT_EQ(RunEvalPredictor(Args({"--floor=prediction"})).exit_code, 2);
  EXPECT_EQ(RunEvalPredictor({"--json"}).exit_code, 2);  // no --history, no trace
}

}  // namespace
}  // namespace gyre::predictor
