#include "services/agent/supervisor_threads.h"

#include <algorithm>
#include <utility>

namespace gyre::agent {

SupervisorThreads::~SupervisorThreads() {
  absl::MutexLock lock(&mutex_);
  stopping_ = true;
  // A job may still queue another (it then runs before its thread exits).
  while (!threads_.empty()) {
    std::vector<std::thread> threads;
    threads.swap(threads_);
    mutex_.Unlock();
    for (std::thread& thread : threads) thread.join();
    mutex_.Lock();
  }
}

void SupervisorThreads::Run(Job job) {
  absl::MutexLock lock(&mutex_);
  ReapLocked();
  jobs_.push_back(std::move(job));
  // Each idle thread takes one queued job.
  if (idle_ < jobs_.size()) threads_.emplace_back([this] { Loop(); });
}

size_t SupervisorThreads::threads() {
  absl::MutexLock lock(&mutex_);
  return threads_.size() - ended_.size();
}

void SupervisorThreads::ReapLocked() {
  for (const std::thread::id& id : ended_) {
    auto thread = std::find_if(threads_.begin(), threads_.end(),
                               [&](const std::thread& t) { return t.get_id() == id; });
    // It has released the lock and is returning: the join is immediate.
    thread->join();
    threads_.erase(thread);
  }
  ended_.clear();
}

size_t SupervisorThreads::idle() {
  absl::MutexLock lock(&mutex_);
  return idle_;
}

void SupervisorThreads::Loop() {
  mutex_.Lock();
  while (true) {
    idle_++;
    auto work = [this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stopping_ || !jobs_.empty(); };
    clock_->AwaitWithDeadline(&mutex_, absl::Condition(&work), clock_->Now() + idle_timeout_);
    idle_--;
    if (jobs_.empty()) {
      // Stopping (the destructor joins it), or idle too long.
      if (!stopping_) ended_.push_back(std::this_thread::get_id());
      break;
    }
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    mutex_.Unlock();
    std::move(job)();
    mutex_.Lock();
  }
  mutex_.Unlock();
}

}  // namespace gyre::agent
