#include "services/predictor/resource_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/predictor/binary_codec.h"

namespace gyre::predictor {
namespace {

constexpr uint32_t kFormatVersion = 1;
constexpr int kDuration = 0;
constexpr int kMemory = 1;
constexpr int kCpu = 2;

// Values are learnt in log space; these floors keep log() finite and stop
// sub-millisecond or sub-KiB noise from dominating relative errors.
constexpr std::array<double, 3> kFloor = {1e-3, 1024.0, 0.01};
// With nothing observed at all: a minute, 512 MiB, one core, with intervals
// wide enough to say "no idea" (roughly 20x each way).
constexpr std::array<double, 3> kPrior = {60.0, 512.0 * 1024 * 1024, 1.0};
constexpr double kPriorLogHalfWidth = 3.0;
// Below this many residuals the interval borrows a more general level's.
constexpr int kMinIntervalResiduals = 5;
// A level chosen with fewer observations than this is shrunk towards the
// next level with data, weight n / (n + kShrinkPrior).
constexpr int64_t kShrinkBelow = 4;
constexpr double kShrinkPrior = 1.0;
// How often (in observations) the age sweep runs even without key pressure.
constexpr int64_t kSweepEvery = 4096;
// Bounds when reading a file back, so a corrupt length cannot allocate much.
constexpr uint32_t kMaxKeyBytes = 64 * 1024;

double LogOf(double value, int metric) { return std::log(std::max(value, kFloor[metric])); }

}  // namespace

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kIdentity:
      return "identity";
    case Level::kTaskInWorkflow:
      return "task";
    case Level::kProgram:
      return "program";
    case Level::kQueue:
      return "queue";
    case Level::kGlobal:
      return "global";
    case Level::kNone:
      break;
  }
  return "prior";
}

ResourceModel::ResourceModel(ResourceModelOptions options) : options_(options) {}

bool ResourceModel::KeyFor(const TaskFeatures& task, Level level, std::string* key) {
  switch (level) {
    case Level::kIdentity:
      if (task.identity.empty()) return false;
      *key = task.identity;
      return true;
    case Level::kTaskInWorkflow:
      if (task.task_id.empty()) return false;
      // \x1f (unit separator) cannot occur in a workflow name.
      // Appended into the caller's reused buffer: no allocation per lookup.
      key->clear();
      absl::StrAppend(key, task.workflow, "\x1f", task.task_id);
      return true;
    case Level::kProgram:
      if (task.program.empty()) return false;
      *key = task.program;
      return true;
    case Level::kQueue:
      *key = task.queue;
      return true;
    case Level::kGlobal:
      key->clear();
      return true;
    case Level::kNone:
      break;
  }
  return false;
}

Prediction ResourceModel::Predict(const TaskFeatures& task) const {
  std::array<const Entry*, kLevelCount> entries{};
  std::string key;
  for (int l = 0; l < kLevelCount; ++l) {
    if (!KeyFor(task, static_cast<Level>(l), &key)) continue;
    auto it = tables_[l].find(key);
    if (it != tables_[l].end()) entries[l] = &it->second;
  }
  const double log_size = task.input_bytes >= 0 ? std::log1p(task.input_bytes)
                                                : std::numeric_limits<double>::quiet_NaN();
  Prediction prediction;
  prediction.duration_seconds = PredictMetric(entries, kDuration, log_size);
  prediction.memory_bytes = PredictMetric(entries, kMemory, log_size);
  prediction.cpu_cores = PredictMetric(entries, kCpu, log_size);
  return prediction;
}

