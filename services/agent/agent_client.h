#ifndef GYRE_SERVICES_AGENT_AGENT_CLIENT_H_
#define GYRE_SERVICES_AGENT_AGENT_CLIENT_H_

#include <sys/types.h>

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/agent_service.pb.h"
#include "libs/common/clock.h"
#include "prometheus/counter.h"
#include "services/agent/agent_config.h"
#include "services/agent/deferred_starts.h"
#include "services/agent/gpu_assignment.h"
#include "services/agent/orchestrator_link.h"
#include "services/agent/result_batching.h"
#include "services/agent/task_cgroup.h"
#include "services/agent/task_runner.h"

namespace gyre::agent {

// The name of an attempt's work directory under the agent's work_dir:
// "{execution id}.{task}.{attempt}", one path component; an error (the
// attempt fails with it) when the ref cannot make one.
absl::StatusOr<std::string> WorkDirName(const gyre::v1::AttemptRef& ref);

// The agent's sessions with its orchestrators: one bidirectional stream
// each, over which it registers, receives assignments (as it grants
// credit), and sends heartbeats, results and credit back. Reconnects with
// backoff when a stream breaks, re-registering with the attempts it still
// runs for that orchestrator; results the orchestrator has not acknowledged
// are sent again (the orchestrator records each attempt once). Heartbeats,
// the reconnect backoff, the drain's grace and the tasks' timeouts run on
// `clock`. Thread-safe.
//
// With several orchestrators (issue 21: they share the executions by
// shard; docs/architecture.md "Agents and several orchestrators"), the
// slots are split by credit: the credit outstanding on all streams plus
// the attempts running never exceed the slots. An attempt belongs to the
// stream that assigned it (its cancels, heartbeats and first result go
// there). A result an orchestrator refuses (ResultRefused: it does not own
// the execution's shard, e.g. the shard moved) is held and sent, renumbered,
// to the other orchestrators in turn, with backoff once all refused, until
// one acknowledges it as durable.
class AgentClient {
 public:
  // One orchestrator, reached through `link` (the single-address case).
  AgentClient(AgentConfig config, std::shared_ptr<OrchestratorLink> link,
              Clock* clock = Clock::Real());
  // No orchestrator yet: SetOrchestrators names them.
  explicit AgentClient(AgentConfig config, Clock* clock = Clock::Real());
  ~AgentClient();

  // The orchestrators to hold streams to, by name (the member's address):
  // new names get a stream, names no longer listed lose theirs (the
  // results waiting for their acknowledgement go to the others). At most
  // kMaxOrchestrators. May be called before or after Start.
  using Orchestrators = std::vector<std::pair<std::string, std::shared_ptr<OrchestratorLink>>>;
  void SetOrchestrators(Orchestrators orchestrators);

  void Start();
  // Stops taking work, lets running tasks finish for up to `grace`, cancels
  // the rest, reports everything and closes the streams.
  void Drain(absl::Duration grace);

  // Handles one message from the (first) orchestrator as the session's
  // reader does (registration settings, assignments, cancels,
  // acknowledgements, refusals); false when the orchestrator asks the agent
  // to end the session. Public so that fuzz/orchestrator_message_fuzz.cc
  // and the tests can drive it without a network; whatever it queues for
  // the orchestrator waits for a session.
  bool HandleMessage(const gyre::v1::OrchestratorMessage& message);

  const std::string& agent_id() const { return agent_id_; }
  // How declared limits are enforced here (cgroups), or why they are not.
  const TaskCgroups& cgroups() const { return *cgroups_; }
  // Counts the attempts the OOM killer ended (set before Start).
  void set_oom_kill_counter(prometheus::Counter* counter) { oom_kills_ = counter; }
  // Count results refused by an orchestrator (ResultRefused) and results
  // dropped because more than kMaxHeldResults waited for an orchestrator
  // to take them (set before Start).
  void set_result_counters(prometheus::Counter* refused, prometheus::Counter* dropped) {
    refused_results_ = refused;
    dropped_results_ = dropped;
  }

  // Count the task processes spawned by how much of the agent's descriptor
  // table their child copied (TaskRunner::set_spawn_counters; set before
  // Start).
  void set_spawn_counters(prometheus::Counter* shared, prometheus::Counter* copied) {
    runner_.set_spawn_counters(shared, copied);
  }

