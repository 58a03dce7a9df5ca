#include "services/orchestrator/ready_queue.h"

#include <algorithm>
#include <bit>

namespace gyre::orchestrator {

void ReadyQueue::Push(const ReadyTask& task) {
  const int level = std::min<int>(task.priority, kPriorityLevels - 1);
  std::unique_ptr<std::deque<ReadyTask>>& fifo = levels_[level];
  if (fifo == nullptr) fifo = std::make_unique<std::deque<ReadyTask>>();
  fifo->push_back(task);
  non_empty_[level / 64] |= uint64_t{1} << (level % 64);
  ++size_;
}

void ReadyQueue::PushFront(const ReadyTask& task) {
  const int level = std::min<int>(task.priority, kPriorityLevels - 1);
  std::unique_ptr<std::deque<ReadyTask>>& fifo = levels_[level];
  if (fifo == nullptr) fifo = std::make_unique<std::deque<ReadyTask>>();
  fifo->push_front(task);
  non_empty_[level / 64] |= uint64_t{1} << (level % 64);
  ++size_;
}

int ReadyQueue::HighestNonEmpty(int below) const {
  // Highest level < `below` with entries, or -1.
  for (int word = (below - 1) / 64; word >= 0 && below > 0; --word) {
    uint64_t bits = non_empty_[word];
    const int top_in_word = std::min(63, below - 1 - word * 64);
    if (top_in_word < 63) bits &= (uint64_t{1} << (top_in_word + 1)) - 1;
    if (bits != 0) return word * 64 + 63 - std::countl_zero(bits);
  }
  return -1;
}

void ReadyQueue::MarkEmptyIfDrained(int level) {
  if (levels_[level]->empty()) non_empty_[level / 64] &= ~(uint64_t{1} << (level % 64));
}

void ReadyQueue::Release() {
  for (auto& fifo : levels_) fifo.reset();
  non_empty_ = {};
  size_ = 0;
}

void ReadyQueue::Visit(size_t max_entries, absl::FunctionRef<bool(const ReadyTask&)> visit) const {
  size_t seen = 0;
  for (int level = HighestNonEmpty(kPriorityLevels); level >= 0; level = HighestNonEmpty(level)) {
    for (const ReadyTask& entry : *levels_[level]) {
      if (seen++ >= max_entries || !visit(entry)) return;
    }
  }
}

size_t ReadyQueue::DropStale(absl::FunctionRef<bool(const ReadyTask&)> stale) {
  size_t dropped = 0;
  for (int level = 0; level < kPriorityLevels; ++level) {
    if (levels_[level] == nullptr) continue;
    dropped += std::erase_if(*levels_[level], stale);
    MarkEmptyIfDrained(level);
  }
  size_ -= dropped;
  return dropped;
}

size_t ReadyQueue::PopMatching(size_t max, size_t scan_limit,
                               absl::FunctionRef<ReadyVerdict(const ReadyTask&)> verdict,
                               std::vector<ReadyTask>* out) {
  size_t taken = 0;
  size_t scanned = 0;
  for (int level = HighestNonEmpty(kPriorityLevels); level >= 0 && taken < max;
       level = HighestNonEmpty(level)) {
    std::deque<ReadyTask>& fifo = *levels_[level];  // non-empty, so allocated
    size_t index = 0;
    while (index < fifo.size() && taken < max && scanned < scan_limit) {
      switch (verdict(fifo[index])) {
        case ReadyVerdict::kTake:
          out->push_back(fifo[index]);
          ++taken;
          ++scanned;
          [[fallthrough]];
        case ReadyVerdict::kDrop:
          // A stale entry does not count against the limit: each is
          // dropped once, so the work is paid for by its push. Counting
          // them let a backlog of stale entries (a cancelled execution,
          // the leases a log replay re-applied) hide live tasks from a pass
          // with no later pass to come: dispatch stalled.
          // Erasing the front, the common case, is O(1).
          fifo.erase(fifo.begin() + static_cast<std::ptrdiff_t>(index));
          --size_;
          break;
        case ReadyVerdict::kSkip:
          ++scanned;
          ++index;
          break;
      }
    }
    MarkEmptyIfDrained(level);
    if (scanned >= scan_limit) break;
  }
  return taken;
}

}  // namespace gyre::orchestrator