Estimate ResourceModel::PredictMetric(const std::array<const Entry*, kLevelCount>& entries,
                                      int metric, double log_size) const {
  auto sketch_at = [&](int l) -> const MetricSketch* {
    if (entries[l] == nullptr || entries[l]->metrics[metric].count() == 0) return nullptr;
    return &entries[l]->metrics[metric];
  };
  // The most specific level with data answers unless a more general one has
  // proven (on enough of its own out-of-sample errors, and so has this one)
  // that it predicts better: a level too new to judge is not overruled.
  int chosen = -1;
  double best_error = std::numeric_limits<double>::infinity();
  for (int l = 0; l < kLevelCount; ++l) {
    const MetricSketch* sketch = sketch_at(l);
    if (sketch == nullptr) continue;
    std::optional<double> error = sketch->MedianAbsResidual(kMinResiduals);
    // An exact repeat is not trusted before it has proven itself: the same
    // command on the same input can run on other hardware or data versions
    // (the 1000Genome traces repeat commands whose runtimes differ run to run).
    if (l == static_cast<int>(Level::kIdentity) && !error) continue;
    if (chosen < 0) {
      chosen = l;
      if (!error) break;
      best_error = *error;
    } else if (error && *error < best_error) {
      best_error = *error;
      chosen = l;
    }
  }
  Estimate estimate;
  if (chosen < 0) {
    estimate.value = kPrior[metric];
    estimate.p10 = kPrior[metric] * std::exp(-kPriorLogHalfWidth);
    estimate.p90 = kPrior[metric] * std::exp(kPriorLogHalfWidth);
    return estimate;
  }
  const MetricSketch& sketch = *sketch_at(chosen);
  double center = *sketch.Estimate(log_size);
  if (sketch.count() < kShrinkBelow) {
    for (int l = chosen + 1; l < kLevelCount; ++l) {
      if (const MetricSketch* parent = sketch_at(l)) {
        const double n = static_cast<double>(sketch.count());
        center = (n * center + kShrinkPrior * *parent->Estimate(log_size)) / (n + kShrinkPrior);
        break;
      }
    }
  }
  // Split-conformal interval: the chosen level's residual band, or the
  // nearest more general one's while it has too few residuals.
  double low = -kPriorLogHalfWidth;
  double high = kPriorLogHalfWidth;
  for (int l = chosen; l < kLevelCount; ++l) {
    const MetricSketch* source = sketch_at(l);
    if (source == nullptr || source->residual_count() < kMinIntervalResiduals) continue;
    std::tie(low, high) = *source->Band();
    break;
  }
  estimate.value = std::exp(center);
  estimate.p10 = std::exp(center + low);
  estimate.p90 = std::exp(center + high);
  estimate.level = static_cast<Level>(chosen);
  estimate.observations = sketch.count();
  return estimate;
}

void ResourceModel::ObserveBatch(absl::Span<const Observation> observations) {
  std::string key;
  for (const Observation& observation : observations) {
    ++observations_;
    newest_end_time_ = std::max(newest_end_time_, observation.end_time_seconds);
    const double log_size = observation.task.input_bytes >= 0
                                ? std::log1p(observation.task.input_bytes)
                                : std::numeric_limits<double>::quiet_NaN();
    const std::array<double, 3> values = {observation.duration_seconds, observation.memory_bytes,
                                          observation.cpu_cores};
    for (int l = 0; l < kLevelCount; ++l) {
      if (!KeyFor(observation.task, static_cast<Level>(l), &key)) continue;
      Entry& entry = tables_[l][key];
      entry.last_sequence = observations_;
      entry.last_end_time = observation.end_time_seconds;
      for (int metric = 0; metric < 3; ++metric) {
        // Duration is always recorded (0 is a real, instant run); memory and
        // CPU only when the agent or trace measured them.
        if (metric == kDuration ? values[metric] < 0 : values[metric] <= 0) continue;
        MetricSketch& sketch = entry.metrics[metric];
        if (sketch.Defer(LogOf(values[metric], metric), log_size)) dirty_.push_back(&sketch);
      }
    }
    MaybeEvict();
  }
  FlushDirty();
}

void ResourceModel::FlushDirty() {
  for (MetricSketch* sketch : dirty_) sketch->Flush();
  dirty_.clear();
}

int64_t ResourceModel::key_count() const {
  int64_t total = 0;
  for (const Table& table : tables_) total += static_cast<int64_t>(table.size());
  return total;
}

