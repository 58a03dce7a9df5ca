#ifndef GYRE_SERVICES_ORCHESTRATOR_EVENT_SUBSCRIPTION_H_
#define GYRE_SERVICES_ORCHESTRATOR_EVENT_SUBSCRIPTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "gyre/v1/execution.pb.h"

namespace gyre::orchestrator {

// Events handed out together by EventSubscription::Next. They live on one
// arena, so building thousands of them costs a pointer bump per field and
// freeing them one release, not a malloc and a free each.
struct EventChunk {
  std::unique_ptr<google::protobuf::Arena> arena;
  std::vector<gyre::v1::Event*> events;  // owned by the arena
};

// A Watch subscription: the events of one execution (or all) from a
// sequence number on. Thread-safe; the engine pushes, the RPC pops.
class EventSubscription {
 public:
  // Live events (and log chunks) a subscription holds unread before it is
  // cut off: a client that stops reading must not make the orchestrator
  // hold every event for it. A watcher of one execution holds only an index
  // into the stored history for its state events.
  // 4096 events of a few hundred bytes each: ~1 MB per subscription.
  static constexpr size_t kMaxPending = 4096;

  explicit EventSubscription(bool include_logs = false) : include_logs_(include_logs) {}
  // Whether live TASK_LOG events are wanted too.
  bool include_logs() const { return include_logs_; }
  // Waits up to `timeout` for the next events; none on timeout. Sets
  // `*last`, when given, to whether these are the last ones (the
  // subscription is closed and nothing is left). The chunk always has an
  // arena, for whatever the caller builds around its events.
  EventChunk Next(absl::Duration timeout, bool* last = nullptr);
  // Adds `event`, built once and shared by every subscription it goes to
  // (each reader copies it on its own thread). Past kMaxPending unread,
  // the subscription is closed with error() set instead.
  void Push(std::shared_ptr<const gyre::v1::Event> event);
  // Why the subscription was cut off (OK if it was not): RESOURCE_EXHAUSTED
  // once its reader fell kMaxPending events behind.
  absl::Status error();
  // Runs (once, from Push) when the subscription is cut off: the stream's
  // thread may be blocked writing to a client that reads nothing, and only
  // cancelling the call frees it. Must not block.
  void OnCutOff(absl::AnyInvocable<void()> hook);
  // Runs when Next has something again after it had nothing (events, or
  // the end), and at once if it has something now: a callback-API stream
  // waits for this instead of blocking a thread in Next. Runs under the
  // subscription's lock (maybe under the engine's): must not block nor call
  // the subscription. Null removes it; once that returns, it never runs.
  void OnReady(absl::AnyInvocable<void()> hook);
  void Close();
  // Closes it with error() set to `why` (the execution's shard moved to
  // another orchestrator), dropping the stored events not yet built: the
  // execution's history is no longer here. Events already taken stay.
  void End(absl::Status why);
  bool closed();

  // Builds the stored events [from, to) on `arena`, appending them to
  // `events`.
  using Replayer =
      absl::AnyInvocable<void(uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                              std::vector<gyre::v1::Event*>* events)>;
  // Stored events [from, to) come first, built by `replay` a batch at a
  // time as Next asks for them: a long history built at once (under the
  // engine lock) would stall the engine and take its whole size in memory.
  // Set before anything is pushed; the subscription then follows one
  // execution, whose new events Extend the backlog (built the same way, on
  // the reader's thread, rather than on the engine's).
  void SetBacklog(uint32_t from, uint32_t to, Replayer replay);
  // Stored events up to `to` (exclusive) are to be delivered too.
  void Extend(uint32_t to);
  // Whether SetBacklog was called (read under the engine lock, as it was set).
  bool follows_one_execution() const { return follows_one_execution_; }

 private:
  const bool include_logs_;
  absl::Mutex mutex_;
  uint32_t backlog_next_ ABSL_GUARDED_BY(mutex_) = 0;
  uint32_t backlog_end_ ABSL_GUARDED_BY(mutex_) = 0;
  Replayer replay_;  // set before the subscription is shared
  bool follows_one_execution_ = false;
  std::vector<std::shared_ptr<const gyre::v1::Event>> pending_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mutex_);
  absl::AnyInvocable<void()> on_cut_off_ ABSL_GUARDED_BY(mutex_);
  absl::AnyInvocable<void()> on_ready_ ABSL_GUARDED_BY(mutex_);
  bool ReadableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return backlog_next_ < backlog_end_ || !pending_.empty() || closed_;
  }
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EVENT_SUBSCRIPTION_H_
