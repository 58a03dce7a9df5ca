#ifndef GYRE_SERVICES_ORCHESTRATOR_STREAM_WORKERS_H_
#define GYRE_SERVICES_ORCHESTRATOR_STREAM_WORKERS_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace gyre::orchestrator {

// A few threads for the waits of callback-API streams: gRPC's callback
// threads must not block, but a stream must wait for durability
// (WorkflowEngine::AwaitDurable) before it shows events, and builds stored
// events to replay. Tasks run in the order posted. Thread-safe.
class StreamWorkers {
 public:
  explicit StreamWorkers(int threads);
  // Runs what is queued, then joins.
  ~StreamWorkers();
  StreamWorkers(const StreamWorkers&) = delete;
  StreamWorkers& operator=(const StreamWorkers&) = delete;

  // Never blocks.
  void Post(absl::AnyInvocable<void()> task);

 private:
  void Run();

  absl::Mutex mutex_;
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_STREAM_WORKERS_H_
