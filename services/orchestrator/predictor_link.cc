#include "services/orchestrator/predictor_link.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/logging/logger.h"
#include "libs/security/grpc_credentials.h"
#include "libs/workflow/task_program.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/task_identity.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// What RecordObservations takes in one call.
constexpr size_t kMaxBatch = 10'000;

std::string OutcomeName(v1::AttemptOutcome outcome) {
  switch (outcome) {
    case v1::ATTEMPT_SUCCEEDED:
      return "succeeded";
    case v1::ATTEMPT_FAILED:
      return "failed";
    case v1::ATTEMPT_TIMED_OUT:
      return "timed_out";
    case v1::ATTEMPT_CANCELLED:
      return "cancelled";
    case v1::ATTEMPT_LOST:
      return "lost";
    default:
      return "unspecified";
  }
}

// Failures worth retrying: the predictor is down, restarting or slow. Any
// other answer (a batch it refuses) would be the same next time.
bool Transient(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

void Increment(prometheus::Counter* counter, double by) {
  if (counter != nullptr && by > 0) counter->Increment(by);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PredictorLink>> PredictorLink::Create(Options options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("predictor_address: empty (no predictor: do not link one)");
  }
  grpc::ChannelArguments arguments;
  // A restarted predictor is found again within seconds, not gRPC's default
  // of up to two minutes of reconnect backoff.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      security::NewChannel(options.address, options.tls, arguments);
  if (!channel.ok()) {
    return absl::Status(channel.status().code(), absl::StrCat("predictor_address ", options.address,
                                                              ": ", channel.status().message()));
  }
  std::shared_ptr<v1::PredictorService::StubInterface> stub =
      v1::PredictorService::NewStub(*channel);
  return std::make_unique<PredictorLink>(std::move(options), std::move(stub));
}

PredictorLink::PredictorLink(Options options,
                             std::shared_ptr<v1::PredictorService::StubInterface> stub)
    : options_(std::move(options)), stub_(std::move(stub)) {
  if (options_.metrics != nullptr) {
    prometheus::Registry& registry = *options_.metrics;
    sent_metric_ = &prometheus::BuildCounter()
                        .Name("gyre_orchestrator_predictor_observations_sent_total")
                        .Help("Attempt observations gyre-predictor acknowledged.")
                        .Register(registry)
                        .Add({});
    dropped_metric_ =
        &prometheus::BuildCounter()
             .Name("gyre_orchestrator_predictor_observations_dropped_total")
             .Help(
                 "Attempt observations dropped unsent: the buffer was full (oldest first) "
                 "or the predictor refused them for good.")
             .Register(registry)
             .Add({});
    failures_metric_ = &prometheus::BuildCounter()
                            .Name("gyre_orchestrator_predictor_send_failures_total")
                            .Help("RecordObservations calls to gyre-predictor that failed.")
                            .Register(registry)
                            .Add({});
    buffered_metric_ = &prometheus::BuildGauge()
                            .Name("gyre_orchestrator_predictor_observations_buffered")
                            .Help("Attempt observations waiting to be sent to gyre-predictor.")
                            .Register(registry)
                            .Add({});
  }
  sender_ = std::thread([this] { SendLoop(); });
  predictor_ = std::thread([this] { PredictLoop(); });
}

PredictorLink::~PredictorLink() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  StopPredictions();
  sender_.join();
}

void PredictorLink::Offer(std::vector<AttemptObservation> observations) {
  int64_t dropped = 0;
  size_t buffered = 0;
  {
    absl::MutexLock lock(&mu_);
    for (AttemptObservation& observation : observations) {
      buffer_.push_back(std::move(observation));
    }
    while (buffer_.size() > options_.max_buffered) {
      buffer_.pop_front();
      dropped++;
    }
    stats_.dropped += dropped;
    buffered = buffer_.size();
  }
  Increment(dropped_metric_, static_cast<double>(dropped));
  if (buffered_metric_ != nullptr) buffered_metric_->Set(static_cast<double>(buffered));
}

PredictorLink::Stats PredictorLink::stats() {
  absl::MutexLock lock(&mu_);
  Stats stats = stats_;
  stats.buffered = static_cast<int64_t>(buffer_.size());
  return stats;
}

bool PredictorLink::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return buffer_.empty() && !in_flight_; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