  // Count the task starts sent, and those never sent because the task's
  // result came first (start_report_delay) (set before Start).
  void set_start_counters(prometheus::Counter* sent, prometheus::Counter* in_result) {
    starts_sent_ = sent;
    starts_in_result_ = in_result;
  }

  // Refused results held at once at most (waiting for, or offered to,
  // another orchestrator); beyond it the oldest is dropped, logged and
  // counted (its attempt is then lost and run again by its orchestrator).
  static constexpr size_t kMaxHeldResults = 4096;
  // Messages queued that end a result's linger (result_linger) early.
  static constexpr size_t kLingerMessages = 64;

 private:
  // One orchestrator's stream. The fields without annotation are guarded by
  // the client's mutex_.
  struct Stream {
    Stream(std::string name, std::shared_ptr<OrchestratorLink> link)
        : name(std::move(name)), link(std::move(link)) {}
    const std::string name;
    const std::shared_ptr<OrchestratorLink> link;
    std::thread thread;                      // RunSessions; joined by whoever drops the stream
    OrchestratorSession* session = nullptr;  // the open one
    bool connected = false;                  // registered: credit may go to it
    bool removed = false;                    // no longer a member
    absl::Duration heartbeat_interval = absl::Seconds(5);
    // The orchestrator's (from Registered): bounds the reconnect backoff.
    absl::Duration lease_timeout = absl::Seconds(30);
    // Results sent but not acknowledged, in the order of their numbers
    // (TaskResult.sequence), re-sent after a reconnect.
    std::deque<QueuedMessage> unacked;
    int64_t credit = 0;    // granted to this session and not yet used
    int64_t assigned = 0;  // its attempts not yet done: the slots it holds
    // Outgoing messages of the current session, written by its writer.
    absl::Mutex out_mutex;
    std::deque<QueuedMessage> outgoing ABSL_GUARDED_BY(out_mutex);
    // Its tasks' starts, held until each task has run start_report_delay
    // (dropped if its result comes first); kept across sessions.
    DeferredStarts starts ABSL_GUARDED_BY(out_mutex);
    int32_t pending_credit ABSL_GUARDED_BY(out_mutex) = 0;
    bool writer_stop ABSL_GUARDED_BY(out_mutex) = false;
    // The session's orchestrator takes credit inside TaskResults
    // (Registered.credit_in_results); read by the writer.
    std::atomic<bool> credit_in_results{false};
  };
  using StreamPtr = std::shared_ptr<Stream>;

  // A refused result waiting for an orchestrator that takes it.
  struct HeldResult {
    QueuedMessage result;
    // Streams that refused it since the last backoff.
    absl::flat_hash_set<std::string> refused_by;
    absl::Duration backoff = absl::Milliseconds(500);
    absl::Time next_try = absl::InfinitePast();
  };

