#ifndef GYRE_SERVICES_PREDICTOR_RESOURCE_PREDICTOR_H_
#define GYRE_SERVICES_PREDICTOR_RESOURCE_PREDICTOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/predictor_service.pb.h"
#include "services/predictor/model_store.h"
#include "services/predictor/resource_model.h"

namespace gyre::predictor {

// The predicted cost of one run of `spec` at `price` (libs/common/task_cost.h's
// formula): the declared cores and memory when the spec declares them, else
// the predicted ones; the declared GPUs; the predicted duration.
double PredictedCost(const gyre::v1::WorkerPrice& price, const gyre::v1::TaskSpec& spec,
                     const gyre::v1::ResourcePrediction& prediction);

struct ResourcePredictorOptions {
  ResourceModelOptions model;
};

// The predictor's domain logic behind PredictorService: validates requests,
// turns task specs and observations into the model's features, and keeps
// the model in a ModelStore (snapshot files or PostgreSQL; none: in memory
// only).
//
// Persistence: Save() hands the whole serialized model to the store when
// it changed since the last save. Open() loads the newest saved model; a
// corrupt one (the store's checksum) or one the model cannot parse is set
// aside, logged as a warning and the model starts empty, so a bad saved
// model never keeps the service down. A store that cannot be read at all
// fails Open.
//
// Thread-safe: predictions share a reader lock, recording takes the writer
// lock for the batch's model updates only; Save() serializes under the
// reader lock and writes to the store with no lock held.
class ResourcePredictor {
 public:
  // The most tasks or observations one request may carry.
  static constexpr int kMaxBatch = 10000;

  // `store` may be null: the model is then kept in memory only.
  static absl::StatusOr<std::unique_ptr<ResourcePredictor>> Open(
      ResourcePredictorOptions options, std::unique_ptr<ModelStore> store = nullptr);

  absl::StatusOr<gyre::v1::PredictResourcesResponse> Predict(
      const gyre::v1::PredictResourcesRequest& request) const;

  // Returns how many observations were recorded (all of a valid batch).
  absl::StatusOr<int64_t> Record(const gyre::v1::RecordObservationsRequest& request);

  // Writes the model when it changed since the last save.
  absl::Status Save();

  int64_t observation_count() const;
  // Why the saved model was not loaded at start, or empty.
  const std::string& load_warning() const { return load_warning_; }

  // The features of a task spec / an observation (exposed for tests).
  static TaskFeatures FeaturesOf(absl::string_view workflow, const gyre::v1::TaskSpec& spec,
                                 const gyre::v1::TaskContext* context);
  static Observation ObservationOf(const gyre::v1::ResourceObservation& observation);

 private:
  ResourcePredictor(ResourcePredictorOptions options, std::unique_ptr<ModelStore> store);

  const ResourcePredictorOptions options_;
  const std::unique_ptr<ModelStore> store_;
  std::string load_warning_;
  mutable absl::Mutex mu_;
  ResourceModel model_ ABSL_GUARDED_BY(mu_);
  int64_t saved_at_observation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex save_mu_;  // one Save() at a time, so saved observation counts only grow
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_RESOURCE_PREDICTOR_H_
