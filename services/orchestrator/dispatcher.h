#ifndef GYRE_SERVICES_ORCHESTRATOR_DISPATCHER_H_
#define GYRE_SERVICES_ORCHESTRATOR_DISPATCHER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "gyre/v1/cluster.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "services/orchestrator/agent_manager.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/desired_workers.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/engine_outbox.h"
#include "services/orchestrator/execution_table.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/ready_queue.h"
#include "services/orchestrator/task_state_machine.h"

namespace gyre::orchestrator {

// The worker pools' autoscaling policies, by queue name.
struct WorkerPools {
  std::map<std::string, WorkerPoolPolicy> pools;
  WorkerPoolPolicy default_pool;
  const WorkerPoolPolicy& For(const std::string& queue) const {
    auto it = pools.find(queue);
    return it != pools.end() ? it->second : default_pool;
  }
};

// Placement: which ready task goes to which agent. Owns: walking ready
// queues for agents with credit, free slots, the labels and the resources a
// task needs; assignments (split below what an agent accepts in one
// message); the lease records of a dispatch, in one append; why a ready task
// waits; the queue gauges and the autoscaling signal. Must not touch: task
// states beyond leasing (the task state machine makes them), results.
// This is where a scheduler's placement plugs in (docs/architecture.md).
// Not thread-safe: used under the engine lock.
class Dispatcher {
 public:
  // `cluster_backlog` (several orchestrators sharing the executions; null
  // when alone): where this member's backlog per queue is published and the
  // others' is read, so that desired workers follow the cluster's backlog.
  // Not owned; must outlive the dispatcher.
  Dispatcher(ExecutionTable& executions, QueueTable& queues, AgentManager& agents,
             TaskStateMachine& machine, EngineJournal& journal, EngineMetrics& metrics,
             WorkerPools pools, ClusterBacklog* cluster_backlog = nullptr)
      : executions_(executions),
        queues_(queues),
        agents_(agents),
        machine_(machine),
        journal_(journal),
        metrics_(metrics),
        pools_(std::move(pools)),
        cluster_backlog_(cluster_backlog) {}

  // Gives every connected agent with credit what it can take now, then
  // refreshes the queue gauges. Every change that can move a backlog ends in
  // one.
  void Dispatch(Outbox& out);
  // Runs (under the engine lock, so it may only signal) when a dispatch
  // pass ends with tasks still queued: the scheduler link's cue to rank
  // them (scheduler_link.h). Null: nobody listens.
  void set_on_backlog(std::function<void()> on_backlog) { on_backlog_ = std::move(on_backlog); }
  // Gives `agent` what it can take now.
  void DispatchTo(AgentEntry& agent, Outbox& out);

  // The scheduler's placement of a queued task (RankAndPlace's
  // Placement.agent): while the named agent can take the task now (free
  // slot, credit, labels, room), other agents' walks leave it to that agent,
  // which is then given its turn at once; otherwise the hint is ignored and
  // the local order decides. A hint holds for the task's queued entry of
  // `generation` only.
  struct PlacementHint {
    uint32_t execution = 0;
    uint32_t task = 0;
    uint16_t generation = 0;
    std::string agent_id;  // AgentEntry::id, without "agents/"
  };
  // Replaces the hints: each scheduler answer supersedes the last.
  void SetPlacementHints(std::vector<PlacementHint> hints);
  // Why a ready task cannot be leased by any agent connected now (no agent
  // serves its queue, or none could ever fit it); empty if one could.
  std::string WaitingReason(const ExecutionEntry& exec, const TaskEntry& task) const;
  // The worker pools' policies (WaitingExplainer names a pool at its max).
  const WorkerPools& pools() const { return pools_; }
  // See WorkflowEngine::DispatchStallForTest.
  std::string StallForTest() const;

  // The agents gauges and, per queue, depth, running and desired workers.
  // Past 1,000 agents the agents gauges are summed at most every 100 ms,
  // unless `all_agents`. With a ClusterBacklog it also publishes this
  // member's backlog there, and desired workers are the cluster's: from this
  // member's queued and running tasks plus the other members' (depth and
  // running stay this member's, so that dashboards sum them over replicas);
  // a queue only other members have a backlog in is exported too (its
  // desired workers, nothing queued or running here).
  void RefreshMetrics(bool all_agents = false);
  // Every queue: depth, running and desired workers, and the agents
  // connected here. With a ClusterBacklog and `cluster_wide`, depth and
  // running are the cluster's (the other members' as of the last lease
  // round) and queues only the others have a backlog in are listed too;
  // otherwise this engine's own (what the load forecast takes).
  std::vector<gyre::v1::QueueInfo> QueueInfos(bool cluster_wide) const;

 private:
  ExecutionTable& executions_;
  QueueTable& queues_;
  AgentManager& agents_;
  TaskStateMachine& machine_;
  EngineJournal& journal_;
  EngineMetrics& metrics_;
  // Whether any queue holds a ready entry (perhaps stale).
  bool AnyReady() const;
  // RefreshMetrics' part for the queues in elsewhere_scratch_.
  void ExportElsewhere();
  // Whether `agent`'s walk should skip `task` because it is hinted to
  // another agent that can take it now (noted in deferred_to_).
  bool DeferToHintedAgent(const AgentEntry& agent, const ReadyTask& entry, const TaskEntry& task);
  static uint64_t HintKey(uint32_t execution, uint32_t task) {
    return (uint64_t{execution} << 32) | task;
  }
  struct Hint {
    std::string agent_id;
    uint16_t generation = 0;
  };
  absl::flat_hash_map<uint64_t, Hint> hints_;
  // Agents a walk left hinted tasks to, and whether we are in their turn.
  std::vector<std::string> deferred_to_;
  int hint_depth_ = 0;

  const WorkerPools pools_;
  ClusterBacklog* const cluster_backlog_;
  std::function<void()> on_backlog_;
  // RefreshMetrics' exchange with cluster_backlog_, kept for their capacity.
  std::vector<ClusterBacklog::OwnQueue> own_scratch_;
  std::vector<QueueBacklog> cluster_scratch_;
  std::vector<std::pair<std::string, QueueBacklog>> elsewhere_scratch_;
  // Queues exported for the other members' backlog alone (none here).
  absl::flat_hash_set<std::string> exported_elsewhere_;
  // When the agents gauges were last summed, and the connected agents per
  // queue index then.
  absl::Time agent_gauges_time_ = absl::InfinitePast();
  std::vector<int64_t> connected_by_queue_;
  // DispatchTo's lists of tasks taken and of their lease records, kept for
  // their capacity (the records' strings keep theirs too).
  std::vector<ReadyTask> taken_scratch_;
  std::vector<gyre::v1::StateRecord> lease_scratch_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_DISPATCHER_H_