  void StartStreamLocked(const StreamPtr& stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void RunSessions(const StreamPtr& stream);
  void RunSession(const StreamPtr& stream);
  bool HandleMessage(const StreamPtr& stream, const gyre::v1::OrchestratorMessage& message);
  void HandleAssignment(const StreamPtr& stream, const gyre::v1::TaskAssignment& task);
  // `tracked`: the attempt has an entry in running_.
  void OnTaskDone(const StreamPtr& stream, const gyre::v1::AttemptRef& ref, bool evaluator,
                  bool tracked, TaskOutcome outcome);
  // Queues a message for the stream's writer thread, with `credit` more
  // free slots to grant. Credits are summed so a busy agent grants them in
  // batches (and gets assignments in batches), after the results queued
  // with them.
  void Send(Stream& stream, gyre::v1::AgentMessage message, int32_t credit = 0);
  void Send(Stream& stream, QueuedMessage message, int32_t credit = 0);
  // The process of `attempt` was spawned: its start goes out once it has
  // run start_report_delay, unless its result comes first.
  void HoldStart(Stream& stream, std::string attempt, const gyre::v1::AttemptRef& ref, pid_t pid);
  // Queues a result; the attempt's start, if still held, is dropped (the
  // orchestrator records a result of a leased attempt as start and end),
  // and `credit` (the slot it frees) is queued with it.
  void SendResult(Stream& stream, const std::string& attempt, QueuedMessage result, int32_t credit);
  void WriterLoop(Stream* stream, OrchestratorSession* session);
  void HeartbeatLoop();
  // Cancels the attempts in `handles`; called without mutex_ held (a
  // cancelled built-in reports at once, on the calling thread).
  void CancelAttempts(const std::vector<TaskRunner::Handle>& handles, absl::Duration grace);
  gyre::v1::Register Registration(Stream& stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  // Credit one stream may hold unused: all the slots with one orchestrator
  // (as before several existed); with several, a share small enough that
  // an idle orchestrator holds few slots away from a busy one.
  int64_t CreditCapLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Grants the slots neither running nor promised to connected streams
  // below the cap, each to the one holding the fewest slots (ties: `origin`,
  // the stream whose attempt just ended or that was just assigned work,
  // then in turn).
  void GrantFreeSlotsLocked(const Stream* origin) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The same in two steps: what each stream gets (its credit counted), then
  // the grants queued for the writers (a stream's may go with a result).
  using SlotGrants = absl::InlinedVector<std::pair<Stream*, int32_t>, 2>;
  SlotGrants FreeSlotGrantsLocked(const Stream* origin) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  static void SendGrants(const SlotGrants& grants);
  // Offers each held result due for a try to a connected stream that has
  // not refused it (renumbered: acknowledgements are cumulative per
  // session); once all refused, waits its backoff.
  void RouteHeldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  static HeldResult Held(QueuedMessage result);
  void HoldLocked(HeldResult held) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool AllAcknowledgedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const AgentConfig config_;
  const std::string agent_id_;
  Clock* const clock_;
  // The user tasks run as, or why none may run (a root agent not allowed
  // to run root tasks: every process task fails with that).
  const absl::StatusOr<std::optional<RunAs>> task_user_;
  const std::vector<ResourceLimit> task_rlimits_;
  const std::shared_ptr<const TaskCgroups> cgroups_;
  // The CPUs the agent offers (`cpu`, else the machine's): results linger
  // only while more processes than these run.
  const int64_t cpus_;
  GpuAssignment gpus_;
  prometheus::Counter* oom_kills_ = nullptr;
  prometheus::Counter* refused_results_ = nullptr;
  prometheus::Counter* dropped_results_ = nullptr;
  prometheus::Counter* starts_sent_ = nullptr;
  prometheus::Counter* starts_in_result_ = nullptr;

  // Lock order: mutex_, then a stream's out_mutex.
  mutable absl::Mutex mutex_;
  std::vector<StreamPtr> streams_ ABSL_GUARDED_BY(mutex_);
  // The first stream ever: HandleMessage(message) acts for it.
  StreamPtr primary_ ABSL_GUARDED_BY(mutex_);
  bool started_ ABSL_GUARDED_BY(mutex_) = false;
  // The shortest interval an orchestrator asked for; heartbeats go to all
  // streams at it.
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mutex_) = absl::Seconds(5);
  // Bumped to wake the heartbeat thread early (new interval, held results).
  uint64_t heartbeat_wake_ ABSL_GUARDED_BY(mutex_) = 0;
  struct Running {
    gyre::v1::AttemptRef ref;
    TaskRunner::Handle handle = 0;
    StreamPtr stream;  // the orchestrator that assigned it
  };
  // Attempts running: "execution/task#attempt" -> entry.
  absl::flat_hash_map<std::string, Running> running_ ABSL_GUARDED_BY(mutex_);
  // Attempts assigned and not yet done (running_ plus those ending at once).
  int64_t in_use_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t last_result_sequence_ ABSL_GUARDED_BY(mutex_) = 0;
  size_t next_turn_ ABSL_GUARDED_BY(mutex_) = 0;  // round robin among streams
  // Refused results waiting for a stream, and those offered to one (by
  // attempt key; their message sits in that stream's unacked).
  std::deque<HeldResult> held_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, HeldResult> offered_ ABSL_GUARDED_BY(mutex_);
  // Attempts cancelled before their assignment arrived (the orchestrator
  // sends an assignment only once its lease is durable, a cancel at once,
  // so a cancel can overtake it): such an assignment is reported cancelled
  // and never runs. Keyed by stream and attempt. The oldest are forgotten
  // beyond kMaxEarlyCancels (a cancel of an attempt that already ended is
  // never matched).
  absl::flat_hash_set<std::string> early_cancels_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::string> early_cancel_order_ ABSL_GUARDED_BY(mutex_);
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread heartbeat_thread_;
  // Declared last, so destroyed first: its destructor kills the processes
  // still running, and their results come back through OnTaskDone, which
  // needs every member above alive (destroyed before it, a client torn
  // down with processes running spun on its destroyed mutex).
  TaskRunner runner_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_AGENT_CLIENT_H_
