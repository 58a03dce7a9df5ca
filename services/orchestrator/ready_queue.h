#ifndef GYRE_SERVICES_ORCHESTRATOR_READY_QUEUE_H_
#define GYRE_SERVICES_ORCHESTRATOR_READY_QUEUE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"

namespace gyre::orchestrator {

// A task whose dependencies are met, waiting for an agent. 12 bytes: the
// queue holds millions of these under load.
struct ReadyTask {
  uint32_t execution = 0;  // the engine's slot for the execution
  uint32_t task = 0;       // index of the task within its execution
  uint8_t priority = 50;   // 0..100, higher first
  // The task's generation when enqueued; a changed generation (cancelled,
  // re-queued) marks this entry stale.
  uint16_t generation = 0;
};

// What PopMatching does with an entry it looks at.
enum class ReadyVerdict {
  kTake,  // hand it to this agent
  kSkip,  // leave it queued (does not fit this agent's labels or resources)
  kDrop,  // remove it (stale: cancelled, paused or already leased)
};

// The tasks of one queue (worker type) ready to run, highest priority first
// and first-in first-out within a priority. Push and pop are O(1): one FIFO
// per priority level and a bitmap of non-empty levels. Not thread-safe: owned
// by the engine under its lock.
class ReadyQueue {
 public:
  static constexpr int kPriorityLevels = 101;

  void Push(const ReadyTask& task);
  // Queues `task` ahead of every entry of its priority: for an order
  // decided elsewhere (the scheduler's), pushed best last.
  void PushFront(const ReadyTask& task);

  // Moves up to `max` entries for which `verdict` says kTake into `out`,
  // examining at most `scan_limit` live entries (taken or skipped) so one
  // agent that fits nothing cannot make a dispatch pass walk a long queue.
  // Stale entries (kDrop) are removed on the way without counting: however
  // many there are, they never hide a live entry. Returns how many it took.
  size_t PopMatching(size_t max, size_t scan_limit,
                     absl::FunctionRef<ReadyVerdict(const ReadyTask&)> verdict,
                     std::vector<ReadyTask>* out);

  // Calls `visit` on entries highest priority first, in the order a pop
  // would see them, until it returns false or `max_entries` (stale ones
  // included) were seen: the scheduler link reads the head of a queue.
  void Visit(size_t max_entries, absl::FunctionRef<bool(const ReadyTask&)> visit) const;

  // Removes every entry `stale` says is stale, in one pass over each level:
  // for an owner that made many entries stale at once (the scheduler link's
  // re-pushes) and must bound what they cost. Returns how many it removed.
  size_t DropStale(absl::FunctionRef<bool(const ReadyTask&)> stale);

  // Frees every level's storage (entries included): for a queue nobody
  // serves and nothing waits in, so that an unused name costs a few bytes.
  void Release();

  // Entries held, stale ones included until a pop drops them.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  int HighestNonEmpty(int below) const;
  void MarkEmptyIfDrained(int level);

  // Null until a task of that priority is pushed (see the class comment).
  std::array<std::unique_ptr<std::deque<ReadyTask>>, kPriorityLevels> levels_;
  std::array<uint64_t, 2> non_empty_{};  // bit i: levels_[i] non-empty
  size_t size_ = 0;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_READY_QUEUE_H_
