#include "services/orchestrator/event_subscription.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Stored events a backlog builds per Next: one EventBatch's worth.
constexpr uint32_t kReplayBatch = 4096;

// Arena blocks for events: a few KiB first, up to 256 KiB when busy.
std::unique_ptr<google::protobuf::Arena> NewEventArena() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 4096;
  options.max_block_size = 256 << 10;
  return std::make_unique<google::protobuf::Arena>(options);
}

}  // namespace

EventChunk EventSubscription::Next(absl::Duration timeout, bool* last) {
  EventChunk chunk;
  uint32_t from = 0;
  uint32_t to = 0;
  std::vector<std::shared_ptr<const v1::Event>> live;
  {
    absl::MutexLock lock(&mutex_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return backlog_next_ < backlog_end_ || !pending_.empty() || closed_;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    if (backlog_next_ < backlog_end_) {
      // Claimed here, built below without this lock: one reader calls Next.
      from = backlog_next_;
      to = std::min(backlog_end_, from + kReplayBatch);
      backlog_next_ = to;
    } else {
      live.swap(pending_);
      if (last != nullptr) *last = closed_;
    }
  }
  chunk.arena = NewEventArena();
  if (from == to) {
    // Copied here, on the reader's thread: the engine built each once.
    chunk.events.reserve(live.size());
    for (const auto& event : live) {
      auto* copy = google::protobuf::Arena::CreateMessage<v1::Event>(chunk.arena.get());
      copy->CopyFrom(*event);
      chunk.events.push_back(copy);
    }
    return chunk;
  }
  replay_(from, to, chunk.arena.get(), &chunk.events);
  if (last != nullptr) {
    // Live events that came meanwhile wait for the next call.
    absl::MutexLock lock(&mutex_);
    *last = backlog_next_ == backlog_end_ && closed_ && pending_.empty();
  }
  return chunk;
}

void EventSubscription::SetBacklog(uint32_t from, uint32_t to, Replayer replay) {
  absl::MutexLock lock(&mutex_);
  backlog_next_ = from;
  backlog_end_ = to;
  replay_ = std::move(replay);
  follows_one_execution_ = true;
}

void EventSubscription::Extend(uint32_t to) {
  absl::MutexLock lock(&mutex_);
  const bool was_readable = ReadableLocked();
  if (!closed_) backlog_end_ = std::max(backlog_end_, to);
  if (!was_readable && ReadableLocked() && on_ready_) on_ready_();
}

void EventSubscription::Push(std::shared_ptr<const v1::Event> event) {
  absl::MutexLock lock(&mutex_);
  if (closed_) return;
  if (pending_.size() >= kMaxPending) {
    // The reader stopped reading (or cannot keep up): cut it off rather
    // than hold events for it without bound. A watcher of one execution
    // resumes from the first stored event it has not been given.
    const std::string scope = event->execution();
    error_ = follows_one_execution_
                 ? absl::ResourceExhaustedError(absl::StrCat(
                       "watcher of ", scope, " fell behind at sequence ", backlog_next_ + 1, " (",
                       kMaxPending,
                       " live events unread); resume with from_sequence=", backlog_next_ + 1))
                 : absl::ResourceExhaustedError(absl::StrCat(
                       "watcher of all executions fell behind (", kMaxPending,
                       " events unread) and was cut off; watch again, or watch each execution "
                       "with from_sequence to replay what was missed"));
    pending_.clear();
    backlog_end_ = backlog_next_;
    closed_ = true;
    if (on_cut_off_) on_cut_off_();
    if (on_ready_) on_ready_();
    return;
  }
  const bool was_readable = ReadableLocked();
  pending_.push_back(std::move(event));
  if (!was_readable && on_ready_) on_ready_();
}

void EventSubscription::OnReady(absl::AnyInvocable<void()> hook) {
  absl::MutexLock lock(&mutex_);
  on_ready_ = std::move(hook);
  if (on_ready_ && ReadableLocked()) on_ready_();
}

void EventSubscription::OnCutOff(absl::AnyInvocable<void()> hook) {
  absl::MutexLock lock(&mutex_);
  on_cut_off_ = std::move(hook);
}

absl::Status EventSubscription::error() {
  absl::MutexLock lock(&mutex_);
  return error_;
}

void EventSubscription::Close() {
  absl::MutexLock lock(&mutex_);
  const bool was_readable = ReadableLocked();
  closed_ = true;
  if (!was_readable && on_ready_) on_ready_();
}

void EventSubscription::End(absl::Status why) {
  absl::MutexLock lock(&mutex_);
  const bool was_readable = ReadableLocked();
  if (error_.ok()) error_ = std::move(why);
  backlog_end_ = backlog_next_;
  closed_ = true;
  if (!was_readable && on_ready_) on_ready_();
}

bool EventSubscription::closed() {
  absl::MutexLock lock(&mutex_);
  return closed_ && pending_.empty() && backlog_next_ == backlog_end_;
}

}  // namespace gyre::orchestrator
