#include "services/agent/agent_client.h"

#include <unistd.h>

#include <algorithm>

#include <google/protobuf/util/time_util.h>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/common/limits.h"
#include "libs/common/version.h"
#include "libs/logging/logger.h"
#include "services/agent/result_batching.h"

namespace gyre::agent {

namespace v1 = ::gyre::v1;
using google::protobuf::util::TimeUtil;

namespace {

std::string Key(const v1::AttemptRef& ref) {
  return absl::StrCat(ref.execution(), "/", ref.task_id(), "#", ref.attempt());
}

std::string AgentId(const AgentConfig& config) {
  if (!config.id.empty()) return config.id;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::string base = config.name.empty() ? host : config.name;
  std::string id;
  for (char c : base) id.push_back(absl::ascii_isalnum(c) ? absl::ascii_tolower(c) : '-');
  absl::BitGen random;
  return absl::StrFormat("%s-%06x", id.substr(0, 48), absl::Uniform<uint32_t>(random, 0, 1 << 24));
}

std::shared_ptr<const TaskCgroups> FindCgroups(const AgentConfig& config,
                                               const std::string& agent_id) {
  std::shared_ptr<const TaskCgroups> cgroups =
      config.cgroups ? TaskCgroups::Detect(absl::StrCat("gyre-", agent_id))
                     : TaskCgroups::Disabled("turned off by configuration (cgroups: false)");
  // Said once, at start (and in every registration).
  if (cgroups->enforced()) {
    logging::Info("tasks' declared memory and CPU are enforced", {{"how", cgroups->description()}});
  } else {
    logging::Warn("tasks' declared memory and CPU are advisory on this agent",
                  {{"why", cgroups->description()}});
  }
  return cgroups;
}

google::protobuf::Duration ToProto(absl::Duration duration) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
}

}  // namespace

AgentClient::AgentClient(AgentConfig config, std::shared_ptr<OrchestratorLink> link, Clock* clock)
    : config_(std::move(config)),
      agent_id_(AgentId(config_)),
      link_(std::move(link)),
      clock_(clock),
      task_user_(ResolveTaskUser(config_)),
      task_rlimits_(TaskRlimits(config_)),
      cgroups_(FindCgroups(config_, agent_id_)),
      gpus_(GpuDeviceList(config_)),
      runner_(clock, cgroups_) {}

AgentClient::~AgentClient() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    if (session_ != nullptr) session_->Cancel();
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

void AgentClient::Start() {
  session_thread_ = std::thread([this] { RunSessions(); });
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
}

v1::Register AgentClient::Registration() {
  v1::Register registration;
  registration.set_agent_id(agent_id_);
  registration.set_display_name(config_.name.empty() ? agent_id_ : config_.name);
  registration.set_slots(static_cast<int32_t>(config_.slots));
  for (const std::string& queue : config_.queues) registration.add_queues(queue);
  for (const auto& [key, value] : config_.labels) (*registration.mutable_labels())[key] = value;
  // 0 means "what this machine has".
  registration.mutable_resources()->set_cpu(
      config_.cpu > 0 ? config_.cpu : static_cast<double>(std::thread::hardware_concurrency()));
  registration.mutable_resources()->set_memory_bytes(
      config_.memory_bytes > 0 ? config_.memory_bytes
                               : static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
                                     static_cast<int64_t>(sysconf(_SC_PAGESIZE)));
  registration.mutable_resources()->set_gpus(
      static_cast<int32_t>(std::max<size_t>(config_.gpus, GpuDeviceList(config_).size())));
  registration.set_version(kGyreVersion);
  registration.set_limits_enforced(cgroups_->enforced());
  registration.set_limits_enforcement(cgroups_->description());
  absl::MutexLock lock(&mutex_);
  for (const auto& [key, entry] : running_) *registration.add_running() = entry.first;
  // Finished, but the result is not durable yet: the lease must be kept
  // for the result sent again right after.
  for (const QueuedMessage& result : unacked_) {
    *registration.add_running() = result->task_result().ref();
  }
  registration.set_initial_credit(std::max<int32_t>(
      0, static_cast<int32_t>(config_.slots) - static_cast<int32_t>(running_.size())));
  return registration;
}

