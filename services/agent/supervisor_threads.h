#ifndef GYRE_SERVICES_AGENT_SUPERVISOR_THREADS_H_
#define GYRE_SERVICES_AGENT_SUPERVISOR_THREADS_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/common/clock.h"

namespace gyre::agent {

// A pool of threads reused from one job to the next: the TaskRunner
// finishes there the clean-ups that may take long (a working directory
// with files left in it, a cgroup whose processes have not left yet), so
// its poller never waits for them. A thread made for each job and ended after it cost the agent
// more CPU than anything else it does for a short task on a virtual machine: its stack mapped, then
// handed back at exit, each a page-table change that the other cores must be told of. The pool
// grows to the most jobs running at once (an agent's slots bound that); a thread idle for
// `idle_timeout` (of `clock`) ends, so a burst of tasks does not leave its threads' stacks behind.
//
// Thread-safe. The destructor runs the jobs still queued, waits for every
// job, and joins the threads.
class SupervisorThreads {
 public:
  using Job = absl::AnyInvocable<void() &&>;

  explicit SupervisorThreads(Clock* clock = Clock::Real(),
                             absl::Duration idle_timeout = absl::Minutes(1))
      : clock_(clock), idle_timeout_(idle_timeout) {}
  ~SupervisorThreads();

  SupervisorThreads(const SupervisorThreads&) = delete;
  SupervisorThreads& operator=(const SupervisorThreads&) = delete;

  // Runs `job` on an idle thread, or on a new one if none is idle.
  void Run(Job job);

  // Threads running, and those waiting for a job (for tests).
  size_t threads();
  size_t idle();

 private:
  void Loop();
  // Joins the threads that ended idle.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  Clock* const clock_;
  const absl::Duration idle_timeout_;
  absl::Mutex mutex_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mutex_);
  size_t idle_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::thread::id> ended_ ABSL_GUARDED_BY(mutex_);  // idle too long
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_SUPERVISOR_THREADS_H_
