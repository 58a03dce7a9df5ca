#ifndef GYRE_SERVICES_AGENT_SUPERVISOR_THREADS_H_
#define GYRE_SERVICES_AGENT_SUPERVISOR_THREADS_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace gyre::agent {

// The threads that supervise task processes, reused from one task to the
// next. A thread made for each task and ended after it cost the agent more
// CPU than anything else it does for a short task on a virtual machine:
// its stack mapped, then handed back at exit, each a page-table change that
// the other cores must be told of. The pool grows to the most jobs ever
// running at once (an agent's slots bound that) and keeps its threads until
// it is destroyed.
//
// Thread-safe. The destructor runs the jobs still queued, waits for every
// job, and joins the threads.
class SupervisorThreads {
 public:
  using Job = absl::AnyInvocable<void() &&>;

  SupervisorThreads() = default;
  ~SupervisorThreads();

  SupervisorThreads(const SupervisorThreads&) = delete;
  SupervisorThreads& operator=(const SupervisorThreads&) = delete;

  // Runs `job` on an idle thread, or on a new one if none is idle.
  void Run(Job job);

  // Threads made so far, and those waiting for a job (for tests).
  size_t threads();
  size_t idle();

 private:
  void Loop();

  absl::Mutex mutex_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mutex_);
  size_t idle_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_SUPERVISOR_THREADS_H_
