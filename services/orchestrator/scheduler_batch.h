#ifndef GYRE_SERVICES_ORCHESTRATOR_SCHEDULER_BATCH_H_
#define GYRE_SERVICES_ORCHESTRATOR_SCHEDULER_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "gyre/v1/scheduler_service.pb.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/dispatcher.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/queue_table.h"

namespace gyre::orchestrator {

// One task of a batch sent to the scheduler: where the engine finds it and
// the generation it had then, so that the answer for a task that changed
// since (leased, cancelled, given a new priority) is ignored.
struct BatchedTask {
  uint32_t execution = 0;
  uint32_t task = 0;
  uint16_t generation = 0;
  friend bool operator==(const BatchedTask&, const BatchedTask&) = default;
};

// What the scheduler answered for one batched task besides its rank.
struct TaskAnswer {
  std::string agent_id;             // where it placed it (a hint); "" = not placed
  int32_t effective_priority = -1;  // its priority with aging; -1 = not said
};

// The engine's side of the scheduler link (scheduler_link.h): which ready
// tasks are sent to gyre-scheduler, in what words, and how its order is
// applied. Owns: the last order applied (so an unchanged ready set is not
// sent again), each execution's path lengths (computed once), and bounding
// the stale ready-queue entries its re-pushes leave. Must not touch: task
// states, leases, the user's priorities (TaskEntry::priority stays theirs:
// the scheduler's order is applied within a priority level, which is also
// the scheduler's first criterion). Not thread-safe: used under the engine
// lock, and never does I/O.
class SchedulerBatch {
 public:
  // The duration the orchestrator assumes for a task the predictor has not
  // answered for (no predictor, a task that declares its resources, or the
  // answer not there yet). It is the scheduler's own estimate before
  // anything finished, so the two agree.
  static constexpr double kNominalTaskSeconds = 60;
  // A task's predicted seconds: gyre-predictor's point prediction
  // (TaskRun.predicted_duration) when it answered, else kNominalTaskSeconds.
  static double TaskSeconds(const TaskEntry& task);
  // Stale entries the re-pushes may leave in a queue beyond its live ones
  // before they are swept in one pass (amortised over the pushes).
  static constexpr size_t kStaleSlack = 4096;

  SchedulerBatch(ExecutionTable& executions, QueueTable& queues, AgentManager& agents,
                 EngineJournal& journal)
      : executions_(executions), queues_(queues), agents_(agents), journal_(journal) {}

  // The head of every ready queue, in the order dispatch would take them,
  // up to `max_tasks` in all. False (and `tasks` empty) when they are the
  // tasks of the last order applied, unchanged: nothing to rank again.
  bool Collect(size_t max_tasks, std::vector<BatchedTask>* tasks);
  // The request for `tasks` (as Collect gave them, same order): each task
  // with its queue, needs, waiting time and path to its execution's end;
  // the agents with what is free on each; each execution's remaining work.
  void Describe(absl::Span<const BatchedTask> tasks, gyre::v1::RankAndPlaceRequest* request);
  // The scheduler's answer: `order` indexes `tasks`, best first. Each task
  // still READY at its batched generation is queued again ahead of its
  // priority level, in that order (its old entry goes stale: the generation
  // is bumped). `answers` (empty, or one per task): a placement becomes a
  // hint in `hints` for the new entry; an effective priority above the
  // task's (aging) queues it at that level instead of its own. Returns how
  // many were re-queued.
  size_t Apply(absl::Span<const BatchedTask> tasks, absl::Span<const uint32_t> order,
               absl::Span<const TaskAnswer> answers = {},
               std::vector<Dispatcher::PlacementHint>* hints = nullptr);

 private:
  // An execution's predicted seconds: upward rank of each task (its own
  // seconds plus the longest path of its dependants', as in HEFT) and the
  // mean of a task, computed with TaskSeconds.
  struct PathSeconds {
    std::vector<double> upward;
    double mean_task_seconds = kNominalTaskSeconds;
    // Whether a prediction was there when computed: the predictor answers
    // for a whole execution at once, so ranks computed before are redone
    // once, when a batched task of it has one.
    bool predicted = false;
  };
  const PathSeconds& Paths(const ExecutionEntry& exec, const TaskEntry& batched);
  bool Live(const BatchedTask& batched) const;
  void SweepIfStale(uint32_t queue_index);

  ExecutionTable& executions_;
  QueueTable& queues_;
  AgentManager& agents_;
  EngineJournal& journal_;
  // Sorted, with the generations Apply gave.
  std::vector<BatchedTask> last_applied_;
  // By execution index; entries of executions no longer in a batch are
  // dropped at each Describe.
  absl::flat_hash_map<uint32_t, PathSeconds> paths_;
  // By queue index: entries made stale by Apply since the last sweep.
  std::vector<size_t> stale_made_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SCHEDULER_BATCH_H_