void AgentClient::RunSessions() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) return;
    }
    const absl::Time started = clock_->Now();
    RunSession();
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_ || draining_) return;
    }
    if (clock_->Now() - started > absl::Seconds(10)) backoff = absl::Milliseconds(100);
    logging::Warn("orchestrator stream closed; reconnecting",
                  {{"agent", agent_id_}, {"backoff_ms", absl::ToInt64Milliseconds(backoff)}});
    absl::MutexLock lock(&mutex_);
    // The destructor ends the wait: it need not last the backoff.
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stopping_; };
    if (clock_->AwaitWithDeadline(&mutex_, absl::Condition(&stopping), clock_->Now() + backoff)) {
      return;
    }
    // Several tries within a lease timeout: after an orchestrator restart
    // the agent must be back before its leases are given up.
    const absl::Duration cap =
        std::clamp(lease_timeout_ / 4, absl::Milliseconds(100), absl::Seconds(5));
    backoff = std::min(backoff * 2, cap);
  }
}

void AgentClient::RunSession() {
  std::unique_ptr<OrchestratorSession> session = link_->Open();
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    session_ = session.get();
  }
  v1::AgentMessage hello;
  *hello.mutable_register_() = Registration();
  bool ok = session->Write(hello);
  {
    // Both locks: no result is numbered and queued in between, so results
    // go out in the order of their numbers (acknowledged cumulatively).
    absl::MutexLock lock(&mutex_);
    absl::MutexLock out_lock(&out_mutex_);
    outgoing_.clear();  // the new registration carries the credit
    pending_credit_ = 0;
    writer_stop_ = false;
    // Results of the previous session that were never acknowledged.
    if (ok) outgoing_.insert(outgoing_.end(), unacked_.begin(), unacked_.end());
  }
  std::thread writer([this, session = session.get()] { WriterLoop(session); });
  v1::OrchestratorMessage message;
  while (ok && session->Read(&message)) {
    switch (message.kind_case()) {
      case v1::OrchestratorMessage::kRegistered: {
        absl::MutexLock lock(&mutex_);
        const absl::Duration interval = absl::Nanoseconds(
            TimeUtil::DurationToNanoseconds(message.registered().heartbeat_interval()));
        // An orchestrator that names none leaves the default.
        if (interval > absl::ZeroDuration()) heartbeat_interval_ = interval;
        const absl::Duration lease_timeout = absl::Nanoseconds(
            TimeUtil::DurationToNanoseconds(message.registered().lease_timeout()));
        if (lease_timeout > absl::ZeroDuration()) lease_timeout_ = lease_timeout;
        logging::Info("registered with the orchestrator",
                      {{"agent", agent_id_}, {"slots", config_.slots}});
        break;
      }
      case v1::OrchestratorMessage::kAssignment:
        for (const v1::TaskAssignment& task : message.assignment().tasks()) HandleAssignment(task);
        break;
      case v1::OrchestratorMessage::kCancel: {
        std::vector<TaskRunner::Handle> handle;
        {
          absl::MutexLock lock(&mutex_);
          auto it = running_.find(Key(message.cancel().ref()));
          if (it != running_.end()) handle.push_back(it->second.second);
        }
        CancelAttempts(
            handle, absl::Nanoseconds(TimeUtil::DurationToNanoseconds(message.cancel().grace())));
        break;
      }
      case v1::OrchestratorMessage::kResultAck: {
        absl::MutexLock lock(&mutex_);
        const uint64_t through = message.result_ack().through_sequence();
        while (!unacked_.empty() && unacked_.front()->task_result().sequence() <= through) {
          unacked_.pop_front();
        }
        break;
      }
      case v1::OrchestratorMessage::kShutdown:
        logging::Warn("orchestrator asked the agent to reconnect",
                      {{"reason", message.shutdown().reason()}});
        session->Cancel();
        break;
      default:
        break;
    }
  }
  {
    absl::MutexLock lock(&mutex_);
    session_ = nullptr;
  }
  {
    absl::MutexLock lock(&out_mutex_);
    writer_stop_ = true;
  }
  writer.join();
  const absl::Status status = session->Finish();
  if (!status.ok() && !absl::IsCancelled(status)) {
    logging::Warn("orchestrator stream ended", {{"code", static_cast<int>(status.code())},
                                                {"error", std::string(status.message())}});
  }
}

