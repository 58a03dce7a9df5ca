#include "services/agent/deferred_starts.h"

namespace gyre::agent {

void DeferredStarts::Hold(std::string attempt, QueuedMessage started, absl::Time due) {
  held_.insert_or_assign(attempt, std::move(started));
  order_.emplace_back(due, std::move(attempt));
}

bool DeferredStarts::Drop(const std::string& attempt) {
  if (held_.erase(attempt) == 0) return false;
  if (held_.empty()) {
    order_.clear();
    return true;
  }
  // What was dropped at the front goes now, so that next_due names a start
  // still held (one dropped further back waits for its turn).
  while (!order_.empty() && !held_.contains(order_.front().second)) order_.pop_front();
  return true;
}

void DeferredStarts::Release(absl::Time now, std::deque<QueuedMessage>* out) {
  while (!order_.empty() && order_.front().first <= now) {
    auto it = held_.find(order_.front().second);
    if (it != held_.end()) {
      out->push_back(std::move(it->second));
      held_.erase(it);
    }
    order_.pop_front();
  }
}

}  // namespace gyre::agent
