#include "services/orchestrator/load_forecaster.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "libs/common/status_mapping.h"
#include "prometheus/counter.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  out->set_seconds(absl::ToInt64Seconds(d));
}

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// The most workers any point within `horizon` of the first asks for (the
// first point is the predictor's "now").
double PeakWithin(const v1::ForecastQueueLoadResponse& forecast, absl::Duration horizon) {
  double peak = 0;
  if (forecast.points().empty()) return peak;
  const absl::Time start = TimeOf(forecast.points(0).time());
  for (const v1::LoadPoint& point : forecast.points()) {
    if (TimeOf(point.time()) - start > horizon) break;
    peak = std::max(peak, point.desired_workers());
  }
  return peak;
}

}  // namespace

LoadForecaster::LoadForecaster(WorkflowEngine* engine,
                               std::shared_ptr<v1::PredictorService::StubInterface> predictor,
                               Options options)
    : engine_(engine), predictor_(std::move(predictor)), options_(std::move(options)) {
  if (options_.metrics == nullptr) return;
  gauge_family_ = &prometheus::BuildGauge()
                       .Name("orchestrator_forecast_workers")
                       .Help(
                           "Agents a worker type is forecast to need within the horizon (the "
                           "peak of gyre-predictor's ForecastQueueLoad), clamped to the pool's "
                           "min and max like orchestrator_desired_workers.")
                       .Register(*options_.metrics);
  errors_ = &prometheus::BuildCounter()
                 .Name("gyre_orchestrator_forecast_errors_total")
                 .Help("ForecastQueueLoad calls that failed (the gauges kept their values).")
                 .Register(*options_.metrics)
                 .Add({});
}

LoadForecaster::~LoadForecaster() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LoadForecaster::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void LoadForecaster::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.Unlock();
    RunOnce().IgnoreError();  // counted and logged by RunOnce
    mu_.Lock();
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval);
  }
}

absl::Status LoadForecaster::RunOnce() {
  const LoadSnapshot snapshot = engine_->SnapshotLoad(options_.snapshot);
  // The other members' forecasts as the last lease round read them.
  const QueueBacklogs others =
      options_.cluster != nullptr ? options_.cluster->Others() : QueueBacklogs();
  std::map<std::string, ClusterBacklog::OwnForecast> own;
  absl::Status first_error;
  for (const auto& [worker_type, load] : snapshot) {
    v1::ForecastQueueLoadRequest request;
    request.set_worker_type(worker_type);
    SetDuration(kLongHorizon, request.mutable_horizon());
    SetDuration(kStep, request.mutable_step());
    for (const v1::PendingTaskLoad& task : load.pending) *request.add_pending() = task;
    for (double remaining : load.running_remaining_seconds) {
      request.add_running_remaining_seconds(remaining);
    }
    request.set_slots_per_agent(load.slots_per_agent);
    request.set_arrival_rate_per_second(load.arrival_rate_per_second);
    request.set_arrival_task_seconds(load.arrival_task_seconds);
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_deadline));
    v1::ForecastQueueLoadResponse forecast;
    grpc::Status status = predictor_->ForecastQueueLoad(&call, request, &forecast);
    if (!status.ok()) {
      if (errors_ != nullptr) errors_->Increment();
      if (first_error.ok()) {
        first_error = absl::Status(FromGrpcStatus(status).code(),
                                   absl::StrCat("ForecastQueueLoad for worker type \"", worker_type,
                                                "\": ", status.error_message()));
      }
      continue;
    }
    ClusterBacklog::OwnForecast& mine = own[worker_type];
    mine.workers_60s = PeakWithin(forecast, kShortHorizon);
    mine.workers_300s = PeakWithin(forecast, kLongHorizon);
    double short_workers = mine.workers_60s;
    double long_workers = mine.workers_300s;
    if (auto other = others.find(worker_type); other != others.end()) {
      // Peaks summed: at least the peak of the sum (they may fall at
      // different moments), so the pool errs on the side of capacity.
      short_workers += other->second.forecast_workers_60s;
      long_workers += other->second.forecast_workers_300s;
    }
    Export(worker_type, short_workers, long_workers);
  }
  // A worker type whose call failed keeps no forecast of this member in the
  // heartbeat (its gauge keeps its value, as before).
  if (options_.cluster != nullptr) options_.cluster->SetOwnForecasts(std::move(own));
  return first_error;
}

void LoadForecaster::Export(const std::string& worker_type, double short_workers,
                            double long_workers) {
  if (gauge_family_ == nullptr) return;
  auto pool = options_.pools.find(worker_type);
  const WorkerPoolPolicy& policy =
      pool != options_.pools.end() ? pool->second : options_.default_pool;
  auto clamp = [&](double workers) {
    return std::clamp(std::ceil(workers), static_cast<double>(policy.min_workers),
                      static_cast<double>(policy.max_workers));
  };
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = gauges_.try_emplace(worker_type);
  if (inserted) {
    it->second.first = &gauge_family_->Add({{"worker_type", worker_type}, {"horizon", "60s"}});
    it->second.second = &gauge_family_->Add({{"worker_type", worker_type}, {"horizon", "300s"}});
  }
  it->second.first->Set(clamp(short_workers));
  it->second.second->Set(clamp(long_workers));
}

}  // namespace gyre::orchestrator
