#ifndef GYRE_SERVICES_ORCHESTRATOR_QUEUE_TABLE_H_
#define GYRE_SERVICES_ORCHESTRATOR_QUEUE_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/ready_queue.h"

namespace gyre::orchestrator {

// One queue (worker type): its ready tasks and its counts.
struct Queue {
  std::string name;
  ReadyQueue ready;
  int64_t queued = 0;   // tasks in READY (exact; the ReadyQueue may hold stale entries)
  int64_t running = 0;  // tasks LEASED or RUNNING
  int32_t agents = 0;   // agents known (connected or within their lease timeout) serving it
  // Some execution's task refers to it by index (TaskEntry::queue), or it
  // is a configured worker pool: the name and index stay for as long as the
  // engine does.
  bool named_by_task = false;
  bool exported = false;  // has metrics series
  // Agents alone made it known; none serves it any more and nothing is
  // queued or running in it: nobody uses it.
  bool unused() const { return agents == 0 && !named_by_task && queued == 0 && running == 0; }
};

// The queue names the engine knows and their queues, by index.
// Owns: the Queue objects, name <-> index, the bound on how many names are
// known at once (kMaxQueues), and forgetting a queue nobody uses.
// Must not touch: tasks and agents (they hold queue indexes; the counts in
// a Queue are kept by the task state machine and the agent manager).
// Not thread-safe: used under the engine lock.
class QueueTable {
 public:
  // Queue names known at once (listed by agents or named by executions'
  // tasks): each costs memory and a metrics series, so a client must not be
  // able to create them without bound.
  static constexpr size_t kMaxQueues = 4096;

  explicit QueueTable(EngineMetrics& metrics) : metrics_(metrics) {}

  // The index of queue `name`, made known if it was not.
  uint32_t IndexOf(const std::string& name);
  // Makes `name` known for good (a configured worker pool: its series are
  // exported from the start, for the autoscaler to read its min).
  void Pin(const std::string& name) { at(IndexOf(name)).named_by_task = true; }
  // ResourceExhausted if knowing `names` (with repeats) would take the
  // engine past kMaxQueues queue names; `what` says who asks.
  absl::Status CheckRoom(absl::Span<const std::string* const> names, absl::string_view what) const;
  // One agent fewer serves queue `index`; a queue left unused is forgotten
  // (its index is reused, its metrics series removed).
  void Unserve(uint32_t index);

  Queue& at(uint32_t index) { return *queues_[index]; }
  const Queue& at(uint32_t index) const { return *queues_[index]; }
  // Names known now.
  size_t size() const { return by_name_.size(); }
  // Indexes in use, forgotten ones holding null: for walks over all queues.
  const std::vector<std::unique_ptr<Queue>>& all() const { return queues_; }

 private:
  EngineMetrics& metrics_;
  // A forgotten queue leaves a null entry whose index is reused (free_).
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<uint32_t> free_;
  absl::flat_hash_map<std::string, uint32_t> by_name_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_QUEUE_TABLE_H_
