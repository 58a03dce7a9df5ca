#ifndef GYRE_SERVICES_ORCHESTRATOR_EVENT_PUBLISHER_H_
#define GYRE_SERVICES_ORCHESTRATOR_EVENT_PUBLISHER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/execution.pb.h"
#include "services/orchestrator/attempt_record.h"
#include "services/orchestrator/event_subscription.h"
#include "services/orchestrator/execution_entry.h"

namespace gyre::orchestrator {

// Who watches what, and getting each new event of an execution's history
// to them. Owns: the subscriptions (of one execution or of all), cutting
// the ones of a finished execution, building a stored event as watchers see
// it. Must not touch: the history itself (the task state machine appends
// to it) or any state. Not thread-safe: used under the engine lock.
class EventPublisher {
 public:
  // Watches every execution's new events.
  void WatchAll(std::shared_ptr<EventSubscription> subscription);
  // Gives `subscription` the stored events of `exec` from `from_sequence`
  // on as its backlog, built by `replay` on the reader's thread, and keeps
  // it for live ones unless the execution is final (then it is closed).
  void Subscribe(const ExecutionEntry& exec, int64_t from_sequence,
                 const std::shared_ptr<EventSubscription>& subscription,
                 EventSubscription::Replayer replay);
  void Unwatch(const std::shared_ptr<EventSubscription>& subscription);
  // Ends the subscriptions of `exec` with `why` (its shard moved away).
  void End(const ExecutionEntry& exec, const absl::Status& why);
  // The watchers of all executions, taken out (nothing is published to
  // them until RestoreWatchAll gives them back).
  std::vector<std::shared_ptr<EventSubscription>> TakeWatchAll();
  void RestoreWatchAll(std::vector<std::shared_ptr<EventSubscription>> watchers);

  // Gives the event at `index` of `exec`'s history to its watchers (a
  // watcher of this execution builds it on its own thread; a watcher of all
  // gets it built here, once for all); `closing` (the execution's final
  // event) ends their subscriptions.
  void Publish(const ExecutionEntry& exec, uint32_t index, bool closing);
  // A chunk of a running attempt's output, to the watchers that asked for
  // logs (built once, only if one did).
  void PublishLog(const ExecutionEntry& exec, const gyre::v1::TaskLogChunk& chunk, absl::Time now);

 private:
  std::vector<std::pair<std::string, std::shared_ptr<EventSubscription>>> watchers_;
};

// What a stored event needs to become a gyre::v1::Event, copied under the
// engine lock so that the event itself is built without it (on the
// watcher's thread, not the engine's).
struct EventSource {
  uint32_t index = 0;
  StoredEvent stored;
  const gyre::v1::TaskSpec* spec = nullptr;  // immutable while the engine lives
  gyre::v1::Event* whole = nullptr;          // an execution-level event, copied whole
  bool has_reason = false;
  std::string reason;
  bool has_attempt = false;
  AttemptRecord attempt;  // a final state's last attempt
};

// Under the engine lock. Assigns into `source`, whose strings keep their
// buffers from one use to the next.
void CollectEvent(const ExecutionEntry& exec, uint32_t index, google::protobuf::Arena* arena,
                  EventSource* source);
// Needs no lock: reads only what never changes and the copies in `source`.
gyre::v1::Event* BuildEvent(const ExecutionEntry& exec, const EventSource& source,
                            google::protobuf::Arena* arena);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EVENT_PUBLISHER_H_