void ResourceModel::MaybeEvict() {
  const int64_t keys = key_count();
  if (keys <= options_.max_keys + options_.max_keys / 8 && observations_ % kSweepEvery != 0) return;
  // Eviction frees sketches dirty_ points to.
  FlushDirty();
  const int64_t oldest_allowed = newest_end_time_ - options_.max_age_seconds;
  // (last sequence, level, key) of every evictable key, oldest first.
  std::vector<std::tuple<int64_t, int, const std::string*>> candidates;
  for (int l = 0; l < static_cast<int>(Level::kGlobal); ++l) {
    for (auto it = tables_[l].begin(); it != tables_[l].end();) {
      if (it->second.last_end_time < oldest_allowed) {
        tables_[l].erase(it++);
        continue;
      }
      ++it;
    }
  }
  int64_t excess = key_count() - options_.max_keys;
  if (excess <= 0) return;
  for (int l = 0; l < static_cast<int>(Level::kGlobal); ++l) {
    for (const auto& [key, entry] : tables_[l])
      candidates.emplace_back(entry.last_sequence, l, &key);
  }
  std::nth_element(candidates.begin(), candidates.begin() + excess, candidates.end());
  std::vector<std::pair<int, std::string>> doomed;
  doomed.reserve(excess);
  for (int64_t i = 0; i < excess; ++i) {
    doomed.emplace_back(std::get<1>(candidates[i]), *std::get<2>(candidates[i]));
  }
  for (const auto& [level, key] : doomed) tables_[level].erase(key);
}

std::string ResourceModel::Serialize() const {
  std::string out;
  PutRaw(kFormatVersion, &out);
  PutRaw(static_cast<uint32_t>(MetricSketch::kWindow), &out);
  PutRaw(observations_, &out);
  PutRaw(newest_end_time_, &out);
  for (const Table& table : tables_) {
    // Sorted, so the same model always gives the same bytes.
    std::vector<const std::pair<const std::string, Entry>*> sorted;
    sorted.reserve(table.size());
    for (const auto& item : table) sorted.push_back(&item);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    PutRaw(static_cast<uint64_t>(sorted.size()), &out);
    for (const auto* item : sorted) {
      PutRaw(static_cast<uint32_t>(item->first.size()), &out);
      out.append(item->first);
      PutRaw(item->second.last_sequence, &out);
      PutRaw(item->second.last_end_time, &out);
      for (const MetricSketch& sketch : item->second.metrics) sketch.AppendTo(&out);
    }
  }
  return out;
}

absl::Status ResourceModel::Parse(absl::string_view bytes) {
  for (Table& table : tables_) table.clear();
  observations_ = 0;
  newest_end_time_ = 0;
  absl::Status status = [&]() -> absl::Status {
    uint32_t version = 0, window = 0;
    if (!GetRaw(&bytes, &version) || !GetRaw(&bytes, &window) || !GetRaw(&bytes, &observations_) ||
        !GetRaw(&bytes, &newest_end_time_)) {
      return absl::DataLossError("model: truncated header");
    }
    if (version != kFormatVersion) {
      return absl::DataLossError(
          absl::StrCat("model: format version ", version, ", this build reads ", kFormatVersion));
    }
    if (window != MetricSketch::kWindow) {
      return absl::DataLossError(absl::StrCat("model: sketch window ", window, ", this build uses ",
                                              MetricSketch::kWindow));
    }
    for (int l = 0; l < kLevelCount; ++l) {
      uint64_t count = 0;
      if (!GetRaw(&bytes, &count)) return absl::DataLossError("model: truncated level header");
      for (uint64_t i = 0; i < count; ++i) {
        uint32_t key_size = 0;
        if (!GetRaw(&bytes, &key_size) || key_size > kMaxKeyBytes || key_size > bytes.size()) {
          return absl::DataLossError(absl::StrCat("model: level ", LevelName(static_cast<Level>(l)),
                                                  " key ", i, ": bad key length ", key_size));
        }
        std::string key(bytes.substr(0, key_size));
        bytes.remove_prefix(key_size);
        Entry entry;
        if (!GetRaw(&bytes, &entry.last_sequence) || !GetRaw(&bytes, &entry.last_end_time)) {
          return absl::DataLossError(absl::StrCat("model: key \"", key, "\": truncated"));
        }
        for (MetricSketch& sketch : entry.metrics) {
          if (absl::Status s = sketch.ReadFrom(&bytes); !s.ok()) {
            return absl::DataLossError(absl::StrCat("model: key \"", key, "\": ", s.message()));
          }
        }
        tables_[l].insert_or_assign(std::move(key), std::move(entry));
      }
    }
    if (!bytes.empty()) {
      return absl::DataLossError(absl::StrCat("model: ", bytes.size(), " trailing bytes"));
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    for (Table& table : tables_) table.clear();
    observations_ = 0;
    newest_end_time_ = 0;
  }
  return status;
}

}  // namespace gyre::predictor
