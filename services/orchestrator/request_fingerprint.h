#ifndef GYRE_SERVICES_ORCHESTRATOR_REQUEST_FINGERPRINT_H_
#define GYRE_SERVICES_ORCHESTRATOR_REQUEST_FINGERPRINT_H_

#include <cstdint>

#include "google/protobuf/message.h"

namespace gyre::orchestrator {

// What a request with a request_id said, to tell a retry of it (same
// fingerprint) from another request reusing the id. Deterministic
// serialization orders map entries, so equal requests hash alike; FNV-1a is
// stable across processes and builds, as a recorded fingerprint must be.
// Never 0, which stands for "unknown".
uint64_t RequestFingerprint(const google::protobuf::Message& request);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_REQUEST_FINGERPRINT_H_
