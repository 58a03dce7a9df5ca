#ifndef GYRE_LIBS_COMMON_CLOCK_H_
#define GYRE_LIBS_COMMON_CLOCK_H_

#include <functional>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gyre {

// Where the engine's components, the timer queue and the agent read the
// time and wait for it: the real clock in production, a FakeClock in tests,
// so that a test of backoff, lease expiry or a timeout advances time instead
// of sleeping through it. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // The process-wide real clock (never destroyed).
  static Clock* Real();

  virtual absl::Time Now() = 0;
  // Like absl::Mutex::AwaitWithDeadline on `mu` (held by the caller): waits
  // until `condition` holds or this clock reaches `deadline`; returns
  // whether the condition holds.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                                 absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
  // Blocks the calling thread for `duration` of this clock's time.
  void SleepFor(absl::Duration duration);
  // How long a blocking call that is not a wait on this clock (poll() on a
  // task's pipes) may block in real time, at most, so that it notices
  // `duration` of this clock's time passing: `duration` itself on the real
  // clock; on a FakeClock, whose Advance cannot wake such a call, a short
  // poll interval.
  virtual absl::Duration MaxRealWait(absl::Duration duration) { return duration; }
};

// A clock that moves only when told. Waiters notice a move within a few
// milliseconds of real time (they poll), which is what tests need: a 30 s
// lease timeout passes in one Advance, not in 30 s.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}

  absl::Time Now() override;
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override;

  absl::Duration MaxRealWait(absl::Duration duration) override;

  void Advance(absl::Duration duration);
  void Set(absl::Time time);
  // Advances by `step` at a time, letting the threads on this clock run
  // between steps, until `done` holds; gives up after `real_timeout` of
  // real time. Returns whether `done` held. For tests whose code under test
  // starts its wait at a moment the test cannot see (a backoff begun after
  // a stream broke): one Advance made before that wait began is not seen
  // by it.
  bool AdvanceUntil(const std::function<bool()>& done, absl::Duration step,
                    absl::Duration real_timeout = absl::Seconds(60));

 private:
  absl::Mutex mutex_;
  absl::Time now_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_CLOCK_H_
