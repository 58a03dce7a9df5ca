#ifndef GYRE_SERVICES_ORCHESTRATOR_PREDICTOR_LINK_H_
#define GYRE_SERVICES_ORCHESTRATOR_PREDICTOR_LINK_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/security/tls_config.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/orchestrator/attempt_observation.h"
#include "services/orchestrator/execution_entry.h"

namespace gyre::orchestrator {

// The orchestrator's link to gyre-predictor (predictor_address). Owns: the
// channel (security::NewChannel, so the TLS settings apply) and a stub that
// other components may be handed; the buffer of observations waiting to be
// sent and the thread that sends them in batches with RecordObservations.
//
// The engine never waits on it: Offer only appends to a bounded buffer
// under a leaf lock. While the predictor is down or slow, the batch in
// flight is retried with exponential backoff and new observations queue up
// to `max_buffered`; past that the oldest are dropped and counted
// (gyre_orchestrator_predictor_observations_dropped_total). Observations
// still buffered when the process stops are lost: they are a learning
// signal, not state (the results themselves are durable in the store).
// Thread-safe.
//
// Predictions: for each started execution (PredictionSource), one
// PredictResources call for its tasks that declare no resources, made by a
// second thread with a short deadline (`predict_deadline`); the answer goes
// to the handler (WorkflowEngine::ApplyPredictions). No answer in time, or
// no predictor: the tasks run with what they declare, as without a
// predictor. At most `max_pending_predictions` executions wait to be asked;
// more are not asked (counted).
class PredictorLink : public ObservationSink, public PredictionSource {
 public:
  struct Options {
    // host:port of gyre-predictor.
    std::string address;
    security::TlsConfig tls;
    // Observations held while they cannot be sent, beyond the batch in
    // flight (predictor_observation_buffer).
    size_t max_buffered = 100'000;
    // Observations per RecordObservations call (the service takes 10,000).
    size_t batch_size = 1'000;
    // Deadline of one RecordObservations call.
    absl::Duration rpc_deadline = absl::Seconds(5);
    // Backoff between retries of a failed batch: doubles from min to max.
    absl::Duration min_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // Deadline of one PredictResources call, and executions waiting for one.
    absl::Duration predict_deadline = absl::Seconds(2);
    size_t max_pending_predictions = 1'000;
    // Where the link's counters go; optional.
    prometheus::Registry* metrics = nullptr;
  };

  // Dials `options.address` (lazily: a predictor that is not up yet is not
  // an error) and starts the sender. InvalidArgument for an empty address
  // or a batch size out of 1..10,000; the TLS settings' errors.
  static absl::StatusOr<std::unique_ptr<PredictorLink>> Create(Options options);
  // Over a given stub (tests, or a channel made elsewhere).
  PredictorLink(Options options, std::shared_ptr<gyre::v1::PredictorService::StubInterface> stub);
  ~PredictorLink() override;

  // Queues `observations` for sending; never blocks on I/O (see above).
  void Offer(std::vector<AttemptObservation> observations) override;

  // Where predictions go (set once, before the first execution starts).
  using PredictionHandler = std::function<void(
      const std::string& execution, std::vector<std::pair<std::string, TaskPrediction>>)>;
  void set_prediction_handler(PredictionHandler handler) { handler_ = std::move(handler); }
  // Stops asking for predictions and waits for a handler call in progress:
  // called before whatever the handler uses goes away.
  void StopPredictions();
  // Queues a PredictResources call for the execution's tasks that declare
  // no resources; never blocks.
  void ExecutionStarted(std::string execution,
                        std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
                        std::vector<std::pair<std::string, double>> context_values) override;

  // The predictor's stub, for other components (predictions, forecasts).
  const std::shared_ptr<gyre::v1::PredictorService::StubInterface>& stub() const { return stub_; }

  // Counts since start, for tests and the bench (the metrics carry them too).
  struct Stats {
    int64_t sent = 0;                 // observations the predictor acknowledged
    int64_t dropped = 0;              // dropped: buffer full, or refused for good
    int64_t send_failures = 0;        // RecordObservations calls that failed
    int64_t buffered = 0;             // waiting now (not counting the batch in flight)
    int64_t predictions_applied = 0;  // executions whose tasks got predictions
    int64_t predictions_failed = 0;   // PredictResources calls that failed or were skipped
  };
  Stats stats();

  // Waits until nothing is buffered or in flight, or `timeout` passes;
  // returns whether everything was sent (tests, the bench).
  bool Flush(absl::Duration timeout);

  // The request for `observations` (no I/O; exposed for tests).
  static gyre::v1::RecordObservationsRequest RequestOf(
      const std::vector<AttemptObservation>& observations);

  // Adds the task's numeric env values to `values` (they win, as in its
  // environment), within AttemptObservation::kMaxContextValues.
  static void AddTaskValues(const gyre::v1::TaskSpec& spec,
                            google::protobuf::Map<std::string, double>& values);

 private:
  void SendLoop();
  void PredictLoop();
  // One execution waiting for its predictions.
  struct PendingPrediction {
    std::string execution;
    std::shared_ptr<const gyre::v1::WorkflowDefinition> definition;
    std::vector<std::pair<std::string, double>> context_values;
  };
  void Predict(const PendingPrediction& pending);
  // One RecordObservations call with the callback API; waits for it on the
  // sender thread (cancelled at shutdown).
  grpc::Status Send(const gyre::v1::RecordObservationsRequest& request);

  const Options options_;
  const std::shared_ptr<gyre::v1::PredictorService::StubInterface> stub_;
  prometheus::Counter* sent_metric_ = nullptr;
  prometheus::Counter* dropped_metric_ = nullptr;
  prometheus::Counter* failures_metric_ = nullptr;
  prometheus::Gauge* buffered_metric_ = nullptr;

  absl::Mutex mu_;
  std::deque<AttemptObservation> buffer_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool predictions_stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // the call in flight
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingPrediction> predictions_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* predict_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  PredictionHandler handler_;
  std::thread sender_;
  std::thread predictor_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_PREDICTOR_LINK_H_
