#ifndef GYRE_SERVICES_SCHEDULER_BATCH_SCHEDULER_H_
#define GYRE_SERVICES_SCHEDULER_BATCH_SCHEDULER_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/scheduler_service.pb.h"
#include "services/scheduler/best_fit_placer.h"
#include "services/scheduler/duration_estimator.h"
#include "services/scheduler/task_ranker.h"

namespace gyre::scheduler {

// Bounds of one RankAndPlace batch (named in the errors).
inline constexpr int kMaxBatchTasks = 10'000;
inline constexpr int kMaxBatchAgents = 10'000;
inline constexpr int kMaxBatchFinishedRuns = 10'000;

// The logic behind RankAndPlace: fills in durations (the request's, else
// the estimator's), ranks the batch with TaskRanker, places it with
// BestFitPlacer and says why and until when the rest waits. The estimator
// learns from the runs each request reports. Thread-safe: the estimator is
// the only shared state, behind a mutex held only while reading or feeding
// it, never while ranking or placing.
class BatchScheduler {
 public:
  explicit BatchScheduler(RankingConfig config = {},
                          std::unique_ptr<DurationEstimator> estimator = nullptr);

  // InvalidArgument naming the bound or field for a malformed batch.
  absl::StatusOr<v1::RankAndPlaceResponse> RankAndPlace(const v1::RankAndPlaceRequest& request);
  // The same into `response` (cleared first), which may live on the call's
  // arena: the gRPC handler's way, with no copy of the answer.
  absl::Status RankAndPlace(const v1::RankAndPlaceRequest& request,
                            v1::RankAndPlaceResponse* response);

 private:
  const TaskRanker ranker_;
  const BestFitPlacer placer_{};
  absl::Mutex mutex_;
  std::unique_ptr<DurationEstimator> estimator_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_BATCH_SCHEDULER_H_
