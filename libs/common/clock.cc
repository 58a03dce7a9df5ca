#include "libs/common/clock.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace gyre {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override {
    return mu->AwaitWithDeadline(condition, deadline);
  }
};

// How often a waiter on a FakeClock looks at it again.
constexpr absl::Duration kFakeClockPoll = absl::Milliseconds(2);

}  // namespace

Clock* Clock::Real() {
  static Clock* const clock = new RealClock();
  return clock;
}

void Clock::SleepFor(absl::Duration duration) {
  absl::Mutex mu;
  absl::MutexLock lock(&mu);
  static constexpr bool kNever = false;
  AwaitWithDeadline(&mu, absl::Condition(&kNever), Now() + duration);
}

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mutex_);
  return now_;
}

bool FakeClock::AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                                  absl::Time deadline) {
  while (true) {
    if (mu->AwaitWithTimeout(condition, kFakeClockPoll)) return true;
    if (Now() >= deadline) return condition.Eval();
  }
}

absl::Duration FakeClock::MaxRealWait(absl::Duration duration) {
  return std::min(duration, kFakeClockPoll);
}

bool FakeClock::AdvanceUntil(const std::function<bool()>& done, absl::Duration step,
                             absl::Duration real_timeout) {
  const absl::Time give_up = absl::Now() + real_timeout;
  while (!done()) {
    if (absl::Now() >= give_up) return false;
    Advance(step);
    // Two polls of the waiters: each sees the step before the next.
    absl::SleepFor(2 * kFakeClockPoll);
  }
  return true;
}

void FakeClock::Advance(absl::Duration duration) {
  absl::MutexLock lock(&mutex_);
  now_ += duration;
}

void FakeClock::Set(absl::Time time) {
  absl::MutexLock lock(&mutex_);
  now_ = time;
}

}  // namespace gyre
