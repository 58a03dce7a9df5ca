#include "libs/common/clock.h"

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

void FakeClock::Advance(absl::Duration duration) {
  absl::MutexLock lock(&mutex_);
  now_ += duration;
}

void FakeClock::Set(absl::Time time) {
  absl::MutexLock lock(&mutex_);
  now_ = time;
}

}  // namespace gyre
