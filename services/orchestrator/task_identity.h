#ifndef GYRE_SERVICES_ORCHESTRATOR_TASK_IDENTITY_H_
#define GYRE_SERVICES_ORCHESTRATOR_TASK_IDENTITY_H_

#include <map>
#include <string>

#include "gyre/v1/workflow.pb.h"

namespace gyre::orchestrator {

// The execution identity of a task: a 128-bit content hash (32 hex digits)
// of the task's spec (deterministic protobuf serialization) and the context
// it runs with, keys sorted. Equal spec and context give equal identities in
// every execution and process; any change gives a different one. Not a
// cryptographic hash: identities are compared, never trusted as secrets.
std::string TaskIdentity(const gyre::v1::TaskSpec& spec,
                         const std::map<std::string, std::string>& context);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_TASK_IDENTITY_H_
