#ifndef GYRE_SERVICES_ORCHESTRATOR_ATTEMPT_OBSERVATION_H_
#define GYRE_SERVICES_ORCHESTRATOR_ATTEMPT_OBSERVATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gyre/v1/execution.pb.h"
#include "gyre/v1/workflow.pb.h"

namespace gyre::orchestrator {

// What one finished attempt used, as the engine hands it to the predictor
// link: taken under the engine lock, so it holds only what must be copied
// there (the numbers and the numeric context values) and shares the rest
// (the definition, whose spec is immutable); the link turns it into a
// gyre::v1::ResourceObservation on its own thread.
struct AttemptObservation {
  // The definition the task's spec belongs to (kept alive by this).
  std::shared_ptr<const gyre::v1::WorkflowDefinition> definition;
  const gyre::v1::TaskSpec* spec = nullptr;  // owned by `definition` (or the task library)
  // Numeric values of the execution's context (sorted by key), then of the
  // task's inherited context (ancestors' outputs, which win on a repeated
  // key, as in its environment), at most kMaxContextValues together.
  std::vector<std::pair<std::string, double>> context_values;
  // How many of context_values are the execution's: what the predictor
  // link hashes into the task's PredictionIdentity (task_identity.h).
  size_t execution_values = 0;
  int64_t wall_nanos = 0;
  int64_t cpu_nanos = 0;
  int64_t peak_rss_bytes = 0;
  int64_t end_unix_nanos = 0;
  gyre::v1::AttemptOutcome outcome = gyre::v1::ATTEMPT_OUTCOME_UNSPECIFIED;

  // Context values beyond this many are not forwarded: the copy is made
  // under the engine lock.
  static constexpr size_t kMaxContextValues = 32;
};

// Where the engine hands observations once the attempts' results are
// durable. Offer is called from the store's completion, which may run under
// the engine lock: it must only queue (no I/O, no waiting on anything but a
// short leaf lock).
class ObservationSink {
 public:
  virtual ~ObservationSink() = default;
  virtual void Offer(std::vector<AttemptObservation> observations) = 0;
};

// Where the engine asks for predictions of a started execution's tasks
// (the predictor link), whose answer comes back through
// WorkflowEngine::ApplyPredictions.
class PredictionSource {
 public:
  virtual ~PredictionSource() = default;
  // `execution` ("executions/{e}") is durable; `definition` its tasks (only
  // those declaring no resources are asked for); `context_values` the
  // numeric values of its context (at most
  // AttemptObservation::kMaxContextValues). Called off the engine lock;
  // must not block.
  virtual void ExecutionStarted(std::string execution,
                                std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
                                std::vector<std::pair<std::string, double>> context_values) = 0;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ATTEMPT_OBSERVATION_H_