void AgentClient::Send(v1::AgentMessage message, int32_t credit) {
  if (message.has_credit()) {
    absl::MutexLock lock(&out_mutex_);
    pending_credit_ += message.credit().tasks() + credit;
    return;
  }
  Send(std::make_shared<const v1::AgentMessage>(std::move(message)), credit);
}

void AgentClient::Send(QueuedMessage message, int32_t credit) {
  absl::MutexLock lock(&out_mutex_);
  outgoing_.push_back(std::move(message));
  pending_credit_ += credit;
}

void AgentClient::WriterLoop(OrchestratorSession* session) {
  while (true) {
    std::deque<QueuedMessage> batch;
    int32_t credit = 0;
    {
      absl::MutexLock lock(&out_mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(out_mutex_) {
        return writer_stop_ || !outgoing_.empty() || pending_credit_ > 0;
      };
      out_mutex_.Await(absl::Condition(&ready));
      if (writer_stop_) return;
      batch.swap(outgoing_);
      std::swap(credit, pending_credit_);
    }
    // Results finished together travel together.
    const ResultBatches batches(std::move(batch));
    for (const v1::AgentMessage* message : batches.messages()) {
      if (!session->Write(*message)) return;  // the reader sees the break too
    }
    if (credit > 0) {
      // Results first, then the credit they free: one message for the batch.
      v1::AgentMessage grant;
      grant.mutable_credit()->set_tasks(credit);
      if (!session->Write(grant)) return;
    }
  }
}

void AgentClient::HandleAssignment(const v1::TaskAssignment& task) {
  TaskLaunch launch;
  if (task.has_timeout()) {
    launch.timeout = absl::Nanoseconds(TimeUtil::DurationToNanoseconds(task.timeout()));
  }
  launch.kill_grace = config_.kill_grace;
  // No more than the orchestrator keeps (it would cut the rest on arrival,
  // after it crossed the network).
  launch.max_output_bytes =
      std::min(static_cast<size_t>(config_.max_output_bytes), limits::kMaxResultTailBytes);
  if (task.builtin().kind() == v1::BuiltinExecutor::NOOP) {
    launch.builtin = TaskLaunch::Builtin::kNoop;
  } else if (task.builtin().kind() == v1::BuiltinExecutor::SLEEP) {
    launch.builtin = TaskLaunch::Builtin::kSleep;
    launch.sleep = absl::Nanoseconds(TimeUtil::DurationToNanoseconds(task.builtin().duration()));
  } else {
    // Only a process needs a command line, an environment and a directory.
    launch.argv.assign(task.command().begin(), task.command().end());
    launch.shell = task.shell();
    for (const auto& [key, value] : task.env()) launch.env[key] = value;
    // One directory per attempt, directly under the root, so that removing
    // it leaves nothing behind: {execution}.{task}.{attempt}.
    launch.work_dir = absl::StrCat(config_.work_dir, "/", task.ref().execution().substr(11), ".",
                                   task.ref().task_id(), ".", task.ref().attempt());
    launch.remove_work_dir = !config_.keep_work_dirs;
    launch.rlimits = task_rlimits_;
    launch.limits.memory_bytes = task.resources().memory_bytes();
    launch.limits.cpu = task.resources().cpu();
  }
  const v1::AttemptRef& ref = task.ref();
  const bool evaluator = task.evaluator();
  if (launch.builtin == TaskLaunch::Builtin::kNone) {
    // Refused before anything runs: the result says why.
    absl::Status refused = task_user_.status();
    if (refused.ok()) {
      launch.run_as = *task_user_;
      if (gpus_.has_devices()) {
        absl::StatusOr<std::vector<std::string>> devices =
            gpus_.Acquire(Key(ref), task.resources().gpus());
        if (devices.ok()) {
          GpuAssignment::SetEnvironment(*devices, &launch.env);
        } else {
          refused = devices.status();
        }
      }
    }
    if (!refused.ok()) {
      TaskOutcome outcome;
      outcome.kind = TaskOutcome::Kind::kFailed;
      outcome.error = std::string(refused.message());
      OnTaskDone(ref, evaluator, /*tracked=*/false, std::move(outcome));
      return;
    }
  }
  if (launch.builtin == TaskLaunch::Builtin::kNoop) {
    // Done before it could be seen running: no entry, runner or callback.
    TaskOutcome outcome;
    outcome.kind = TaskOutcome::Kind::kSucceeded;
    OnTaskDone(ref, evaluator, /*tracked=*/false, std::move(outcome));
    return;
  }
  // Output streams to the orchestrator while the task runs (a builtin
  // writes none).
  if (launch.builtin == TaskLaunch::Builtin::kNone) {
    launch.on_output = [this, ref](int stream, int64_t offset, absl::string_view data) {
      v1::AgentMessage message;
      v1::TaskLogChunk* log = message.mutable_log_chunk();
      *log->mutable_ref() = ref;
      log->mutable_chunk()->set_stream(stream == 1 ? v1::LogChunk::STDOUT : v1::LogChunk::STDERR);
      log->mutable_chunk()->set_offset(offset);
      log->mutable_chunk()->set_data(std::string(data));
      Send(std::move(message));
    };
  }
  const std::string key = Key(ref);
  {
    absl::MutexLock lock(&mutex_);
    running_[key] = {ref, 0};
  }
  if (launch.builtin == TaskLaunch::Builtin::kNone) {
    v1::AgentMessage started;
    *started.mutable_task_started()->mutable_ref() = ref;
    Send(std::move(started));
  }
  const TaskRunner::Handle handle =
      runner_.Start(std::move(launch), [this, ref, evaluator](TaskOutcome outcome) {
        OnTaskDone(ref, evaluator, /*tracked=*/true, std::move(outcome));
      });
  absl::MutexLock lock(&mutex_);
  auto it = running_.find(key);
  if (it != running_.end()) it->second.second = handle;
}

void AgentClient::OnTaskDone(const v1::AttemptRef& ref, bool evaluator, bool tracked,
                             TaskOutcome outcome) {
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = ref;
  switch (outcome.kind) {
    case TaskOutcome::Kind::kSucceeded:
      result->set_outcome(v1::ATTEMPT_SUCCEEDED);
      break;
    case TaskOutcome::Kind::kFailed:
      result->set_outcome(v1::ATTEMPT_FAILED);
      break;
    case TaskOutcome::Kind::kTimedOut:
      result->set_outcome(v1::ATTEMPT_TIMED_OUT);
      break;
    case TaskOutcome::Kind::kCancelled:
      result->set_outcome(v1::ATTEMPT_CANCELLED);
      break;
  }
  result->set_exit_code(outcome.exit_code);
  result->set_signal(outcome.signal);
  // An evaluator may print its decision instead of writing $GYRE_OUTPUT.
  // Empty strings are left unset: setting one still allocates.
  const std::string& output_json =
      evaluator && outcome.output_json.empty() ? outcome.stdout_head : outcome.output_json;
  if (!output_json.empty()) result->set_output_json(output_json);
  *result->mutable_wall_time() = ToProto(outcome.wall_time);
  *result->mutable_cpu_time() = ToProto(outcome.cpu_time);
  result->set_peak_rss_bytes(outcome.peak_rss_bytes);
  if (!outcome.peak_memory_source.empty()) {
    result->set_peak_memory_source(outcome.peak_memory_source);
  }
  if (outcome.oom_killed && oom_kills_ != nullptr) oom_kills_->Increment();
  if (gpus_.has_devices()) gpus_.Release(Key(ref));
  if (!outcome.error.empty()) result->set_error(outcome.error);
  result->set_stdout_bytes(outcome.stdout_bytes);
  result->set_stderr_bytes(outcome.stderr_bytes);
  // The proto's "tails" are the first bytes of each stream, as streamed.
  if (!outcome.stdout_head.empty()) result->set_stdout_tail(std::move(outcome.stdout_head));
  if (!outcome.stderr_head.empty()) result->set_stderr_tail(std::move(outcome.stderr_head));
  // Kept until acknowledged, and sent: the same message.
  auto queued = std::make_shared<v1::AgentMessage>(std::move(message));
  absl::MutexLock lock(&mutex_);
  if (tracked) running_.erase(Key(ref));
  queued->mutable_task_result()->set_sequence(++last_result_sequence_);
  unacked_.push_back(queued);
  // Queued under mutex_ too, so results go out in the order of their
  // numbers; the slot it frees goes with it.
  Send(QueuedMessage(std::move(queued)), draining_ ? 0 : 1);
}

void AgentClient::HeartbeatLoop() {
  absl::Time last_sent = clock_->Now();
  while (true) {
    v1::AgentMessage heartbeat;
    {
      absl::MutexLock lock(&mutex_);
      // The orchestrator sets the interval at registration. A wait begun
      // with the default (5 s) must not outlast a shorter interval it asks
      // for: with a lease timeout below 5 s the agent would be declared dead
      // before its first heartbeat.
      for (absl::Duration interval = heartbeat_interval_;; interval = heartbeat_interval_) {
        auto stop_or_new_interval = [this, interval]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
          return stopping_ || heartbeat_interval_ != interval;
        };
        if (!clock_->AwaitWithDeadline(&mutex_, absl::Condition(&stop_or_new_interval),
                                       last_sent + interval)) {
          break;  // due
        }
        if (stopping_) return;
      }
      heartbeat.mutable_heartbeat();
      for (const auto& [key, entry] : running_) {
        *heartbeat.mutable_heartbeat()->add_running() = entry.first;
      }
    }
    Send(std::move(heartbeat));
    last_sent = clock_->Now();
  }
}

