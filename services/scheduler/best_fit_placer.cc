#include "services/scheduler/best_fit_placer.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <tuple>

#include "absl/container/node_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gyre::scheduler {
namespace {

bool HasLabels(const AgentCapacity& agent, const PlacementTask& task) {
  for (const auto& [key, value] : task.selector) {
    auto it = agent.labels.find(key);
    if (it == agent.labels.end() || it->second != value) return false;
  }
  return true;
}

bool Fits(const ResourceAmounts& free, const ResourceAmounts& needs) {
  return free.cpu + 1e-9 >= needs.cpu && free.memory_bytes >= needs.memory_bytes &&
         free.gpus >= needs.gpus;
}

std::string GiB(int64_t bytes) { return absl::StrFormat("%.1f GiB", bytes / 1073741824.0); }

// Tasks of one shape (queue, labels, needs) meet the same agents, so the
// agents with the labels and the verdict of a failed search are shared.
struct ShapeKey {
  const PlacementTask* task;
  bool operator==(const ShapeKey& o) const {
    const PlacementTask& a = *task;
    const PlacementTask& b = *o.task;
    return a.queue == b.queue && a.needs.cpu == b.needs.cpu &&
           a.needs.memory_bytes == b.needs.memory_bytes && a.needs.gpus == b.needs.gpus &&
           a.selector == b.selector;
  }
  template <typename H>
  friend H AbslHashValue(H h, const ShapeKey& k) {
    const PlacementTask& t = *k.task;
    return H::combine(std::move(h), t.queue, t.needs.cpu, t.needs.memory_bytes, t.needs.gpus,
                      t.selector);
  }
};

// Tasks of one queue and labels can use the same agents.
struct LabelGroupKey {
  const PlacementTask* task;
  bool operator==(const LabelGroupKey& o) const {
    return task->queue == o.task->queue && task->selector == o.task->selector;
  }
  template <typename H>
  friend H AbslHashValue(H h, const LabelGroupKey& k) {
    return H::combine(std::move(h), k.task->queue, k.task->selector);
  }
};

struct Shape {
  bool labelled_known = false;
  std::vector<int> labelled;  // agents of the queue with the task's labels
  bool failed = false;        // a search found no agent: capacity only shrinks
  int reason = -1;            // index into PlacementPlan::reason_texts
};

// List-schedules the tasks in rank order on every slot as it frees: placed
// tasks hold their slot for their predicted duration, busy slots free when
// the caller says (or after the batch's median prediction), and each waiting
// task starts on the first slot to free among the agents of its queue with
// its labels (resources are not re-checked: an estimate, not a plan).
void EstimateStarts(absl::Span<const PlacementTask> tasks, absl::Span<const int> rank_order,
                    absl::Span<const AgentCapacity> agents, const std::vector<Shape*>& shape_of,
                    PlacementPlan* plan) {
  std::vector<double> predicted;
  predicted.reserve(tasks.size());
  for (const PlacementTask& t : tasks) predicted.push_back(t.predicted_seconds);
  double median = 0;
  if (!predicted.empty()) {
    std::nth_element(predicted.begin(), predicted.begin() + predicted.size() / 2, predicted.end());
    median = predicted[predicted.size() / 2];
  }
  using SlotHeap = std::priority_queue<double, std::vector<double>, std::greater<>>;
  std::vector<SlotHeap> slots(agents.size());
  for (size_t a = 0; a < agents.size(); ++a) {
    const AgentCapacity& agent = agents[a];
    for (int j = 0; j < agent.busy_slots; ++j) {
      slots[a].push(j < static_cast<int>(agent.busy_slot_free_in_seconds.size())
                        ? agent.busy_slot_free_in_seconds[j]
                        : median);
    }
    for (int j = 0; j < agent.free_slots; ++j) slots[a].push(0);
  }
  auto occupy = [&](int a, double from, double seconds) {
    if (!slots[a].empty()) slots[a].pop();
    slots[a].push(from + seconds);
  };
  for (int i : rank_order) {
    if (plan->agent[i] >= 0) occupy(plan->agent[i], 0, tasks[i].predicted_seconds);
  }
  // One pool of slot times per (queue, labels): tasks of one pool compete
  // exactly; pools sharing agents (a labelled and an unlabelled task of
  // one queue) do not see each other's waiting tasks, which keeps this
  // O(log slots) per task.
  absl::flat_hash_map<LabelGroupKey, SlotHeap> pools;
  for (int i : rank_order) {
    if (plan->agent[i] >= 0 || shape_of[i] == nullptr || shape_of[i]->labelled.empty()) continue;
    auto [it, inserted] = pools.try_emplace(LabelGroupKey{&tasks[i]});
    SlotHeap& pool = it->second;
    if (inserted) {
      for (int a : shape_of[i]->labelled) {
        for (SlotHeap copy = slots[a]; !copy.empty(); copy.pop()) pool.push(copy.top());
      }
    }
    const double start = pool.top();
    pool.pop();
    pool.push(start + tasks[i].predicted_seconds);
    plan->estimated_start_seconds[i] = start;
  }
}

}  // namespace

