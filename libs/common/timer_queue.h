#ifndef GYRE_LIBS_COMMON_TIMER_QUEUE_H_
#define GYRE_LIBS_COMMON_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/common/clock.h"

namespace gyre {

// Runs callbacks at given times on one background thread: retry backoff,
// lease expiry checks, built-in sleep tasks. Callbacks run one at a time and
// must be short (post work elsewhere if it is long). Thread-safe.
class TimerQueue {
 public:
  using TimerId = uint64_t;

  // Timers fall due by `clock` (the real one unless a test gives a
  // FakeClock, whose Advance makes them due).
  explicit TimerQueue(Clock* clock = Clock::Real());
  // Stops the thread; callbacks not yet due are dropped.
  ~TimerQueue();

  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `callback` at `when` (at once if it is in the past).
  TimerId Schedule(absl::Time when, std::function<void()> callback);
  TimerId ScheduleAfter(absl::Duration delay, std::function<void()> callback) {
    return Schedule(clock_->Now() + delay, std::move(callback));
  }
  // Cancels a timer that has not run yet; returns whether it was pending.
  bool Cancel(TimerId id);

 private:
  struct Entry {
    absl::Time when;
    TimerId id;
    std::function<void()> callback;
    bool operator>(const Entry& other) const {
      return when != other.when ? when > other.when : id > other.id;
    }
  };

  void Run();

  Clock* const clock_;

  absl::Mutex mutex_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> entries_
      ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_set<TimerId> cancelled_ ABSL_GUARDED_BY(mutex_);
  TimerId next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_TIMER_QUEUE_H_
