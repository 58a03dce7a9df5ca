#ifndef GYRE_SERVICES_SCHEDULER_DURATION_ESTIMATOR_H_
#define GYRE_SERVICES_SCHEDULER_DURATION_ESTIMATOR_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace gyre::scheduler {

// Where the scheduler gets a task's predicted duration. The scheduling core
// only ever sees durations through this, so the predictor's model (issue 24)
// plugs in as another implementation without touching ranking or placement.
class DurationEstimator {
 public:
  virtual ~DurationEstimator() = default;

  // Predicted seconds for one run of a task of `task_type` (the queue plus
  // the task's name or program; the caller decides what "same kind" means).
  // `declared_seconds` > 0 is a duration the task, its history or the
  // predictor states and wins over the type's estimate (a run of the type
  // still going longer than that raises it, as it raises the estimate).
  virtual double EstimateSeconds(absl::string_view task_type, double declared_seconds) const = 0;

  // A finished run's measured wall time.
  virtual void Observe(absl::string_view task_type, double seconds) = 0;

  // A run of `task_type` still going after `elapsed_seconds`: a lower
  // bound on its duration (a censored observation). Until the next
  // ClearRunning, the type's estimate is at least the longest such bound, so
  // a type much slower than its history is noticed before its first run
  // ends. The default ignores it.
  virtual void ObserveRunning(absl::string_view /*task_type*/, double /*elapsed_seconds*/) {}
  // Forgets the bounds of ObserveRunning (called before reporting the runs
  // of a new moment).
  virtual void ClearRunning() {}

  // Increases whenever an estimate may have changed, so callers can cache
  // values derived from estimates (upward ranks) and refresh them lazily.
  virtual uint64_t generation() const = 0;
};

// The default estimator: the median of the last `window` observed runs per
// task type, the median of the last `window` runs of any type for a type
// never seen, and `prior_seconds` before anything was observed (or the
// declared seconds when given); raised to the longest elapsed time of a run
// of the type still going (ObserveRunning). Online (it learns from
// each finished run), robust to outliers, and needs no training.
// Not thread-safe: the owner serialises calls.
class OnlineDurationEstimator final : public DurationEstimator {
 public:
  explicit OnlineDurationEstimator(double prior_seconds = 60.0, int window = 31);

  double EstimateSeconds(absl::string_view task_type, double declared_seconds) const override;
  void Observe(absl::string_view task_type, double seconds) override;
  void ObserveRunning(absl::string_view task_type, double elapsed_seconds) override;
  void ClearRunning() override;
  uint64_t generation() const override { return generation_; }

 private:
  struct Window {
    std::deque<double> samples;
    double median = 0;
  };
  static double MedianOf(const std::deque<double>& samples);

  double prior_seconds_;
  size_t window_;
  absl::flat_hash_map<std::string, Window> by_type_;
  Window all_;
  // Longest elapsed time of a still-running task, per type, where it exceeds
  // the type's estimate.
  absl::flat_hash_map<std::string, double> running_floor_;
  uint64_t generation_ = 0;
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_DURATION_ESTIMATOR_H_