PlacementPlan BestFitPlacer::Place(absl::Span<const PlacementTask> tasks,
                                   absl::Span<const int> rank_order,
                                   absl::Span<const AgentCapacity> agents) const {
  const size_t n = tasks.size();
  PlacementPlan plan;
  plan.agent.assign(n, -1);
  plan.reason_of.assign(n, -1);
  plan.estimated_start_seconds.assign(n, -1);

  std::vector<ResourceAmounts> free(agents.size());
  std::vector<int> free_slots(agents.size());
  absl::flat_hash_map<std::string, std::vector<int>> by_queue;
  for (size_t a = 0; a < agents.size(); ++a) {
    free[a] = agents[a].free;
    free_slots[a] = agents[a].free_slots;
    for (const std::string& q : agents[a].queues) by_queue[q].push_back(static_cast<int>(a));
  }
  absl::flat_hash_map<std::string, std::vector<int>> open_by_queue = by_queue;
  absl::flat_hash_map<std::string, int> gpu_tasks_waiting;
  for (const PlacementTask& t : tasks) {
    if (t.needs.gpus > 0) ++gpu_tasks_waiting[t.queue];
  }
  absl::node_hash_map<ShapeKey, Shape> shapes;  // stable addresses
  std::vector<Shape*> shape_of(n, nullptr);

  std::vector<int> held;  // CPU tasks kept off GPU agents, retried below
  auto attempt = [&](int i) {
    const PlacementTask& t = tasks[i];
    Shape& shape = shapes[ShapeKey{&t}];
    shape_of[i] = &shape;
    if (shape.failed) {
      plan.reason_of[i] = shape.reason;
      return;
    }
    auto queue_it = open_by_queue.find(t.queue);
    const bool keep_gpus = t.needs.gpus == 0 && gpu_tasks_waiting[t.queue] > 0;
    int best = -1;
    std::tuple<int, double, int64_t> best_left;
    bool passed_gpu_agent = false;
    if (queue_it != open_by_queue.end()) {
      std::vector<int>& open = queue_it->second;
      for (size_t k = 0; k < open.size();) {
        const int a = open[k];
        if (free_slots[a] == 0) {  // full for the rest of the batch
          open[k] = open.back();
          open.pop_back();
          continue;
        }
        ++k;
        if (!Fits(free[a], t.needs) || !HasLabels(agents[a], t)) continue;
        if (keep_gpus && free[a].gpus > 0) {
          passed_gpu_agent = true;
          continue;
        }
        const std::tuple<int, double, int64_t> left{free[a].gpus - t.needs.gpus,
                                                    free[a].cpu - t.needs.cpu,
                                                    free[a].memory_bytes - t.needs.memory_bytes};
        if (best < 0 || left < best_left) {
          best = a;
          best_left = left;
        }
      }
    }
    if (best >= 0) {
      plan.agent[i] = best;
      plan.reason_of[i] = -1;
      plan.estimated_start_seconds[i] = 0;
      --free_slots[best];
      free[best].cpu -= t.needs.cpu;
      free[best].memory_bytes -= t.needs.memory_bytes;
      free[best].gpus -= t.needs.gpus;
      if (t.needs.gpus > 0) --gpu_tasks_waiting[t.queue];
      return;
    }
    // Why not: the first requirement that rules out every agent.
    shape.failed = !passed_gpu_agent;  // the GPU hold may lift within the batch
    if (passed_gpu_agent) held.push_back(i);
    std::string reason;
    auto all_it = by_queue.find(t.queue);
    if (all_it == by_queue.end()) {
      reason = absl::StrFormat("no connected agent serves queue \"%s\"", t.queue);
    } else {
      if (!shape.labelled_known) {
        for (int a : all_it->second) {
          if (HasLabels(agents[a], t)) shape.labelled.push_back(a);
        }
        shape.labelled_known = true;
      }
      ResourceAmounts most;
      for (int a : shape.labelled) {
        most.cpu = std::max(most.cpu, free[a].cpu);
        most.memory_bytes = std::max(most.memory_bytes, free[a].memory_bytes);
        most.gpus = std::max(most.gpus, free[a].gpus);
      }
      std::vector<std::string> wanted;
      for (const auto& [k, v] : t.selector) wanted.push_back(absl::StrCat(k, "=", v));
      if (shape.labelled.empty()) {
        reason = absl::StrFormat("no agent serving queue \"%s\" has labels %s", t.queue,
                                 absl::StrJoin(wanted, ","));
      } else if (t.needs.gpus > most.gpus) {
        reason = absl::StrFormat("needs %d GPUs, most free on a matching agent: %d", t.needs.gpus,
                                 most.gpus);
      } else if (t.needs.memory_bytes > most.memory_bytes) {
        reason = absl::StrFormat("needs %s memory, largest free on a matching agent: %s",
                                 GiB(t.needs.memory_bytes), GiB(most.memory_bytes));
      } else if (t.needs.cpu > most.cpu + 1e-9) {
        reason = absl::StrFormat("needs %g cpu, most free on a matching agent: %g", t.needs.cpu,
                                 most.cpu);
      } else if (passed_gpu_agent) {
        reason = absl::StrCat(
            "the free agents with GPUs are kept for GPU tasks waiting in queue \"", t.queue, "\"");
      } else {
        reason = absl::StrFormat("all %d matching agents are busy (no free slot fits)",
                                 static_cast<int>(shape.labelled.size()));
      }
    }
    // A shape's reason changes only as agents fill up: keep the text of the
    // last search unless it says the same.
    if (shape.reason < 0 || plan.reason_texts[shape.reason] != reason) {
      shape.reason = static_cast<int>(plan.reason_texts.size());
      plan.reason_texts.push_back(std::move(reason));
    }
    plan.reason_of[i] = shape.reason;
  };
  for (int i : rank_order) attempt(i);
  // The GPU tasks that outranked the held ones have been placed (or cannot
  // be): what GPU agents still have free is the held tasks' to take.
  for (int i : held) {
    if (plan.agent[i] < 0 && gpu_tasks_waiting[tasks[i].queue] == 0) attempt(i);
  }

  EstimateStarts(tasks, rank_order, agents, shape_of, &plan);
  return plan;
}

}  // namespace gyre::scheduler
