#include "services/predictor/metric_sketch.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "services/predictor/binary_codec.h"

namespace gyre::predictor {
namespace {

// The line must cut the spread by this much to be used: a weaker fit is as
// likely noise as signal on 8–32 points.
constexpr double kRegressionGain = 0.75;
// Slopes outside this range are not physical for "work grows with input"
// (and come from a few outliers): the median answers instead.
constexpr double kMinSlope = -0.5;
constexpr double kMaxSlope = 2.0;

// Median of the first n values of `v` (reordered).
double MedianOf(float* v, int n) {
  int mid = n / 2;
  std::nth_element(v, v + mid, v + n);
  double upper = v[mid];
  if (n % 2 == 1) return upper;
  double lower = *std::max_element(v, v + mid);
  return (lower + upper) / 2;
}

}  // namespace

bool MetricSketch::Defer(double log_value, double log_size) {
  const bool was_clean = pending_.empty();
  if (pending_.size() >= 2 * kWindow) Absorb(kWindow);
  pending_.push_back({log_value, log_size});
  ++count_;
  return was_clean;
}

void MetricSketch::Absorb(size_t n) {
  const size_t queued = pending_.size();
  for (size_t j = 0; j < n; ++j) {
    const Pending& value = pending_[j];
    if (!points_.empty()) {
      // At least kWindow later residuals overwrite this one: no fit needed,
      // only the ring position.
      float residual = 0;
      if (queued - j <= kWindow) {
        if (fit_stale_) FitPoints();
        residual = static_cast<float>(value.log_value - *Estimate(value.log_size));
      }
      if (static_cast<int>(residuals_.size()) < kWindow) {
        residuals_.push_back(residual);
      } else {
        residuals_[next_residual_] = residual;
      }
      next_residual_ = (next_residual_ + 1) % kWindow;
    }
    Point point{static_cast<float>(value.log_value), static_cast<float>(value.log_size)};
    if (static_cast<int>(points_.size()) < kWindow) {
      points_.push_back(point);
    } else {
      points_[next_point_] = point;
    }
    next_point_ = (next_point_ + 1) % kWindow;
    fit_stale_ = true;
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
}

void MetricSketch::Flush() {
  if (pending_.empty()) return;
  Absorb(pending_.size());
  FitPoints();
  SummarizeResiduals();
}

void MetricSketch::FitPoints() {
  const int n = static_cast<int>(points_.size());
  fit_stale_ = false;
  // Reset, so the serialized fit depends on the points only, not on which
  // earlier fits a batch skipped.
  fit_.line = 0;
  fit_.slope = 0;
  fit_.intercept = 0;
  if (n == 0) return;
  std::array<float, kWindow> scratch;
  for (int i = 0; i < n; ++i) scratch[i] = points_[i].log_value;
  const double median = MedianOf(scratch.data(), n);
  fit_.median = static_cast<float>(median);
  if (n < kMinRegressionPoints) return;

  // Least-squares slope of log value on log size, then a median intercept
  // and a median-deviation test, so one outlier neither tilts the answer
  // much nor makes a bad line look good.
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int m = 0;
  for (const Point& p : points_) {
    if (std::isnan(p.log_size)) continue;
    sx += p.log_size;
    sy += p.log_value;
    sxx += static_cast<double>(p.log_size) * p.log_size;
    sxy += static_cast<double>(p.log_size) * p.log_value;
    ++m;
  }
  if (m < kMinRegressionPoints) return;
  const double var = sxx - sx * sx / m;
  if (var < 1e-6 * m) return;
  const double slope = (sxy - sx * sy / m) / var;
  if (slope < kMinSlope || slope > kMaxSlope) return;

  std::array<float, kWindow> offsets;
  int k = 0;
  for (const Point& p : points_) {
    if (!std::isnan(p.log_size))
      offsets[k++] = static_cast<float>(p.log_value - slope * p.log_size);
  }
  const double intercept = MedianOf(offsets.data(), k);
  std::array<float, kWindow> line_dev;
  std::array<float, kWindow> median_dev;
  k = 0;
  for (const Point& p : points_) {
    if (std::isnan(p.log_size)) continue;
    line_dev[k] = static_cast<float>(std::fabs(p.log_value - intercept - slope * p.log_size));
    median_dev[k] = static_cast<float>(std::fabs(p.log_value - median));
    ++k;
  }
  const double line_mad = MedianOf(line_dev.data(), k);
  const double median_mad = MedianOf(median_dev.data(), k);
  if (line_mad >= kRegressionGain * median_mad) return;
  fit_.line = 1;
  fit_.slope = static_cast<float>(slope);
  fit_.intercept = static_cast<float>(intercept);
}

void MetricSketch::SummarizeResiduals() {
  const int n = static_cast<int>(residuals_.size());
  if (n == 0) return;
  std::array<float, kWindow> scratch;
  for (int i = 0; i < n; ++i) scratch[i] = std::fabs(residuals_[i]);
  fit_.residual_mad = static_cast<float>(MedianOf(scratch.data(), n));
  std::copy(residuals_.begin(), residuals_.end(), scratch.begin());
  std::sort(scratch.begin(), scratch.begin() + n);
  // Linear interpolation between order statistics (type 7).
  auto quantile = [&](double q) {
    const double pos = q * (n - 1);
    const int lo = static_cast<int>(std::floor(pos));
    const int hi = std::min(lo + 1, n - 1);
    return scratch[lo] + (pos - lo) * (scratch[hi] - scratch[lo]);
  };
  const double q = std::min(1.0, 0.9 * (n + 1) / n);
  fit_.band_low = static_cast<float>(std::min(0.0, quantile(1 - q)));
  fit_.band_high = static_cast<float>(std::max(0.0, quantile(q)));
}

std::optional<double> MetricSketch::Estimate(double log_size) const {
  if (points_.empty()) return std::nullopt;
  if (fit_.line != 0 && !std::isnan(log_size)) {
    return static_cast<double>(fit_.intercept) + fit_.slope * log_size;
  }
  return fit_.median;
}

std::optional<double> MetricSketch::MedianAbsResidual(int min_residuals) const {
  const int n = static_cast<int>(residuals_.size());
  if (n == 0 || n < min_residuals) return std::nullopt;
  return fit_.residual_mad;
}

std::optional<std::pair<double, double>> MetricSketch::Band() const {
  if (residuals_.empty()) return std::nullopt;
  return std::make_pair(static_cast<double>(fit_.band_low), static_cast<double>(fit_.band_high));
}

void MetricSketch::AppendTo(std::string* out) const {
  PutRaw(count_, out);
  PutRaw(static_cast<uint32_t>(points_.size()), out);
  PutRaw(static_cast<uint32_t>(next_point_), out);
  for (const Point& p : points_) {
    PutRaw(p.log_value, out);
    PutRaw(p.log_size, out);
  }
  PutRaw(static_cast<uint32_t>(residuals_.size()), out);
  PutRaw(static_cast<uint32_t>(next_residual_), out);
  for (float r : residuals_) PutRaw(r, out);
  PutRaw(fit_, out);
}

absl::Status MetricSketch::ReadFrom(absl::string_view* in) {
  uint32_t points = 0, next_point = 0, residuals = 0, next_residual = 0;
  if (!GetRaw(in, &count_) || !GetRaw(in, &points) || !GetRaw(in, &next_point)) {
    return absl::DataLossError("metric sketch: truncated header");
  }
  if (points > kWindow || next_point >= kWindow || count_ < points) {
    return absl::DataLossError(absl::StrCat("metric sketch: ", points, " points (window ", kWindow,
                                            "), next ", next_point, ", count ", count_));
  }
  points_.resize(points);
  next_point_ = static_cast<int>(next_point);
  for (Point& p : points_) {
    if (!GetRaw(in, &p.log_value) || !GetRaw(in, &p.log_size)) {
      return absl::DataLossError("metric sketch: truncated points");
    }
    if (!std::isfinite(p.log_value)) return absl::DataLossError("metric sketch: value not finite");
  }
  if (!GetRaw(in, &residuals) || !GetRaw(in, &next_residual)) {
    return absl::DataLossError("metric sketch: truncated residual header");
  }
  if (residuals > kWindow || next_residual >= kWindow) {
    return absl::DataLossError(
        absl::StrCat("metric sketch: ", residuals, " residuals (window ", kWindow, ")"));
  }
  residuals_.resize(residuals);
  next_residual_ = static_cast<int>(next_residual);
  for (float& r : residuals_) {
    if (!GetRaw(in, &r)) return absl::DataLossError("metric sketch: truncated residuals");
    if (!std::isfinite(r)) return absl::DataLossError("metric sketch: residual not finite");
  }
  if (!GetRaw(in, &fit_)) return absl::DataLossError("metric sketch: truncated fit");
  if (!std::isfinite(fit_.median) || !std::isfinite(fit_.slope) || !std::isfinite(fit_.intercept) ||
      fit_.line > 1) {
    return absl::DataLossError("metric sketch: fit not finite");
  }
  return absl::OkStatus();
}

}  // namespace gyre::predictor
