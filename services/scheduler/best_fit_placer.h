#ifndef GYRE_SERVICES_SCHEDULER_BEST_FIT_PLACER_H_
#define GYRE_SERVICES_SCHEDULER_BEST_FIT_PLACER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace gyre::scheduler {

// CPU cores, memory and GPUs: what a task needs or an agent has free.
struct ResourceAmounts {
  double cpu = 0;
  int64_t memory_bytes = 0;
  int gpus = 0;
};

// An agent as placement sees it.
struct AgentCapacity {
  std::string name;
  std::vector<std::string> queues;
  absl::flat_hash_map<std::string, std::string> labels;
  int free_slots = 0;
  int busy_slots = 0;
  ResourceAmounts free;
  // Seconds until each busy slot frees, when the caller knows (running
  // tasks' predicted end); the rest are assumed to free after the batch's
  // median predicted duration.
  std::vector<double> busy_slot_free_in_seconds;
};

// A ready task as placement sees it. The strings are views: the caller's
// request outlives the placement.
struct PlacementTask {
  absl::string_view queue;
  std::vector<std::pair<absl::string_view, absl::string_view>> selector;  // labels it needs
  ResourceAmounts needs;
  double predicted_seconds = 0;
};

// Where each task goes: agent index or -1, why not, and when it should start.
struct PlacementPlan {
  std::vector<int> agent;                       // per task; -1 = left waiting
  std::vector<double> estimated_start_seconds;  // per task, from now
  // Why task i waits: reason_texts[reason_of[i]]; -1 when placed. Tasks of
  // one shape share one text, so a batch of 10,000 waiting tasks makes a
  // handful of strings, not 10,000.
  std::vector<int> reason_of;
  std::vector<std::string> reason_texts;
  absl::string_view Reason(size_t task) const {
    return reason_of[task] < 0 ? absl::string_view() : reason_texts[reason_of[task]];
  }
};

// Best-fit placement of ranked tasks onto agents' free slots and resources.
// Tasks are taken in rank order; each goes to the agent serving its queue,
// having its selector's labels and enough free slots, cpu, memory and GPUs
// that leaves the least behind: GPUs first, then cpu, then memory, so
// small tasks fill small holes and large ones still find room. A task that
// needs no GPU does not take an agent with free GPUs while a GPU task of the
// same queue in the batch still waits. Tasks left waiting get the first
// reason that rules out the agents (no agent serves the queue, none has the
// labels, the largest free amount of a resource, all slots busy), and an
// estimated start from list-scheduling them, in rank order, on the slots as
// they free. Stateless; cost O(tasks x agents of the queue) worst case, much
// less in practice since full agents drop out of the candidates.
class BestFitPlacer {
 public:
  PlacementPlan Place(absl::Span<const PlacementTask> tasks, absl::Span<const int> rank_order,
                      absl::Span<const AgentCapacity> agents) const;
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_BEST_FIT_PLACER_H_
