#include "services/orchestrator/testing/fake_agent_channel.h"

#include <utility>

namespace gyre::orchestrator::testing {

namespace v1 = ::gyre::v1;

void RecordingChannel::Send(v1::OrchestratorMessage message) {
  absl::MutexLock lock(&mutex_);
  ++sent_;
  for (const v1::TaskAssignment& task : message.assignment().tasks()) assigned_.push_back(task);
  if (message.has_cancel()) cancels_.push_back(message.cancel());
  if (message.has_result_ack()) acked_.push_back(message.result_ack().through_sequence());
}

std::vector<v1::TaskAssignment> RecordingChannel::Take(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mutex_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return assigned_.size() >= n; };
  mutex_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  std::vector<v1::TaskAssignment> out;
  while (!assigned_.empty() && out.size() < n) {
    out.push_back(assigned_.front());
    assigned_.pop_front();
  }
  return out;
}

size_t RecordingChannel::pending() {
  absl::MutexLock lock(&mutex_);
  return assigned_.size();
}

std::vector<v1::Cancel> RecordingChannel::cancels() {
  absl::MutexLock lock(&mutex_);
  return cancels_;
}

std::vector<uint64_t> RecordingChannel::acks() {
  absl::MutexLock lock(&mutex_);
  return acked_;
}

size_t RecordingChannel::sent() {
  absl::MutexLock lock(&mutex_);
  return sent_;
}

void ReplaceableChannel::Replace(std::string reason) {
  absl::MutexLock lock(&mutex_);
  replaced_ = std::move(reason);
}

std::string ReplaceableChannel::replaced() {
  absl::MutexLock lock(&mutex_);
  return replaced_;
}

void MessageSizeChannel::Send(v1::OrchestratorMessage message) {
  absl::MutexLock lock(&mutex_);
  if (!message.has_assignment()) return;
  sizes_.push_back(message.ByteSizeLong());
  tasks_ += message.assignment().tasks_size();
}

std::vector<size_t> MessageSizeChannel::sizes() {
  absl::MutexLock lock(&mutex_);
  return sizes_;
}

int MessageSizeChannel::tasks() {
  absl::MutexLock lock(&mutex_);
  return tasks_;
}

}  // namespace gyre::orchestrator::testing