v1::RecordObservationsRequest PredictorLink::RequestOf(
    const std::vector<AttemptObservation>& observations) {
  v1::RecordObservationsRequest request;
  request.mutable_observations()->Reserve(static_cast<int>(observations.size()));
  for (const AttemptObservation& from : observations) {
    v1::ResourceObservation* to = request.add_observations();
    const v1::TaskSpec& spec = *from.spec;
    if (from.definition != nullptr) {
      to->set_workflow(from.definition->name());
      to->set_queue(!spec.queue().empty() ? spec.queue() : from.definition->default_queue());
    } else {
      to->set_queue(spec.queue());
    }
    if (to->queue().empty()) to->set_queue("default");
    to->set_task_id(spec.id());
    // Hashed here, on the link's thread: nothing of it under the engine lock.
    to->set_identity(PredictionIdentity(
        from.definition != nullptr ? absl::string_view(from.definition->name()) : "", spec,
        absl::MakeConstSpan(from.context_values)
            .subspan(0, std::min(from.execution_values, from.context_values.size()))));
    to->mutable_labels()->insert(spec.labels().begin(), spec.labels().end());
    *to->mutable_requested() = spec.resources();
    to->set_program(workflow::TaskProgram(spec));
    google::protobuf::Map<std::string, double>& values = *to->mutable_context_values();
    for (const auto& [key, value] : from.context_values) values[key] = value;
    AddTaskValues(spec, values);
    const absl::Duration wall = absl::Nanoseconds(from.wall_nanos);
    const absl::Duration cpu = absl::Nanoseconds(from.cpu_nanos);
    *to->mutable_duration() = ToProto(wall);
    *to->mutable_cpu_time() = ToProto(cpu);
    if (from.wall_nanos > 0) {
      to->set_cpu_cores(static_cast<double>(from.cpu_nanos) / static_cast<double>(from.wall_nanos));
    }
    to->set_peak_memory_bytes(from.peak_rss_bytes);
    to->set_succeeded(from.outcome == v1::ATTEMPT_SUCCEEDED);
    to->set_outcome(OutcomeName(from.outcome));
    *to->mutable_end_time() = ToProto(absl::FromUnixNanos(from.end_unix_nanos));
  }
  return request;
}

void PredictorLink::AddTaskValues(const v1::TaskSpec& spec,
                                  google::protobuf::Map<std::string, double>& values) {
  // `gyre import-wfcommons` puts each task's input_bytes and input_count
  // in its env; they win over the execution's context, as in its
  // environment.
  for (const auto& [key, value] : spec.env()) {
    double number = 0;
    if (values.size() >= AttemptObservation::kMaxContextValues && !values.contains(key)) break;
    if (absl::SimpleAtod(value, &number)) values[key] = number;
  }
}

void PredictorLink::ExecutionStarted(std::string execution,
                                     std::shared_ptr<const v1::WorkflowDefinition> definition,
                                     std::vector<std::pair<std::string, double>> context_values) {
  const bool any = std::any_of(definition->tasks().begin(), definition->tasks().end(),
                               [](const v1::TaskSpec& task) { return !task.has_resources(); });
  if (!any || !handler_) return;
  absl::MutexLock lock(&mu_);
  if (predictions_.size() >= options_.max_pending_predictions) {
    stats_.predictions_failed++;
    return;
  }
  predictions_.push_back(
      PendingPrediction{std::move(execution), std::move(definition), std::move(context_values)});
}

void PredictorLink::StopPredictions() {
  {
    absl::MutexLock lock(&mu_);
    predictions_stopping_ = true;
    if (predict_call_ != nullptr) predict_call_->TryCancel();
  }
  if (predictor_.joinable()) predictor_.join();
}

void PredictorLink::PredictLoop() {
  for (;;) {
    PendingPrediction pending;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return predictions_stopping_ || !predictions_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (predictions_stopping_) return;
      pending = std::move(predictions_.front());
      predictions_.pop_front();
    }
    Predict(pending);
  }
}

