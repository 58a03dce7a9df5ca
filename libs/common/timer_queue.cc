#include "libs/common/timer_queue.h"

namespace gyre {

TimerQueue::TimerQueue(Clock* clock) : clock_(clock), thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

TimerQueue::TimerId TimerQueue::Schedule(absl::Time when, std::function<void()> callback) {
  absl::MutexLock lock(&mutex_);
  const TimerId id = next_id_++;
  entries_.push(Entry{when, id, std::move(callback)});
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::MutexLock lock(&mutex_);
  // Lazy deletion: the entry is skipped when it comes due.
  return cancelled_.insert(id).second;
}

void TimerQueue::Run() {
  absl::MutexLock lock(&mutex_);
  while (true) {
    const absl::Time next = entries_.empty() ? absl::InfiniteFuture() : entries_.top().when;
    // Wakes early when an earlier timer is scheduled or on shutdown.
    auto wake = [this, next]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return stopping_ || (!entries_.empty() && entries_.top().when < next);
    };
    clock_->AwaitWithDeadline(&mutex_, absl::Condition(&wake), next);
    if (stopping_) return;
    while (!entries_.empty() && entries_.top().when <= clock_->Now()) {
      Entry entry = entries_.top();
      entries_.pop();
      if (cancelled_.erase(entry.id) > 0) continue;
      mutex_.Unlock();
      entry.callback();
      mutex_.Lock();
      if (stopping_) return;
    }
  }
}

}  // namespace gyre
