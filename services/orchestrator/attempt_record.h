#ifndef GYRE_SERVICES_ORCHESTRATOR_ATTEMPT_RECORD_H_
#define GYRE_SERVICES_ORCHESTRATOR_ATTEMPT_RECORD_H_

#include <cstdint>
#include <string>

#include "gyre/v1/execution.pb.h"

namespace gyre::orchestrator {

// One attempt of a task as the engine keeps it: plain fields, no protobuf
// sub-messages (a gyre::v1::TaskAttempt allocates one per time and
// duration, and a finished execution holds an attempt per task). Converted
// to gyre::v1::TaskAttempt for the API and snapshots. Times are Unix
// nanoseconds, 0 when unset; durations are nanoseconds.
struct AttemptRecord {
  int64_t attempt = 0;
  std::string agent;  // agent id, without "agents/"
  int64_t lease_time = 0;
  int64_t start_time = 0;
  int64_t end_time = 0;
  int64_t wall_time = 0;
  int64_t cpu_time = 0;
  int64_t peak_rss_bytes = 0;
  int64_t stdout_bytes = 0;
  int64_t stderr_bytes = 0;
  int32_t exit_code = 0;
  int32_t signal = 0;
  gyre::v1::AttemptOutcome outcome = gyre::v1::ATTEMPT_OUTCOME_UNSPECIFIED;
  std::string error;  // why it failed, when it did
};

gyre::v1::TaskAttempt ToProto(const AttemptRecord& record);
// The same, written into `out` (which may live on an arena).
void FillProto(const AttemptRecord& record, gyre::v1::TaskAttempt* out);
AttemptRecord FromProto(const gyre::v1::TaskAttempt& attempt);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ATTEMPT_RECORD_H_
