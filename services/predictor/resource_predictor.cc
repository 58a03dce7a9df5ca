#include "services/predictor/resource_predictor.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/common/task_cost.h"
#include "libs/logging/logger.h"
#include "libs/workflow/task_program.h"

namespace gyre::predictor {
namespace {

gyre::v1::PredictionLevel ToProto(Level level) {
  switch (level) {
    case Level::kIdentity:
      return gyre::v1::PREDICTION_LEVEL_IDENTITY;
    case Level::kTaskInWorkflow:
      return gyre::v1::PREDICTION_LEVEL_TASK;
    case Level::kProgram:
      return gyre::v1::PREDICTION_LEVEL_PROGRAM;
    case Level::kQueue:
      return gyre::v1::PREDICTION_LEVEL_QUEUE;
    case Level::kGlobal:
      return gyre::v1::PREDICTION_LEVEL_GLOBAL;
    case Level::kNone:
      break;
  }
  return gyre::v1::PREDICTION_LEVEL_PRIOR;
}

void ToProto(const Estimate& estimate, gyre::v1::PredictedValue* out) {
  out->set_value(estimate.value);
  out->set_p10(estimate.p10);
  out->set_p90(estimate.p90);
  out->set_level(ToProto(estimate.level));
  out->set_observations(estimate.observations);
  // A p10–p90 band as wide as the cold-start prior's (e^6, ~400x) is no
  // confidence; a band of zero width is full confidence.
  const double width = estimate.p10 > 0 ? std::log(estimate.p90 / estimate.p10) : 6.0;
  out->set_confidence(std::clamp(1.0 - width / 6.0, 0.0, 1.0));
}

double InputBytesOf(const google::protobuf::Map<std::string, double>& values) {
  auto it = values.find("input_bytes");
  return it == values.end() ? -1 : it->second;
}

}  // namespace

ResourcePredictor::ResourcePredictor(ResourcePredictorOptions options,
                                     std::unique_ptr<ModelStore> store)
    : options_(std::move(options)), store_(std::move(store)), model_(options_.model) {}

absl::StatusOr<std::unique_ptr<ResourcePredictor>> ResourcePredictor::Open(
    ResourcePredictorOptions options, std::unique_ptr<ModelStore> store) {
  std::unique_ptr<ResourcePredictor> predictor(
      new ResourcePredictor(std::move(options), std::move(store)));
  if (predictor->store_ == nullptr) return predictor;
  ModelStore& models = *predictor->store_;
  absl::StatusOr<SavedModel> saved = models.LoadNewest();
  if (absl::IsNotFound(saved.status())) return predictor;
  absl::Status status;
  if (saved.ok()) {
    absl::MutexLock lock(&predictor->mu_);
    // Bytes as saved, yet not a model this binary reads (Parse then leaves
    // the model empty): set aside below like a corrupt one.
    status = predictor->model_.Parse(saved->model);
    predictor->saved_at_observation_ = predictor->model_.observation_count();
  } else if (absl::IsDataLoss(saved.status())) {
    status = saved.status();  // the store has set it aside
  } else {
    return saved.status();
  }
  if (status.ok()) return predictor;
  predictor->load_warning_ =
      absl::StrCat("saved model in ", models.Describe(), " not loaded: ", status.message(),
                   "; starting with an empty model");
  logging::Warn("predictor model not loaded",
                {{"store", models.Describe()}, {"error", std::string(status.message())}});
  if (saved.ok()) {
    if (absl::Status set_aside = models.SetAside(saved->version); !set_aside.ok()) {
      return set_aside;
    }
  }
  return predictor;
}

double PredictedCost(const gyre::v1::WorkerPrice& price, const gyre::v1::TaskSpec& spec,
                     const gyre::v1::ResourcePrediction& prediction) {
  ResourceHold hold;
  hold.cores = spec.resources().cpu() > 0 ? spec.resources().cpu() : prediction.cpu().value();
  hold.memory_bytes = spec.resources().memory_bytes() > 0
                          ? static_cast<double>(spec.resources().memory_bytes())
                          : prediction.memory_bytes().value();
  hold.gpus = spec.resources().gpus();
  hold.seconds = prediction.duration_seconds().value();
  return TaskCost({price.core_hour(), price.gib_hour(), price.gpu_hour()}, hold);
}

TaskFeatures ResourcePredictor::FeaturesOf(absl::string_view workflow,
                                           const gyre::v1::TaskSpec& spec,
                                           const gyre::v1::TaskContext* context) {
  TaskFeatures features;
  features.workflow = std::string(workflow);
  features.task_id = spec.id();
  features.program = workflow::TaskProgram(spec);
  features.queue = spec.queue();
  if (context != nullptr) {
    features.identity = context->identity();
    features.input_bytes = InputBytesOf(context->context_values());
  }
  return features;
}

Observation ResourcePredictor::ObservationOf(const gyre::v1::ResourceObservation& observation) {
  Observation out;
  out.task.identity = observation.identity();
  out.task.workflow = observation.workflow();
  out.task.task_id = observation.task_id();
  out.task.program = observation.program();
  out.task.queue = observation.queue();
  out.task.input_bytes = InputBytesOf(observation.context_values());
  out.duration_seconds = observation.duration().seconds() + observation.duration().nanos() * 1e-9;
  out.memory_bytes = static_cast<double>(observation.peak_memory_bytes());
  out.cpu_cores = observation.cpu_cores();
  out.end_time_seconds = observation.end_time().seconds();
  return out;
}

absl::StatusOr<gyre::v1::PredictResourcesResponse> ResourcePredictor::Predict(
    const gyre::v1::PredictResourcesRequest& request) const {
  if (request.tasks_size() > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat("PredictResources: ", request.tasks_size(),
                                                   " tasks, more than the limit of ", kMaxBatch));
  }
  if (request.contexts_size() != 0 && request.contexts_size() != request.tasks_size()) {
    return absl::InvalidArgumentError(absl::StrCat("PredictResources: ", request.contexts_size(),
                                                   " contexts for ", request.tasks_size(),
                                                   " tasks (give none or one per task)"));
  }
  std::vector<TaskFeatures> features;
  features.reserve(request.tasks_size());
  for (int i = 0; i < request.tasks_size(); ++i) {
    features.push_back(FeaturesOf(request.workflow(), request.tasks(i),
                                  request.contexts_size() > 0 ? &request.contexts(i) : nullptr));
  }
  std::vector<Prediction> predictions(features.size());
  {
    absl::ReaderMutexLock lock(&mu_);
    for (size_t i = 0; i < features.size(); ++i) predictions[i] = model_.Predict(features[i]);
  }
  gyre::v1::PredictResourcesResponse response;
  response.mutable_predictions()->Reserve(request.tasks_size());
  for (size_t i = 0; i < features.size(); ++i) {
    gyre::v1::ResourcePrediction* out = response.add_predictions();
    out->set_task_id(features[i].task_id);
    ToProto(predictions[i].cpu_cores, out->mutable_cpu());
    ToProto(predictions[i].memory_bytes, out->mutable_memory_bytes());
    ToProto(predictions[i].duration_seconds, out->mutable_duration_seconds());
    out->set_observations(predictions[i].duration_seconds.observations);
    auto price = request.worker_prices().find(request.tasks(i).queue());
    if (price != request.worker_prices().end()) {
      out->set_priced(true);
      out->set_cost(PredictedCost(price->second, request.tasks(i), *out));
      response.set_total_cost(response.total_cost() + out->cost());
    }
  }
  return response;
}

