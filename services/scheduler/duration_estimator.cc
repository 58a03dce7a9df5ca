#include "services/scheduler/duration_estimator.h"

#include <algorithm>
#include <vector>

namespace gyre::scheduler {

OnlineDurationEstimator::OnlineDurationEstimator(double prior_seconds, int window)
    : prior_seconds_(prior_seconds), window_(static_cast<size_t>(std::max(1, window))) {}

double OnlineDurationEstimator::MedianOf(const std::deque<double>& samples) {
  std::vector<double> sorted(samples.begin(), samples.end());
  const size_t mid = sorted.size() / 2;
  std::nth_element(sorted.begin(), sorted.begin() + mid, sorted.end());
  if (sorted.size() % 2 == 1) return sorted[mid];
  const double upper = sorted[mid];
  return (*std::max_element(sorted.begin(), sorted.begin() + mid) + upper) / 2;
}

double OnlineDurationEstimator::EstimateSeconds(absl::string_view task_type,
                                                double declared_seconds) const {
  double estimate = prior_seconds_;
  if (declared_seconds > 0) {
    estimate = declared_seconds;
  } else if (auto it = by_type_.find(task_type); it != by_type_.end()) {
    estimate = it->second.median;
  } else if (!all_.samples.empty()) {
    estimate = all_.median;
  }
  if (!running_floor_.empty()) {
    if (auto it = running_floor_.find(task_type); it != running_floor_.end()) {
      estimate = std::max(estimate, it->second);
    }
  }
  return estimate;
}

void OnlineDurationEstimator::ObserveRunning(absl::string_view task_type, double elapsed_seconds) {
  if (!(elapsed_seconds > EstimateSeconds(task_type, 0))) return;
  running_floor_[task_type] = elapsed_seconds;
  ++generation_;
}

void OnlineDurationEstimator::ClearRunning() {
  if (running_floor_.empty()) return;
  running_floor_.clear();
  ++generation_;
}

void OnlineDurationEstimator::Observe(absl::string_view task_type, double seconds) {
  if (!(seconds >= 0)) return;  // NaN or negative: a broken measurement
  auto add = [this, seconds](Window& w) {
    w.samples.push_back(seconds);
    if (w.samples.size() > window_) w.samples.pop_front();
    w.median = MedianOf(w.samples);
  };
  add(by_type_[task_type]);
  add(all_);
  ++generation_;
}

}  // namespace gyre::scheduler
