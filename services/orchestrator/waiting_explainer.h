#ifndef GYRE_SERVICES_ORCHESTRATOR_WAITING_EXPLAINER_H_
#define GYRE_SERVICES_ORCHESTRATOR_WAITING_EXPLAINER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gyre/v1/execution.pb.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/dispatcher.h"
#include "services/orchestrator/execution_entry.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/queue_table.h"

namespace gyre::orchestrator {

// "Why isn't my task running?": for a task that is not leased, running or
// done, the first reason that applies (paused, dependencies, retry backoff,
// a global task running elsewhere, no agent that could ever take it, every
// agent that could is busy, the pool at its max, about to be leased), in
// words and as data (gyre::v1::WaitingExplanation). Owns: only that
// reading. Must not touch: anything (it changes no state; dispatch order is
// the dispatcher's). Built per read under the engine lock, from memory
// only; the work per task is bounded (kMaxPositionScan entries of its ready
// queue, kMaxDurationSamples per duration estimate), so a read of a page
// of task runs stays cheap. Not thread-safe.
class WaitingExplainer {
 public:
  // Ready entries looked at to find a task's queue position; past them the
  // position is reported as unknown (0).
  static constexpr size_t kMaxPositionScan = 100000;
  // Ready entries looked at for all the tasks of one read (a page of up to
  // 10,000 task runs): past them positions are unknown (0), so a read
  // holds the engine lock for milliseconds, not for page x queue.
  static constexpr size_t kMaxScanPerRead = 1000000;
  // Tasks ahead simulated for an estimated start; past them none is given.
  static constexpr int64_t kMaxSimulatedAhead = 10000;
  // Dependencies listed in WaitingExplanation.waiting_on.
  static constexpr int kMaxListedDependencies = 100;
  // Finished tasks a recorded duration is the median of, and tasks of an
  // execution looked at to find them.
  static constexpr int kMaxDurationSamples = 31;
  static constexpr size_t kMaxDurationScan = 10000;

  WaitingExplainer(const ExecutionTable& executions, const QueueTable& queues,
                   const AgentManager& agents, const WorkerPools& pools, absl::Time now)
      : executions_(executions), queues_(queues), agents_(agents), pools_(pools), now_(now) {}

  // Why task `index` of `exec` is not running; nullopt when it is leased,
  // running or done, or its execution ended.
  std::optional<gyre::v1::WaitingExplanation> Explain(const ExecutionEntry& exec,
                                                      uint32_t index) const;

 private:
  gyre::v1::WaitingExplanation ExplainPending(const ExecutionEntry& exec,
                                              const TaskEntry& task) const;
  gyre::v1::WaitingExplanation ExplainReady(const ExecutionEntry& exec, uint32_t index) const;
  // What the connected agents offer a task of `queue` with `spec`'s
  // selector and resources: worked out once per distinct requirement per
  // read, since the tasks of a page mostly share theirs.
  struct Placement {
    std::vector<const AgentEntry*> matching;  // could ever run it
    int32_t matching_slots = 0;
    int serving = 0;                      // serve its queue
    const AgentEntry* closest = nullptr;  // serving, failing the fewest requirements
    std::vector<std::string> closest_failed;
    const AgentEntry* roomy = nullptr;  // matching, with a free slot and room now
    // When each matching agent's leases end (start + recorded duration),
    // soonest first; `known` is false when some lease has no duration.
    std::vector<std::pair<absl::Time, const AgentEntry*>> frees;
    bool known = true;
  };
  const Placement& PlacementFor(uint32_t queue, const gyre::v1::TaskSpec& spec) const;
  // 1-based position of the task among the live ready entries of its queue
  // that one of `matching` could run, in dispatch order; 0 when not found
  // within kMaxPositionScan entries. `ahead` gets the entries before it.
  int64_t QueuePosition(const ExecutionEntry& exec, uint32_t index,
                        const std::vector<const AgentEntry*>& matching,
                        std::vector<std::pair<uint32_t, uint32_t>>* ahead) const;
  // How long task `index` of `exec` is expected to run: the median of its
  // own finished attempts, else of finished tasks of its execution in its
  // queue; nullopt when none finished.
  std::optional<absl::Duration> RecordedDuration(const ExecutionEntry& exec, uint32_t index) const;

  const ExecutionTable& executions_;
  const QueueTable& queues_;
  const AgentManager& agents_;
  const WorkerPools& pools_;
  const absl::Time now_;
  // RecordedDuration's per-(execution, queue) medians, found once per read.
  mutable std::map<std::pair<uint32_t, uint32_t>, std::optional<absl::Duration>> queue_medians_;
  mutable std::map<std::string, Placement> placements_;
  mutable size_t scan_budget_ = kMaxScanPerRead;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_WAITING_EXPLAINER_H_
