#ifndef GYRE_SERVICES_ORCHESTRATOR_RESULT_ACKS_H_
#define GYRE_SERVICES_ORCHESTRATOR_RESULT_ACKS_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/orchestrator/agent_channel.h"

namespace gyre::orchestrator {

// Acknowledges one agent session's results cumulatively: ResultAck's
// through_sequence tells the agent that every result numbered up to it is
// recorded, so it may forget them. One number per batch of results instead
// of the attempts listed one by one, and never ahead of durability.
//
// The engine reports each batch of results in the order the agent sent
// them: either its records were appended (acknowledged when the append
// completes; appends complete in order) or it had nothing to record, every
// result being stale (acknowledged at once when no append before it is
// pending, else with the last of those).
//
// Thread-safe: batches are reported under the engine lock, completions
// come from the store's thread.
class ResultAcks {
 public:
  explicit ResultAcks(std::shared_ptr<AgentChannel> channel) : channel_(std::move(channel)) {}

  // A batch whose records were appended; `through` is its highest sequence
  // number. Call Durable with the append's outcome.
  void Appended();
  void Durable(uint64_t through, const absl::Status& status);
  // A batch with nothing to record.
  void NothingToRecord(uint64_t through);

 private:
  void SendLocked(uint64_t through) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::shared_ptr<AgentChannel> channel_;
  absl::Mutex mutex_;
  int64_t appends_pending_ ABSL_GUARDED_BY(mutex_) = 0;
  // The highest batch with nothing to record that waits for appends.
  uint64_t waiting_through_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t sent_through_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_RESULT_ACKS_H_
