#ifndef GYRE_SERVICES_PREDICTOR_METRIC_SKETCH_H_
#define GYRE_SERVICES_PREDICTOR_METRIC_SKETCH_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre::predictor {

// The recent history of one metric (duration, peak memory or CPU) for one key
// of one level of the ResourceModel, in log space, bounded to kWindow points.
//
// It answers a point estimate at a given input size: a robust log-log line
// through (log size, log value) when the size explains the spread (its
// residuals' median absolute deviation is clearly below the plain median's),
// otherwise the median of the window. It also keeps the last kWindow
// prequential residuals (log actual minus what this sketch predicted just
// before it saw the value): their median magnitude says how good this key is
// at predicting (the ResourceModel picks the level with the smallest), their
// 10th and 90th percentiles give a split-conformal p10–p90 interval that is
// calibrated on out-of-sample errors, not on the fit's own residuals.
//
// A plain value type; not thread-safe.
class MetricSketch {
 public:
  static constexpr int kWindow = 32;
  // Fewer points than this never fit a line (the median answers).
  static constexpr int kMinRegressionPoints = 8;

  // Records one value. `log_size` is NaN when the task's input size is unknown.
  // Computes the prequential residual first, so call it once per value.
  // Refits, so that predictions only read the cached fit and statistics.
  void Add(double log_value, double log_size) {
    Defer(log_value, log_size);
    Flush();
  }

  // Add() in two halves, so a batch refits each sketch once: Defer queues the
  // value (count() counts it at once); Flush computes what Add would have, in
  // order, but fits only for the last kWindow queued values' residuals (older
  // ones are overwritten in the residual window anyway) and summarizes the
  // residuals once. Estimates, bands and serialized bytes equal those of
  // Add() per value. Returns true when the sketch had nothing queued (the
  // caller owes it a Flush before any read).
  bool Defer(double log_value, double log_size);
  void Flush();

  // Point estimate (log space) for a task of `log_size` (NaN = unknown);
  // nullopt when the sketch is empty.
  std::optional<double> Estimate(double log_size) const;

  // Median |prequential residual|; nullopt below `min_residuals` of them.
  std::optional<double> MedianAbsResidual(int min_residuals) const;

  // The split-conformal p10–p90 band around an estimate, in log space: the
  // residuals' quantiles at q = 0.9(n+1)/n and 1 - q (finite-sample
  // correction), low <= 0 <= high; nullopt without residuals.
  std::optional<std::pair<double, double>> Band() const;

  int64_t count() const { return count_; }
  int residual_count() const { return static_cast<int>(residuals_.size()); }

  // Appends the sketch to `out` / reads it back from `in` (advanced past it).
  void AppendTo(std::string* out) const;
  absl::Status ReadFrom(absl::string_view* in);

 private:
  struct Point {
    float log_value;
    float log_size;  // NaN when unknown
  };
  // What predictions read, recomputed by Flush().
  struct Fit {
    float median = 0;
    float slope = 0;
    float intercept = 0;
    uint32_t line = 0;  // 1: intercept + slope * log size when the size is known
    float residual_mad = 0;
    float band_low = 0;
    float band_high = 0;
  };

  // A queued value, in double precision as Add() computed its residual.
  struct Pending {
    double log_value;
    double log_size;
  };

  // Moves the first `n` queued values into the windows.
  void Absorb(size_t n);
  void FitPoints();
  void SummarizeResiduals();

  Fit fit_;

  std::vector<Point> points_;  // ring buffer, at most kWindow
  int next_point_ = 0;
  std::vector<float> residuals_;  // ring buffer, at most kWindow
  int next_residual_ = 0;
  int64_t count_ = 0;
  std::vector<Pending> pending_;  // at most 2 x kWindow (Defer absorbs past it)
  bool fit_stale_ = false;        // points changed since fit_ was computed
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_METRIC_SKETCH_H_
