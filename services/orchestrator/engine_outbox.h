#ifndef GYRE_SERVICES_ORCHESTRATOR_ENGINE_OUTBOX_H_
#define GYRE_SERVICES_ORCHESTRATOR_ENGINE_OUTBOX_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gyre/v1/execution.pb.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "libs/logging/logger.h"

namespace gyre::orchestrator {

// What one locked section of the engine leaves to be done once the engine
// lock is released: the components fill it in (they do no I/O and start
// nothing), WorkflowEngine::Deliver carries it out. Messages to agents and
// events to watchers are not here: they are handed to per-stream queues
// under the lock, so that their order is the order of the changes.
struct Outbox {
  // Child executions evaluators decided to start.
  std::vector<gyre::v1::StartExecutionRequest> child_starts;

  // Executions that ended, logged after the lock.
  struct Ended {
    std::string execution;
    gyre::v1::ExecutionState state;
    int32_t succeeded, failed, skipped;
  };
  std::vector<Ended> ended;

  // Retries waiting out their backoff: each becomes a timer that makes the
  // task READY at `due`, unless the task moved on meanwhile (`generation`).
  struct RetryTimer {
    uint32_t execution;
    uint32_t task;
    uint16_t generation;
    absl::Time due;
  };
  std::vector<RetryTimer> retries;

  // Log lines, written after the lock: a log line is a write(2), and the
  // engine waits for none.
  struct LogLine {
    logging::Level level;
    std::string message;
    std::vector<logging::Field> fields;
  };
  std::vector<LogLine> logs;

  void Log(logging::Level level, absl::string_view message,
           std::initializer_list<logging::Field> fields = {}) {
    if (!logging::Enabled(level)) return;
    logs.push_back(LogLine{level, std::string(message), fields});
  }
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ENGINE_OUTBOX_H_
