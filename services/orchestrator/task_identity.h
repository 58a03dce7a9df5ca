#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_IDENTITY_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_IDENTITY_H_

#include <map>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

#include "gyre/v1/workflow.pb.h"

namespace gyre::orchestrator {

// The execution identity of a task: a 128-bit content hash (32 hex digits)
// of the task's spec (deterministic protobuf serialization) and the context
// it runs with, keys sorted. Equal spec and context give equal identities in
// every execution and process; any change gives a different one. Not a
// cryptographic hash: identities are compared, never trusted as secrets.
std::string TaskIdentity(const gyre::v1::TaskSpec& spec,
                         const std::map<std::string, std::string>& context);

// The identity gyre-predictor learns and predicts a task under (its
// "identity" level): the same hash over the workflow's name, the task's spec
// and the numeric values of the execution's context, in the given order (the
// engine gives them sorted by key, as exec.context holds them). Only what
// is known before the task runs goes in — not its ancestors' outputs —, so
// the orchestrator computes the same identity when it asks for a prediction
// as when it reports the attempt, and a repeated run of the same workflow
// with the same inputs lands on the same key. Computed by the predictor
// link on its own thread, never under the engine lock.
std::string PredictionIdentity(absl::string_view workflow, const gyre::v1::TaskSpec& spec,
                               absl::Span<const std::pair<std::string, double>> context_values);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_IDENTITY_H_