void AgentClient::CancelAttempts(const std::vector<TaskRunner::Handle>& handles,
                                 absl::Duration grace) {
  for (const TaskRunner::Handle handle : handles) runner_.Cancel(handle, grace);
}

void AgentClient::Drain(absl::Duration grace) {
  {
    absl::MutexLock lock(&mutex_);
    draining_ = true;
  }
  v1::AgentMessage draining;
  *draining.mutable_draining()->mutable_grace() = ToProto(grace);
  Send(std::move(draining));
  logging::Info("draining: running tasks get the grace period",
                {{"running", runner_.running()}, {"grace_seconds", absl::ToDoubleSeconds(grace)}});
  const absl::Time deadline = clock_->Now() + grace;
  // Every attempt that ended has queued its result (OnTaskDone erases it).
  auto all_reported = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return running_.empty(); };
  std::vector<TaskRunner::Handle> overdue;
  {
    absl::MutexLock lock(&mutex_);
    if (!clock_->AwaitWithDeadline(&mutex_, absl::Condition(&all_reported), deadline)) {
      for (const auto& [key, entry] : running_) overdue.push_back(entry.second);
    }
  }
  if (!overdue.empty()) {
    CancelAttempts(overdue, absl::Seconds(1));
    absl::MutexLock lock(&mutex_);
    if (!clock_->AwaitWithDeadline(&mutex_, absl::Condition(&all_reported),
                                   deadline + absl::Seconds(3))) {
      // The processes die in real time, whatever the clock: a test's clock
      // could pass those 3 s before a killed task has reported (its result
      // was then lost with the session).
      mutex_.AwaitWithTimeout(absl::Condition(&all_reported), absl::Seconds(3));
    }
  }
  absl::MutexLock lock(&mutex_);
  // Give the orchestrator a moment to acknowledge the last results.
  auto all_acknowledged = [this]()
                              ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return unacked_.empty(); };
  clock_->AwaitWithDeadline(&mutex_, absl::Condition(&all_acknowledged),
                            clock_->Now() + absl::Seconds(2));
  stopping_ = true;
  if (session_ != nullptr) session_->Cancel();
}

}  // namespace gyre::agent