absl::StatusOr<int64_t> ResourcePredictor::Record(
    const gyre::v1::RecordObservationsRequest& request) {
  if (request.observations_size() > kMaxBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("RecordObservations: ", request.observations_size(),
                     " observations, more than the limit of ", kMaxBatch));
  }
  std::vector<Observation> observations;
  observations.reserve(request.observations_size());
  for (const gyre::v1::ResourceObservation& observation : request.observations()) {
    // A failed attempt's duration and memory say how it failed, not what
    // the task needs: only successes teach the model.
    if (!observation.succeeded()) continue;
    observations.push_back(ObservationOf(observation));
  }
  absl::MutexLock lock(&mu_);
  model_.ObserveBatch(observations);
  return static_cast<int64_t>(observations.size());
}

absl::Status ResourcePredictor::Save() {
  if (!store_) return absl::OkStatus();
  absl::MutexLock save_lock(&save_mu_);
  std::string state;
  int64_t observations = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    observations = model_.observation_count();
    if (observations == saved_at_observation_) return absl::OkStatus();
    state = model_.Serialize();
  }
  if (absl::Status status = store_->Save(state, observations); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  saved_at_observation_ = observations;
  return absl::OkStatus();
}

int64_t ResourcePredictor::observation_count() const {
  absl::ReaderMutexLock lock(&mu_);
  return model_.observation_count();
}

}  // namespace gyre::predictor
