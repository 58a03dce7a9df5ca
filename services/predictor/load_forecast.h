#ifndef GYRE_SERVICES_PREDICTOR_LOAD_FORECAST_H_
#define GYRE_SERVICES_PREDICTOR_LOAD_FORECAST_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gyre/v1/predictor_service.pb.h"

namespace gyre::predictor {

// Limits of a ForecastQueueLoadRequest (each named in its error).
inline constexpr absl::Duration kMaxForecastHorizon = absl::Hours(24);
inline constexpr absl::Duration kMinForecastStep = absl::Seconds(1);
inline constexpr int kMaxForecastPoints = 10000;
inline constexpr int kMaxForecastTasks = 100000;

// The expected busy slots of one worker type at now, now + step, ... up to
// now + horizon, if every task started as early as its DAG allows
// (capacity unlimited: the forecast says what the pool should have):
//   busy(t) = running tasks with remaining > t
//           + pending tasks with earliest_start <= t < earliest_start + duration
//           + arrival_rate x min(t, arrival_task_seconds)   (steady arrivals)
// desired_workers = ceil(busy / slots_per_agent); backlog = busy. The
// confidence is the share of the busy slot-seconds over the horizon that
// comes from known tasks rather than from extrapolated arrivals.
// O(tasks + points). InvalidArgument naming the limit for a bad horizon,
// step, point count, task count or a negative time.
absl::StatusOr<gyre::v1::ForecastQueueLoadResponse> ForecastQueueLoad(
    const gyre::v1::ForecastQueueLoadRequest& request, absl::Time now);

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_LOAD_FORECAST_H_
