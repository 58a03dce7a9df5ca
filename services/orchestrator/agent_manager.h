#ifndef GYRE_SERVICES_ORCHESTRATOR_AGENT_MANAGER_H_
#define GYRE_SERVICES_ORCHESTRATOR_AGENT_MANAGER_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gyre/v1/agent_service.pb.h"
#include "gyre/v1/cluster.pb.h"
#include "services/orchestrator/agent_channel.h"
#include "services/orchestrator/execution_entry.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/result_acks.h"

namespace gyre::orchestrator {

// An agent the engine knows: connected, or gone but within its lease
// timeout (its leases kept for it), or known only by the leases a restart
// recovered until it registers again.
struct AgentEntry {
  std::string id;
  gyre::v1::Register registration;
  std::shared_ptr<AgentChannel> channel;  // null while disconnected
  std::shared_ptr<ResultAcks> acks;       // this session's
  int64_t credit = 0;
  // Resources not reserved by its leases (AgentManager::Reserve).
  double free_cpu = 0;
  int64_t free_memory = 0;
  int32_t free_gpus = 0;
  absl::Time last_seen;
  absl::Time connected_since;  // of the current stream
  bool draining = false;
  std::vector<uint32_t> queues;  // distinct; each counted in its Queue::agents
  // (execution index, task index) of every lease held.
  absl::flat_hash_set<std::pair<uint32_t, uint32_t>> leases;

  // Tasks it may still be given by its registered concurrency.
  int32_t free_slots() const {
    return std::max<int32_t>(0, registration.slots() - static_cast<int32_t>(leases.size()));
  }
  bool serves(uint32_t queue) const {
    return std::find(queues.begin(), queues.end(), queue) != queues.end();
  }
  // Whether its labels match `selector` (every key present, equal value).
  bool matches(const google::protobuf::Map<std::string, std::string>& selector) const;
  // Whether `need` fits its whole offer (0: as much as asked), whatever is
  // reserved now.
  bool offers(const gyre::v1::Resources& need) const;
  // Whether `need` fits what its leases leave free now.
  bool has_room_for(const gyre::v1::Resources& need) const {
    return need.cpu() <= free_cpu + 1e-9 && need.memory_bytes() <= free_memory &&
           need.gpus() <= free_gpus;
  }
};

// The agents the engine knows. Owns: registration checks, one live stream
// per agent id, the agents' queues (counted in the QueueTable), resource
// accounting, and the agents' views (ListAgents). Must not touch: tasks and
// leases' meaning (the agent leases and the dispatcher decide; this table
// only keeps what they decide). Not thread-safe: used under the engine lock.
class AgentManager {
 public:
  // What an agent may register (docs/limits.md). Ids and label keys and
  // values are names: short, so that they fit in status messages, log lines
  // and metric labels.
  static constexpr size_t kMaxAgentIdLength = 63;
  static constexpr size_t kMaxLabelLength = 63;
  static constexpr int kMaxAgentLabels = 64;
  static constexpr size_t kMaxQueueNameLength = 63;
  static constexpr int kMaxQueuesPerAgent = 64;
  // Attempts one Register or Heartbeat may list (slots are at most 4096;
  // unacknowledged results come on top).
  static constexpr int kMaxAttemptRefs = 16384;
  // Attempt numbers an agent may send: far above any real task's (retries
  // are at most 100), far below where adding one overflows.
  static constexpr int64_t kMaxAttempt = int64_t{1} << 31;

  AgentManager(QueueTable& queues, absl::Duration heartbeat_interval)
      : queues_(queues), heartbeat_interval_(heartbeat_interval) {}

  // No state: what a registration must be (InvalidArgument otherwise).
  static absl::Status CheckRegistration(const gyre::v1::Register& registration);
  // No state: an attempt an agent names is bounded, so that nothing it
  // sends can make an attempt number overflow when the next one is counted
  // from it.
  static absl::Status CheckAttemptRef(const gyre::v1::AttemptRef& ref, absl::string_view where);
  static absl::Status CheckAttemptRefs(
      const google::protobuf::RepeatedPtrField<gyre::v1::AttemptRef>& refs,
      absl::string_view where);

  // Registers (or re-registers) `registration` on `channel` at `now`, with
  // its whole offer free (see ReserveKeptLeases). An id belongs to one live
  // stream: FailedPrecondition while the other stream was heard from within
  // two heartbeat intervals (at least 500 ms); past that the old stream is
  // told to go and `*took_over` says why. `*reconnected`: it was known.
  absl::StatusOr<AgentEntry*> Register(const gyre::v1::Register& registration,
                                       std::shared_ptr<AgentChannel> channel, absl::Time now,
                                       bool* reconnected, std::string* took_over);
  // An agent known only by a lease a restart recovered: no channel (nothing
  // is dispatched to it), its lease timeout counting from `now`.
  AgentEntry& KnownByLease(const std::string& id, absl::Time now);
  AgentEntry* Find(const std::string& id);
  // Forgets the agent (its queues too).
  void Remove(const std::string& id);
  // The stream ended: nothing is sent to it until it registers again.
  void Disconnect(AgentEntry& agent);

  // Reserves (or gives back) what a lease needs of the agent's resources.
  static void Reserve(AgentEntry& agent, const gyre::v1::Resources& need);
  static void Unreserve(AgentEntry& agent, const gyre::v1::Resources& need);
  // What a lease of `task` needs of `agent`: the task's declared resources,
  // or for a task placed with predicted ones (TaskPrediction::placed) those,
  // capped at the agent's whole offer so that a prediction larger than any
  // agent still places the task. Fixed for the agent's session, so a lease
  // gives back what it took. `scratch` holds a computed value.
  static const gyre::v1::Resources& LeaseNeed(const AgentEntry& agent, const TaskEntry& task,
                                              gyre::v1::Resources& scratch) {
    if (task.details == nullptr || task.details->prediction == nullptr ||
        !task.details->prediction->placed) {
      return task.spec->resources();
    }
    return CappedPrediction(agent, *task.details->prediction, scratch);
  }

  // Every agent, by id (for walks: dispatch, metrics, views).
  const std::map<std::string, std::unique_ptr<AgentEntry>>& all() const { return agents_; }

 private:
  static const gyre::v1::Resources& CappedPrediction(const AgentEntry& agent,
                                                     const TaskPrediction& prediction,
                                                     gyre::v1::Resources& scratch);

 public:
  std::vector<gyre::v1::AgentInfo> List() const;
  // Connected agents and their free slots in all.
  std::pair<int64_t, int64_t> ConnectedAndFreeSlots() const;

 private:
  // The agent serves `names` from now on (none: it is gone).
  void SetQueues(AgentEntry& agent, const google::protobuf::RepeatedPtrField<std::string>* names);

  QueueTable& queues_;
  const absl::Duration heartbeat_interval_;
  std::map<std::string, std::unique_ptr<AgentEntry>> agents_;
};

// Tells an agent to stop an attempt: SIGTERM, then SIGKILL after a grace.
gyre::v1::OrchestratorMessage CancelMessage(gyre::v1::AttemptRef ref);

// At most this much of a client's string is quoted back in a status
// message: a long one would make the status itself too large to send.
std::string QuoteAgentText(absl::string_view text);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_AGENT_MANAGER_H_
