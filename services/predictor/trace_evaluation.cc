#include "services/predictor/trace_evaluation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/common/json_escape.h"

namespace gyre::predictor {
namespace {

constexpr double kDurationFloor = 1.0;            // seconds
constexpr double kMemoryFloor = 1024.0 * 1024.0;  // bytes
constexpr size_t kMedianWindow = 50;

// The two baselines for one metric, updated in the same replay.
class Baselines {
 public:
  // Running mean of the type, else the running global mean, else 0.
  double Mean(const std::string& type) const {
    auto it = by_type_.find(type);
    if (it != by_type_.end()) return it->second.sum / it->second.count;
    return global_count_ > 0 ? global_sum_ / global_count_ : 0;
  }
  // Median of the type's last 50, else the running global mean.
  double Median(const std::string& type) const {
    auto it = by_type_.find(type);
    if (it == by_type_.end()) return Mean(type);
    std::vector<double> recent(it->second.recent.begin(), it->second.recent.end());
    const size_t mid = recent.size() / 2;
    std::nth_element(recent.begin(), recent.begin() + mid, recent.end());
    if (recent.size() % 2 == 1) return recent[mid];
    return (recent[mid] + *std::max_element(recent.begin(), recent.begin() + mid)) / 2;
  }
  void Observe(const std::string& type, double value) {
    PerType& t = by_type_[type];
    t.sum += value;
    ++t.count;
    t.recent.push_back(value);
    if (t.recent.size() > kMedianWindow) t.recent.pop_front();
    global_sum_ += value;
    ++global_count_;
  }

 private:
  struct PerType {
    double sum = 0;
    int64_t count = 0;
    std::deque<double> recent;
  };
  absl::flat_hash_map<std::string, PerType> by_type_;
  double global_sum_ = 0;
  int64_t global_count_ = 0;
};

// Absolute percentage errors and interval hits of one metric.
struct MetricSamples {
  std::vector<double> model, mean, median, hindsight;
  // The same guesses scored by issue 24's exact rule: the actual floored,
  // the guess as it is.
  std::vector<double> model_actual_floor, mean_actual_floor, median_actual_floor;
  int64_t covered = 0;
  int64_t both_close = 0;  // model and running median within 2%

  void Add(double actual, double floor, const Estimate& estimate, double mean_guess,
           double median_guess) {
    const double a = std::max(actual, floor);
    auto ape = [&](double guess) { return std::fabs(std::max(guess, floor) - a) / a; };
    auto ape_actual_floor = [&](double guess) { return std::fabs(guess - a) / a; };
    model.push_back(ape(estimate.value));
    mean.push_back(ape(mean_guess));
    median.push_back(ape(median_guess));
    model_actual_floor.push_back(ape_actual_floor(estimate.value));
    mean_actual_floor.push_back(ape_actual_floor(mean_guess));
    median_actual_floor.push_back(ape_actual_floor(median_guess));
    if (a >= std::max(estimate.p10, floor) && a <= std::max(estimate.p90, floor)) ++covered;
    if (model.back() <= 0.02 && median.back() <= 0.02) ++both_close;
  }
  // The hindsight yardstick of one trace: `actuals` (floored) by type, in
  // the order Add saw them.
  void AddHindsight(const std::vector<std::pair<std::string, double>>& actuals);
  void Append(const MetricSamples& other) {
    model.insert(model.end(), other.model.begin(), other.model.end());
    mean.insert(mean.end(), other.mean.begin(), other.mean.end());
    median.insert(median.end(), other.median.begin(), other.median.end());
    hindsight.insert(hindsight.end(), other.hindsight.begin(), other.hindsight.end());
    model_actual_floor.insert(model_actual_floor.end(), other.model_actual_floor.begin(),
                              other.model_actual_floor.end());
    mean_actual_floor.insert(mean_actual_floor.end(), other.mean_actual_floor.begin(),
                             other.mean_actual_floor.end());
    median_actual_floor.insert(median_actual_floor.end(), other.median_actual_floor.begin(),
                               other.median_actual_floor.end());
    covered += other.covered;
    both_close += other.both_close;
  }
};

struct Samples {
  MetricSamples duration;
  MetricSamples memory;
  std::vector<double> latency_us;

  void Append(const Samples& other) {
    duration.Append(other.duration);
    memory.Append(other.memory);
    latency_us.insert(latency_us.end(), other.latency_us.begin(), other.latency_us.end());
  }
};

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  const size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  if (values.size() % 2 == 1) return values[mid];
  return (values[mid] + *std::max_element(values.begin(), values.begin() + mid)) / 2;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * values.size()));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void MetricSamples::AddHindsight(const std::vector<std::pair<std::string, double>>& actuals) {
  std::map<std::string, std::vector<double>> by_type;
  for (const auto& [type, actual] : actuals) by_type[type].push_back(actual);
  std::map<std::string, double> medians;
  for (const auto& [type, values] : by_type) medians[type] = Median(values);
  for (const auto& [type, actual] : actuals) {
    hindsight.push_back(std::fabs(medians[type] - actual) / actual);
  }
}

