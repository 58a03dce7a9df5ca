#ifndef GYRE_SERVICES_AGENT_AGENT_CLIENT_H_
#define GYRE_SERVICES_AGENT_AGENT_CLIENT_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/agent_service.pb.h"
#include "libs/common/clock.h"
#include "prometheus/counter.h"
#include "services/agent/agent_config.h"
#include "services/agent/gpu_assignment.h"
#include "services/agent/orchestrator_link.h"
#include "services/agent/result_batching.h"
#include "services/agent/task_cgroup.h"
#include "services/agent/task_runner.h"

namespace gyre::agent {

// The agent's session with the orchestrator: one bidirectional stream over
// which it registers, receives assignments (as it grants credit), and sends
// heartbeats, results and credit back. Reconnects with backoff when the
// stream breaks, re-registering with the attempts it still runs; results the
// orchestrator has not acknowledged are sent again (the orchestrator records
// each attempt once). Heartbeats, the reconnect backoff, the drain's grace
// and the tasks' timeouts run on `clock`. Thread-safe.
class AgentClient {
 public:
  AgentClient(AgentConfig config, std::shared_ptr<OrchestratorLink> link,
              Clock* clock = Clock::Real());
  ~AgentClient();

  void Start();
  // Stops taking work, lets running tasks finish for up to `grace`, cancels
  // the rest, reports everything and closes the stream.
  void Drain(absl::Duration grace);

  const std::string& agent_id() const { return agent_id_; }
  // How declared limits are enforced here (cgroups), or why they are not.
  const TaskCgroups& cgroups() const { return *cgroups_; }
  // Counts the attempts the OOM killer ended (set before Start).
  void set_oom_kill_counter(prometheus::Counter* counter) { oom_kills_ = counter; }

 private:
  void RunSessions();
  void RunSession();
  void HandleAssignment(const gyre::v1::TaskAssignment& task);
  // `tracked`: the attempt has an entry in running_.
  void OnTaskDone(const gyre::v1::AttemptRef& ref, bool evaluator, bool tracked,
                  TaskOutcome outcome);
  // Queues a message for the session's writer thread, with `credit` more
  // free slots to grant. Credits are summed so a busy agent grants them in
  // batches (and gets assignments in batches), after the results queued
  // with them.
  void Send(gyre::v1::AgentMessage message, int32_t credit = 0);
  void Send(QueuedMessage message, int32_t credit = 0);
  void WriterLoop(OrchestratorSession* session);
  void HeartbeatLoop();
  // Cancels the attempts in `handles`; called without mutex_ held (a
  // cancelled built-in reports at once, on the calling thread).
  void CancelAttempts(const std::vector<TaskRunner::Handle>& handles, absl::Duration grace);
  gyre::v1::Register Registration();

  const AgentConfig config_;
  const std::string agent_id_;
  const std::shared_ptr<OrchestratorLink> link_;
  Clock* const clock_;
  // The user tasks run as, or why none may run (a root agent not allowed
  // to run root tasks: every process task fails with that).
  const absl::StatusOr<std::optional<RunAs>> task_user_;
  const std::vector<ResourceLimit> task_rlimits_;
  const std::shared_ptr<const TaskCgroups> cgroups_;
  GpuAssignment gpus_;
  prometheus::Counter* oom_kills_ = nullptr;
  TaskRunner runner_;

  // Lock order: mutex_, then out_mutex_.
  absl::Mutex mutex_;
  OrchestratorSession* session_ ABSL_GUARDED_BY(mutex_) = nullptr;  // the open one
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mutex_) = absl::Seconds(5);
  // The orchestrator's (from Registered): bounds the reconnect backoff.
  absl::Duration lease_timeout_ ABSL_GUARDED_BY(mutex_) = absl::Seconds(30);
  // Attempts running: "execution/task#attempt" -> (ref, runner handle).
  absl::flat_hash_map<std::string, std::pair<gyre::v1::AttemptRef, TaskRunner::Handle>> running_
      ABSL_GUARDED_BY(mutex_);
  // Results sent but not acknowledged, in the order of their numbers
  // (TaskResult.sequence), re-sent after a reconnect.
  std::deque<QueuedMessage> unacked_ ABSL_GUARDED_BY(mutex_);
  uint64_t last_result_sequence_ ABSL_GUARDED_BY(mutex_) = 0;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Outgoing messages of the current session, written by its writer thread.
  absl::Mutex out_mutex_;
  std::deque<QueuedMessage> outgoing_ ABSL_GUARDED_BY(out_mutex_);
  int32_t pending_credit_ ABSL_GUARDED_BY(out_mutex_) = 0;
  bool writer_stop_ ABSL_GUARDED_BY(out_mutex_) = false;
  std::thread session_thread_;
  std::thread heartbeat_thread_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_CLIENT_H_
