#ifndef GYRE_SERVICES_ORCHESTRATOR_LOAD_FORECASTER_H_
#define GYRE_SERVICES_ORCHESTRATOR_LOAD_FORECASTER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/orchestrator/desired_workers.h"
#include "services/orchestrator/load_snapshot.h"

namespace gyre::orchestrator {

class ClusterBacklog;
class WorkflowEngine;

// Exports orchestrator_forecast_workers{worker_type, horizon="60s"|"300s"}:
// the most workers each worker type is forecast to need within the next 60
// s and 300 s, clamped by its pool's min and max (worker_pools, as
// orchestrator_desired_workers), so an autoscaler can start agents before
// the backlog arrives.
//
// Every `interval` its thread takes a LoadSnapshot from the engine (under the
// engine lock, no I/O: WorkflowEngine::SnapshotLoad), then, with no lock
// held, asks the predictor's ForecastQueueLoad for each worker type and
// sets the gauges. A predictor that is down or slow costs the engine
// nothing: the call has a deadline, the gauges keep their last values and
// the failure is counted (gyre_orchestrator_forecast_errors_total).
// Thread-safe; the thread stops in the destructor.
class LoadForecaster {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(15);
    LoadSnapshotOptions snapshot;
    std::map<std::string, WorkerPoolPolicy> pools;
    WorkerPoolPolicy default_pool;
    absl::Duration rpc_deadline = absl::Seconds(5);
    prometheus::Registry* metrics = nullptr;  // optional
    // Several orchestrators (postgres_sharding): each forecasts its own
    // executions' load, publishes it here for the heartbeat and exports the
    // sum over the live members, so every replica exports the cluster's
    // figure as orchestrator_desired_workers does. Not owned; optional.
    ClusterBacklog* cluster = nullptr;
  };

  // The points' spacing and the two horizons exported.
  static constexpr absl::Duration kStep = absl::Seconds(10);
  static constexpr absl::Duration kShortHorizon = absl::Seconds(60);
  static constexpr absl::Duration kLongHorizon = absl::Seconds(300);

  // `engine` is not owned and must outlive this; `predictor` is the hook
  // (the predictor link's stub, or any other).
  LoadForecaster(WorkflowEngine* engine,
                 std::shared_ptr<gyre::v1::PredictorService::StubInterface> predictor,
                 Options options);
  ~LoadForecaster();

  // Starts the thread (first round at once).
  void Start();
  // One round now, on the caller's thread: the first failed call's status,
  // else OK (tests; the thread calls it too).
  absl::Status RunOnce();

 private:
  void Loop();
  void Export(const std::string& worker_type, double short_workers, double long_workers);

  WorkflowEngine* const engine_;
  const std::shared_ptr<gyre::v1::PredictorService::StubInterface> predictor_;
  const Options options_;
  prometheus::Family<prometheus::Gauge>* gauge_family_ = nullptr;
  prometheus::Counter* errors_ = nullptr;
  absl::Mutex mu_;
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> gauges_
      ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_LOAD_FORECASTER_H_