MetricScore Score(const MetricSamples& samples) {
  MetricScore score;
  score.tasks = static_cast<int64_t>(samples.model.size());
  if (score.tasks == 0) return score;
  score.model_mdape = Median(samples.model);
  score.mean_mdape = Median(samples.mean);
  score.median_mdape = Median(samples.median);
  score.coverage = static_cast<double>(samples.covered) / score.tasks;
  score.hindsight_mdape = Median(samples.hindsight);
  score.both_within_2pct = static_cast<double>(samples.both_close) / score.tasks;
  score.model_mdape_actual_floor = Median(samples.model_actual_floor);
  score.mean_mdape_actual_floor = Median(samples.mean_actual_floor);
  score.median_mdape_actual_floor = Median(samples.median_actual_floor);
  return score;
}

EvaluationRow RowOf(const std::string& name, const Samples& samples) {
  EvaluationRow row;
  row.name = name;
  row.duration = Score(samples.duration);
  row.memory = Score(samples.memory);
  row.latency_p50_us = Percentile(samples.latency_us, 0.5);
  row.latency_p99_us = Percentile(samples.latency_us, 0.99);
  return row;
}

Observation ObservationOf(const wfcommons::Trace& trace, const wfcommons::TraceTask& task) {
  Observation observation;
  observation.task = FeaturesOf(trace, task);
  observation.duration_seconds = task.runtime_seconds;
  observation.memory_bytes = static_cast<double>(task.memory_bytes);
  observation.cpu_cores = task.cpu_cores;
  return observation;
}

struct Replayer {
  ResourceModel model;
  Baselines duration;
  Baselines memory;

  explicit Replayer(const ResourceModelOptions& options) : model(options) {}

  void Observe(const wfcommons::Trace& trace, const wfcommons::TraceTask& task) {
    model.Observe(ObservationOf(trace, task));
    duration.Observe(task.type, task.runtime_seconds);
    if (task.memory_bytes > 0) memory.Observe(task.type, static_cast<double>(task.memory_bytes));
  }
};

}  // namespace

std::vector<int> ReplayOrder(const wfcommons::Trace& trace) {
  std::vector<double> start(trace.tasks.size(), 0);
  for (int i : wfcommons::TopologicalOrder(trace)) {
    for (int parent : trace.tasks[i].parents) {
      start[i] = std::max(start[i], start[parent] + trace.tasks[parent].runtime_seconds);
    }
  }
  std::vector<int> order(trace.tasks.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return start[a] < start[b]; });
  return order;
}

TaskFeatures FeaturesOf(const wfcommons::Trace& trace, const wfcommons::TraceTask& task) {
  TaskFeatures features;
  features.identity = absl::StrCat(task.type, "\x1f", task.command, "\x1f", task.input_bytes);
  features.workflow = trace.name;
  features.task_id = task.name;
  features.program = task.type;
  features.queue = trace.system;
  features.input_bytes = static_cast<double>(task.input_bytes);
  return features;
}

EvaluationReport EvaluateOnTraces(const std::vector<LabeledTrace>& history,
                                  const std::vector<LabeledTrace>& targets,
                                  const ResourceModelOptions& options) {
  std::vector<const LabeledTrace*> sorted_history;
  for (const LabeledTrace& h : history) sorted_history.push_back(&h);
  std::stable_sort(sorted_history.begin(), sorted_history.end(),
                   [](auto* a, auto* b) { return a->path < b->path; });

  EvaluationReport report;
  Samples overall;
  std::map<std::string, Samples> families;
  for (const LabeledTrace& target : targets) {
    Replayer replayer(options);
    for (const LabeledTrace* h : sorted_history) {
      if (h->path == target.path) continue;
      for (int i : ReplayOrder(h->trace)) replayer.Observe(h->trace, h->trace.tasks[i]);
    }
    Samples samples;
    std::vector<std::pair<std::string, double>> durations, memories;  // floored, by type
    for (int i : ReplayOrder(target.trace)) {
      const wfcommons::TraceTask& task = target.trace.tasks[i];
      const TaskFeatures features = FeaturesOf(target.trace, task);
      const auto begin = std::chrono::steady_clock::now();
      const Prediction prediction = replayer.model.Predict(features);
      const auto end = std::chrono::steady_clock::now();
      samples.latency_us.push_back(std::chrono::duration<double, std::micro>(end - begin).count());
      samples.duration.Add(task.runtime_seconds, kDurationFloor, prediction.duration_seconds,
                           replayer.duration.Mean(task.type), replayer.duration.Median(task.type));
      durations.emplace_back(task.type, std::max(task.runtime_seconds, kDurationFloor));
      if (task.memory_bytes > 0) {
        memories.emplace_back(task.type,
                              std::max(static_cast<double>(task.memory_bytes), kMemoryFloor));
        samples.memory.Add(static_cast<double>(task.memory_bytes), kMemoryFloor,
                           prediction.memory_bytes, replayer.memory.Mean(task.type),
                           replayer.memory.Median(task.type));
      }
      replayer.Observe(target.trace, task);
    }
    samples.duration.AddHindsight(durations);
    samples.memory.AddHindsight(memories);
    report.traces.push_back(RowOf(target.path, samples));
    families[target.family].Append(samples);
    overall.Append(samples);
  }
  for (const auto& [family, samples] : families) report.families.push_back(RowOf(family, samples));
  report.overall = RowOf("overall", overall);
  return report;
}

