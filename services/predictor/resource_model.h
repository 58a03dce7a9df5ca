#ifndef GYRE_SERVICES_PREDICTOR_RESOURCE_MODEL_H_
#define GYRE_SERVICES_PREDICTOR_RESOURCE_MODEL_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/predictor/metric_sketch.h"

namespace gyre::predictor {

// What a running Gyre knows about a task before it runs.
struct TaskFeatures {
  std::string identity;     // exact identity (hash of spec + context); empty = none
  std::string workflow;     // workflow name
  std::string task_id;      // task id within the workflow
  std::string program;      // the command's program, or the builtin's name
  std::string queue;        // worker type
  double input_bytes = -1;  // numeric context value "input_bytes"; < 0 = unknown
};

// One finished attempt.
struct Observation {
  TaskFeatures task;
  double duration_seconds = 0;
  double memory_bytes = 0;  // peak RSS; 0 = not recorded
  double cpu_cores = 0;     // average cores; 0 = not recorded
  // When it ended (Unix seconds): the clock age eviction runs on, so that a
  // replay of old observations is evicted the same way on every run.
  int64_t end_time_seconds = 0;
};

// Levels of history, most specific first.
enum class Level : int {
  kIdentity = 0,        // this exact task identity
  kTaskInWorkflow = 1,  // this task id in this workflow, other contexts
  kProgram = 2,         // same command program or builtin
  kQueue = 3,           // same queue
  kGlobal = 4,          // everything
  kNone = 5,            // nothing observed at all: a fixed prior
};
inline constexpr int kLevelCount = 5;
absl::string_view LevelName(Level level);

// A prediction of one metric: the point value with its p10–p90 interval.
struct Estimate {
  double value = 0;
  double p10 = 0;
  double p90 = 0;
  Level level = Level::kNone;
  int64_t observations = 0;  // observations of the answering level's key
};

struct Prediction {
  Estimate duration_seconds;
  Estimate memory_bytes;
  Estimate cpu_cores;
};

struct ResourceModelOptions {
  // Keys kept over the identity, task, program and queue levels together;
  // past it the least recently observed keys go first.
  int64_t max_keys = 50000;
  // Keys not observed for this long (by observation end time) are evicted.
  int64_t max_age_seconds = 30 * 24 * 3600;
};

// Learns duration, peak memory and CPU per task from finished attempts and
// predicts them, with calibrated intervals, for tasks about to run.
//
// Each level keeps one MetricSketch per metric per key. A prediction asks
// every level that has the task's key, takes the one whose own out-of-sample
// errors are smallest (a level needs kMinResiduals of them to compete; a more
// specific level wins ties), and shrinks it towards the next level with
// data while it has few observations. The interval is the chosen sketch's
// prequential residual quantiles. Cold start: a task nobody has seen is
// answered by its program, its queue or everything, with those levels'
// (wider) intervals; with no data at all a fixed, very wide prior.
//
// Memory: at most max_keys keys (plus 1/8 slack before a sweep), each with
// at most 3 x 2 x MetricSketch::kWindow floats (~800 bytes full). Eviction
// runs when the slack is used and every 4,096 observations: keys older than
// max_age_seconds first, then the least recently observed. The global key
// is never evicted.
//
// Deterministic: the same observations in the same order give the same
// predictions. Not thread-safe: Predict is const and may run concurrently
// with other Predicts; the owner serializes Observe, Save and Load.
class ResourceModel {
 public:
  static constexpr int kMinResiduals = 3;

  explicit ResourceModel(ResourceModelOptions options = {});

  Prediction Predict(const TaskFeatures& task) const;
  void Observe(const Observation& observation) { ObserveBatch({&observation, 1}); }
  // The same as Observe() of each in order, but each touched sketch refits
  // once per batch instead of once per observation.
  void ObserveBatch(absl::Span<const Observation> observations);

  int64_t key_count() const;
  int64_t observation_count() const { return observations_; }

  // The model as bytes (a version header, then every key) and back. Parse
  // replaces the contents; on error the model is left empty and the status
  // (kDataLoss) says what was wrong.
  std::string Serialize() const;
  absl::Status Parse(absl::string_view bytes);

 private:
  struct Entry {
    std::array<MetricSketch, 3> metrics;  // duration, memory, cpu
    int64_t last_sequence = 0;
    int64_t last_end_time = 0;
  };
  // Node-based, so dirty_ may point into it while a batch inserts keys.
  using Table = absl::node_hash_map<std::string, Entry>;

  // The key of `task` at `level`; false when the task has none there.
  static bool KeyFor(const TaskFeatures& task, Level level, std::string* key);
  Estimate PredictMetric(const std::array<const Entry*, kLevelCount>& entries, int metric,
                         double log_size) const;
  void MaybeEvict();
  void FlushDirty();

  ResourceModelOptions options_;
  std::array<Table, kLevelCount> tables_;
  int64_t observations_ = 0;
  int64_t newest_end_time_ = 0;
  // Sketches with deferred values; empty between public calls.
  std::vector<MetricSketch*> dirty_;
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_RESOURCE_MODEL_H_
