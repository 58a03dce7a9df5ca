#include "services/predictor/load_forecast.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace gyre::predictor {
namespace {

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("ForecastQueueLoad: ", what));
}

}  // namespace

absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> ForecastQueueLoad(
    const gyre::v1::ForecastQueueLoadRequest& request, absl::Time now) {
  const double horizon = Seconds(request.horizon());
  const double step = Seconds(request.step());
  if (horizon <= 0 || horizon > absl::ToDoubleSeconds(kMaxForecastHorizon)) {
    return Invalid(
        absl::StrCat("horizon ", horizon, " s: must be in (0, 24h] (kMaxForecastHorizon)"));
  }
  if (step < absl::ToDoubleSeconds(kMinForecastStep)) {
    return Invalid(absl::StrCat("step ", step, " s: must be at least 1s (kMinForecastStep)"));
  }
  const int64_t points = static_cast<int64_t>(std::floor(horizon / step)) + 1;
  if (points > kMaxForecastPoints) {
    return Invalid(absl::StrCat(points, " points (horizon / step): more than the limit of ",
                                kMaxForecastPoints));
  }
  if (request.pending_size() > kMaxForecastTasks ||
      request.running_remaining_seconds_size() > kMaxForecastTasks) {
    return Invalid(absl::StrCat(request.pending_size(), " pending and ",
                                request.running_remaining_seconds_size(),
                                " running tasks: each is limited to ", kMaxForecastTasks));
  }
  if (request.arrival_rate_per_second() < 0 || request.arrival_task_seconds() < 0) {
    return Invalid("arrival_rate_per_second and arrival_task_seconds must not be negative");
  }
  // Point k (time k x step) counts a task busy over [start, end) when
  // start <= k x step < end: a difference array over the points.
  std::vector<double> delta(static_cast<size_t>(points) + 1, 0);
  double known_slot_seconds = 0;
  auto add = [&](double start, double end) -> bool {
    if (start < 0 || end < start || std::isnan(start) || std::isnan(end)) return false;
    known_slot_seconds += std::min(end, horizon) - std::min(start, horizon);
    const int64_t first = static_cast<int64_t>(std::ceil(start / step));
    const int64_t last = static_cast<int64_t>(std::ceil(end / step));  // exclusive
    if (first >= points || last <= first) return true;
    delta[static_cast<size_t>(first)] += 1;
    delta[static_cast<size_t>(std::min(last, points))] -= 1;
    return true;
  };
  for (double remaining : request.running_remaining_seconds()) {
    if (!add(0, remaining)) return Invalid("running_remaining_seconds: a negative time");
  }
  for (const gyre::v1::PendingTaskLoad& task : request.pending()) {
    if (!add(task.earliest_start_seconds(),
             task.earliest_start_seconds() + task.duration_seconds())) {
      return Invalid("pending: a negative earliest_start_seconds or duration_seconds");
    }
  }
  const int slots = std::max(1, request.slots_per_agent());
  const double rate = request.arrival_rate_per_second();
  const double arrival_seconds = request.arrival_task_seconds();
  gyre::v1::ForecastQueueLoadResponse response;
  double known = 0;
  double arriving_slot_seconds = 0;
  for (int64_t k = 0; k < points; ++k) {
    known += delta[static_cast<size_t>(k)];
    const double t = static_cast<double>(k) * step;
    const double arriving = rate * std::min(t, arrival_seconds);
    const double busy = known + arriving;
    gyre::v1::LoadPoint* point = response.add_points();
    *point->mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
        absl::ToUnixNanos(now + absl::Seconds(t)));
    point->set_busy_slots(busy);
    point->set_backlog(busy);
    point->set_desired_workers(std::ceil(busy / slots - 1e-9));
  }
  // Slot-seconds of arrivals over [0, horizon]: the integral of rate x min(t, d).
  const double d = std::min(arrival_seconds, horizon);
  arriving_slot_seconds = rate * (d * d / 2 + d * (horizon - d));
  const double total = known_slot_seconds + arriving_slot_seconds;
  response.set_confidence(total > 0 ? known_slot_seconds / total : 1.0);
  return response;
}

}  // namespace gyre::predictor