namespace {

std::string TableLine(const EvaluationRow& row, FloorRule rule) {
  auto metric = [rule](const MetricScore& m) {
    if (m.tasks == 0) {
      return absl::StrFormat("%6s %6s %6s %6s %5s %6s", "-", "-", "-", "-", "-", "-");
    }
    const bool actual_only = rule == FloorRule::kActualOnly;
    return absl::StrFormat("%6d %6.3f %6.3f %6.3f %5.1f%% %6.3f", m.tasks,
                           actual_only ? m.model_mdape_actual_floor : m.model_mdape,
                           actual_only ? m.mean_mdape_actual_floor : m.mean_mdape,
                           actual_only ? m.median_mdape_actual_floor : m.median_mdape,
                           100 * m.coverage, m.hindsight_mdape);
  };
  return absl::StrFormat("%-58s | %s | %s | %7.1f %7.1f\n", row.name, metric(row.duration),
                         metric(row.memory), row.latency_p50_us, row.latency_p99_us);
}

void AppendMetricJson(const MetricScore& m, std::string* out) {
  absl::StrAppendFormat(out,
                        "{\"tasks\":%d,\"model_mdape\":%.4f,\"running_mean_mdape\":%.4f,"
                        "\"running_median_mdape\":%.4f,\"coverage_p10_p90\":%.4f,"
                        "\"hindsight_median_mdape\":%.4f,\"both_within_2pct\":%.4f,"
                        "\"actual_floor_only\":{\"model_mdape\":%.4f,"
                        "\"running_mean_mdape\":%.4f,\"running_median_mdape\":%.4f}}",
                        m.tasks, m.model_mdape, m.mean_mdape, m.median_mdape, m.coverage,
                        m.hindsight_mdape, m.both_within_2pct, m.model_mdape_actual_floor,
                        m.mean_mdape_actual_floor, m.median_mdape_actual_floor);
}

void AppendRowJson(absl::string_view kind, const EvaluationRow& row, std::string* out) {
  absl::StrAppend(out, "{\"kind\":\"", kind, "\",\"name\":");
  AppendJsonString(row.name, out);
  absl::StrAppend(out, ",\"duration\":");
  AppendMetricJson(row.duration, out);
  absl::StrAppend(out, ",\"memory\":");
  AppendMetricJson(row.memory, out);
  absl::StrAppendFormat(out, ",\"latency_p50_us\":%.2f,\"latency_p99_us\":%.2f}",
                        row.latency_p50_us, row.latency_p99_us);
}

}  // namespace

std::string FormatTable(const EvaluationReport& report, FloorRule rule) {
  const bool actual_only = rule == FloorRule::kActualOnly;
  std::string out = absl::StrFormat(
      "%-58s | %-41s | %-41s | %-15s\n%-58s | %6s %6s %6s %6s %5s %6s | %6s %6s %6s %6s %5s %6s | "
      "%7s %7s\n",
      "", actual_only ? "duration (MdAPE, actual floored at 1 s)" : "duration (MdAPE, floor 1 s)",
      actual_only ? "memory (MdAPE, actual floored at 1 MiB)" : "memory (MdAPE, floor 1 MiB)",
      "latency us", "trace", "tasks", "model", "mean", "med50", "cover", "hind", "tasks", "model",
      "mean", "med50", "cover", "hind", "p50", "p99");
  for (const EvaluationRow& row : report.traces) out += TableLine(row, rule);
  out += "\n";
  for (const EvaluationRow& row : report.families) out += TableLine(row, rule);
  out += "\n";
  out += TableLine(report.overall, rule);
  return out;
}

std::string FormatJson(const EvaluationReport& report) {
  std::string out = "[\n";
  for (const EvaluationRow& row : report.traces) {
    AppendRowJson("trace", row, &out);
    out += ",\n";
  }
  for (const EvaluationRow& row : report.families) {
    AppendRowJson("family", row, &out);
    out += ",\n";
  }
  AppendRowJson("overall", report.overall, &out);
  out += "\n]\n";
  return out;
}

}  // namespace gyre::predictor