void PredictorLink::Predict(const PendingPrediction& pending) {
  // What PredictResources takes in one call.
  constexpr int kMaxTasks = 10'000;
  const v1::WorkflowDefinition& definition = *pending.definition;
  const std::string& default_queue =
      definition.default_queue().empty() ? std::string("default") : definition.default_queue();
  v1::PredictResourcesRequest request;
  request.set_workflow(definition.name());
  for (const v1::TaskSpec& spec : definition.tasks()) {
    if (spec.has_resources()) continue;
    if (request.tasks_size() == kMaxTasks) break;  // the rest run with what they declare
    v1::TaskSpec* task = request.add_tasks();
    *task = spec;
    // Named as in the observations: the queue it runs in.
    if (task->queue().empty()) task->set_queue(default_queue);
    v1::TaskContext* context = request.add_contexts();
    // The identity its attempts are reported under (RequestOf), so a
    // repeated run is answered from this task's own history.
    context->set_identity(PredictionIdentity(definition.name(), spec, pending.context_values));
    for (const auto& [key, value] : pending.context_values) {
      (*context->mutable_context_values())[key] = value;
    }
    AddTaskValues(spec, *context->mutable_context_values());
  }
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + options_.predict_deadline));
  {
    absl::MutexLock lock(&mu_);
    if (predictions_stopping_) return;
    predict_call_ = &call;
  }
  v1::PredictResourcesResponse response;
  grpc::Status result;
  absl::Notification done;
  stub_->async()->PredictResources(&call, &request, &response, [&](grpc::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  {
    absl::MutexLock lock(&mu_);
    predict_call_ = nullptr;
    if (!result.ok() || response.predictions_size() != request.tasks_size()) {
      stats_.predictions_failed++;
    } else {
      stats_.predictions_applied++;
    }
  }
  if (!result.ok() || response.predictions_size() != request.tasks_size()) {
    logging::Debug("no predictions; tasks run with what they declare",
                   {{"execution", pending.execution}, {"error", result.error_message()}});
    return;
  }
  std::vector<std::pair<std::string, TaskPrediction>> predictions;
  predictions.reserve(static_cast<size_t>(response.predictions_size()));
  for (int i = 0; i < response.predictions_size(); ++i) {
    const v1::ResourcePrediction& from = response.predictions(i);
    TaskPrediction prediction;
    prediction.duration_seconds = from.duration_seconds().value();
    // The prior (nothing observed for that metric at any level: builtins
    // and traces measure no memory or CPU) is "no idea", not a need:
    // reserving its 1 core and ~10 GiB p90 would run such tasks one at a
    // time per agent. Nothing is reserved for it, as for a task declaring none.
    prediction.cpu = from.cpu().level() == v1::PREDICTION_LEVEL_PRIOR ? 0 : from.cpu().value();
    prediction.memory_bytes = from.memory_bytes().level() == v1::PREDICTION_LEVEL_PRIOR
                                  ? 0
                                  : static_cast<int64_t>(from.memory_bytes().p90());
    predictions.emplace_back(request.tasks(i).id(), std::move(prediction));
  }
  handler_(pending.execution, std::move(predictions));
}

grpc::Status PredictorLink::Send(const v1::RecordObservationsRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_deadline));
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "orchestrator stopping");
    call_ = &context;
  }
  v1::RecordObservationsResponse response;
  grpc::Status result;
  absl::Notification done;
  stub_->async()->RecordObservations(&context, &request, &response, [&](grpc::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  absl::MutexLock lock(&mu_);
  call_ = nullptr;
  return result;
}

void PredictorLink::SendLoop() {
  const size_t batch_size = std::clamp<size_t>(options_.batch_size, 1, kMaxBatch);
  absl::Duration backoff = options_.min_backoff;
  bool down = false;  // logged once per outage, not per retry
  std::vector<AttemptObservation> batch;
  for (;;) {
    size_t buffered = 0;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !buffer_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      const size_t take = std::min(batch_size, buffer_.size());
      batch.clear();
      batch.reserve(take);
      for (size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(buffer_.front()));
        buffer_.pop_front();
      }
      in_flight_ = true;
      buffered = buffer_.size();
    }
    if (buffered_metric_ != nullptr) buffered_metric_->Set(static_cast<double>(buffered));
    // Built here, off the engine lock; the same request is retried.
    const v1::RecordObservationsRequest request = RequestOf(batch);
    for (;;) {
      const grpc::Status status = Send(request);
      if (status.ok()) {
        if (down) logging::Info("gyre-predictor reachable again; observations are forwarded");
        down = false;
        backoff = options_.min_backoff;
        Increment(sent_metric_, static_cast<double>(batch.size()));
        absl::MutexLock lock(&mu_);
        stats_.sent += static_cast<int64_t>(batch.size());
        in_flight_ = false;
        break;
      }
      Increment(failures_metric_, 1);
      {
        absl::MutexLock lock(&mu_);
        stats_.send_failures++;
      }
      if (!Transient(status)) {
        logging::Warn("gyre-predictor refused a batch of observations; it is dropped",
                      {{"address", options_.address},
                       {"observations", static_cast<int64_t>(batch.size())},
                       {"error", status.error_message()}});
        Increment(dropped_metric_, static_cast<double>(batch.size()));
        absl::MutexLock lock(&mu_);
        stats_.dropped += static_cast<int64_t>(batch.size());
        in_flight_ = false;
        break;
      }
      if (!down) {
        logging::Warn(
            "gyre-predictor unreachable; observations are buffered and retried "
            "(the oldest dropped past predictor_observation_buffer)",
            {{"address", options_.address}, {"error", status.error_message()}});
        down = true;
      }
      absl::MutexLock lock(&mu_);
      // Interrupted by shutdown only.
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      if (stopping_) {
        in_flight_ = false;
        return;
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
}

}  // namespace gyre::orchestrator
