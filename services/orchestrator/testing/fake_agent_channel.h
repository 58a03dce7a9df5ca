#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_FAKE_AGENT_CHANNEL_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_FAKE_AGENT_CHANNEL_H_

// The engine's side of an agent stream, for tests: channels that record what
// the engine sends instead of writing it to a network stream. All are
// thread-safe (the engine sends under its lock, from its timer thread and
// from the test's thread).

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gyre/v1/agent_service.pb.h"
#include "services/orchestrator/agent_channel.h"

namespace gyre::orchestrator::testing {

// Records the assignments (for the test to take in order), cancels and
// result acknowledgements the engine sends; other messages are only counted.
class RecordingChannel : public AgentChannel {
 public:
  void Send(gyre::v1::OrchestratorMessage message) override;

  // Waits (up to `timeout`) for the next `n` assignments and takes them, in
  // order; fewer if they do not come.
  std::vector<gyre::v1::TaskAssignment> Take(size_t n, absl::Duration timeout = absl::Seconds(10));
  // Assignments received and not yet taken.
  size_t pending();
  std::vector<gyre::v1::Cancel> cancels();
  // The through_sequence of each acknowledgement, in order.
  std::vector<uint64_t> acks();
  // Every message sent, of any kind.
  size_t sent();

 private:
  absl::Mutex mutex_;
  std::deque<gyre::v1::TaskAssignment> assigned_ ABSL_GUARDED_BY(mutex_);
  std::vector<gyre::v1::Cancel> cancels_ ABSL_GUARDED_BY(mutex_);
  std::vector<uint64_t> acked_ ABSL_GUARDED_BY(mutex_);
  size_t sent_ ABSL_GUARDED_BY(mutex_) = 0;
};

// A RecordingChannel that also records why the engine replaced its stream
// (the agent id registered again elsewhere), instead of sending a Shutdown.
class ReplaceableChannel : public RecordingChannel {
 public:
  void Replace(std::string reason) override;
  // The reason given, or "" if the stream was never replaced.
  std::string replaced();

 private:
  absl::Mutex mutex_;
  std::string replaced_ ABSL_GUARDED_BY(mutex_);
};

// Measures assignment messages as the agent's stream would carry them:
// their encoded sizes and the tasks they hold; keeps nothing else.
class MessageSizeChannel : public AgentChannel {
 public:
  void Send(gyre::v1::OrchestratorMessage message) override;
  // The encoded size of each assignment message, in order.
  std::vector<size_t> sizes();
  // Tasks assigned over all messages.
  int tasks();

 private:
  absl::Mutex mutex_;
  std::vector<size_t> sizes_ ABSL_GUARDED_BY(mutex_);
  int tasks_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_FAKE_AGENT_CHANNEL_H_
