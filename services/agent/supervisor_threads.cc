#include "services/agent/supervisor_threads.h"

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
  jobs_.push_back(std::move(job));
  // Each idle thread takes one queued job.
  if (idle_ < jobs_.size()) threads_.emplace_back([this] { Loop(); });
}

size_t SupervisorThreads::threads() {
  absl::MutexLock lock(&mutex_);
  return threads_.size();
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
    mutex_.Await(absl::Condition(&work));
    idle_--;
    if (jobs_.empty()) break;  // stopping, and nothing left to run
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    mutex_.Unlock();
    std::move(job)();
    mutex_.Lock();
  }
  mutex_.Unlock();
}

}  // namespace gyre::agent
