#include "services/agent/agent_client.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <google/protobuf/util/time_util.h>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "libs/common/limits.h"
#include "libs/common/version.h"
#include "libs/logging/logger.h"
#include "services/agent/orchestrator_members.h"
#include "services/agent/result_batching.h"

namespace gyre::agent {

namespace v1 = ::gyre::v1;
using google::protobuf::util::TimeUtil;

namespace {

// Cancels of attempts not (yet) running that are remembered: far more than
// an agent is ever assigned between two lease writes.
constexpr size_t kMaxEarlyCancels = 4096;

// Attempts a registration lists at most (Register.running).
constexpr int kMaxRegisteredRunning = 16384;

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

}  // namespace

absl::StatusOr<std::string> WorkDirName(const v1::AttemptRef& ref) {
  const absl::string_view execution = absl::StripPrefix(ref.execution(), "executions/");
  // One path component: a name with a slash (or empty, or a NUL) would put
  // the directory, which is removed after the attempt, somewhere else.
  auto component = [](absl::string_view part) {
    return !part.empty() &&
           part.find_first_of(absl::string_view("/\0", 2)) == absl::string_view::npos;
  };
  if (!component(execution) || !component(ref.task_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assignment refused: execution \"", absl::CHexEscape(ref.execution().substr(0, 128)),
        "\" and task \"", absl::CHexEscape(ref.task_id().substr(0, 128)),
        "\" do not make a work directory name (empty, or with '/' or NUL)"));
  }
  return absl::StrCat(execution, ".", ref.task_id(), ".", ref.attempt());
}

namespace {

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

// Saturating: the orchestrator's durations are not trusted to fit in int64
// nanoseconds (TimeUtil::DurationToNanoseconds overflows on them).
absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

google::protobuf::Duration ToProto(absl::Duration duration) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
}

}  // namespace

AgentClient::AgentClient(AgentConfig config, Clock* clock)
    : config_(std::move(config)),
      agent_id_(AgentId(config_)),
      clock_(clock),
      task_user_(ResolveTaskUser(config_)),
      task_rlimits_(TaskRlimits(config_)),
      cgroups_(FindCgroups(config_, agent_id_)),
      cpus_(config_.cpu > 0
                ? static_cast<int64_t>(std::ceil(config_.cpu))
                : static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()))),
      gpus_(GpuDeviceList(config_)),
      runner_(clock, cgroups_) {}

AgentClient::AgentClient(AgentConfig config, std::shared_ptr<OrchestratorLink> link, Clock* clock)
    : AgentClient(std::move(config), clock) {
  absl::MutexLock lock(&mutex_);
  primary_ = std::make_shared<Stream>(config_.orchestrator_address, std::move(link));
  streams_.push_back(primary_);
}

AgentClient::~AgentClient() {
  std::vector<StreamPtr> streams;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    for (const StreamPtr& stream : streams_) {
      if (stream->session != nullptr) stream->session->Cancel();
    }
    streams = streams_;
  }
  for (const StreamPtr& stream : streams) {
    if (stream->thread.joinable()) stream->thread.join();
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

void AgentClient::StartStreamLocked(const StreamPtr& stream) {
  stream->thread = std::thread([this, stream] { RunSessions(stream); });
}

void AgentClient::Start() {
  // Before the first assignment: its tasks then find their directories.
  if (!config_.keep_work_dirs && !config_.work_dir.empty() && config_.slots > 0) {
    runner_.PrepareWorkDirs(config_.work_dir, static_cast<size_t>(config_.slots));
  }
  absl::MutexLock lock(&mutex_);
  started_ = true;
  for (const StreamPtr& stream : streams_) StartStreamLocked(stream);
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
}

void AgentClient::SetOrchestrators(Orchestrators orchestrators) {
  std::vector<StreamPtr> dropped;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    absl::flat_hash_map<std::string, std::shared_ptr<OrchestratorLink>> wanted;
    for (auto& [name, link] : orchestrators) {
      if (wanted.size() < kMaxOrchestrators) wanted.emplace(name, std::move(link));
    }
    std::vector<StreamPtr> kept;
    for (const StreamPtr& stream : streams_) {
      if (wanted.erase(stream->name) > 0) {
        kept.push_back(stream);
        continue;
      }
      // Gone from the members: its attempts run on (their results are
      // offered to the others), the results it did not acknowledge too.
      stream->removed = true;
      stream->connected = false;
      stream->credit = 0;
      if (stream->session != nullptr) stream->session->Cancel();
      for (QueuedMessage& result : stream->unacked) HoldLocked(Held(std::move(result)));
      stream->unacked.clear();
      dropped.push_back(stream);
    }
    for (const auto& [name, link] : orchestrators) {
      auto it = wanted.find(name);
      if (it == wanted.end()) continue;  // kept above, or a duplicate
      auto stream = std::make_shared<Stream>(name, std::move(it->second));
      wanted.erase(it);
      if (primary_ == nullptr) primary_ = stream;
      if (started_) StartStreamLocked(stream);
      kept.push_back(std::move(stream));
    }
    streams_ = std::move(kept);
    RouteHeldLocked();
    GrantFreeSlotsLocked(nullptr);
    heartbeat_wake_++;
  }
  for (const StreamPtr& stream : dropped) {
    if (stream->thread.joinable()) stream->thread.join();
    logging::Info("orchestrator dropped: no longer among the agent's orchestrators",
                  {{"agent", agent_id_}, {"orchestrator", stream->name}});
  }
}

v1::Register AgentClient::Registration(Stream& stream) {
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
  // This orchestrator's attempts in `running` (it cancels every one listed
  // there that it did not lease to this agent); the other orchestrators'
  // apart, so that one which took their shard over keeps those leases.
  for (const auto& [key, entry] : running_) {
    if (entry.stream.get() == &stream) {
      *registration.add_running() = entry.ref;
    } else if (registration.running_elsewhere_size() < kMaxRegisteredRunning) {
      *registration.add_running_elsewhere() = entry.ref;
    }
  }
  // Finished, but the result is not durable yet: the lease must be kept
  // for the result sent again right after.
  for (const QueuedMessage& result : stream.unacked) {
    *registration.add_running() = result->task_result().ref();
  }
  // Refused results waiting for an owner: if this orchestrator took their
  // shard over, it keeps their leases for them (a cancel of the others is
  // harmless: they ended).
  for (const HeldResult& held : held_) {
    if (registration.running_size() >= static_cast<int>(kMaxRegisteredRunning)) break;
    *registration.add_running() = held.result->task_result().ref();
  }
  // Its share of the free slots: the rest go to the other streams.
  int64_t free = config_.slots - in_use_;
  for (const StreamPtr& other : streams_) {
    if (other.get() != &stream) free -= other->credit;
  }
  stream.credit = std::clamp<int64_t>(free, 0, CreditCapLocked());
  registration.set_initial_credit(static_cast<int32_t>(stream.credit));
  return registration;
}

void AgentClient::RunSessions(const StreamPtr& stream) {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_ || stream->removed) return;
    }
    const absl::Time started = clock_->Now();
    RunSession(stream);
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_ || draining_ || stream->removed) return;
    }
    if (clock_->Now() - started > absl::Seconds(10)) backoff = absl::Milliseconds(100);
    logging::Warn("orchestrator stream closed; reconnecting",
                  {{"agent", agent_id_},
                   {"orchestrator", stream->name},
                   {"backoff_ms", absl::ToInt64Milliseconds(backoff)}});
    absl::MutexLock lock(&mutex_);
    // The destructor ends the wait: it need not last the backoff.
    auto stopping = [this, &stream]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return stopping_ || stream->removed;
    };
    if (clock_->AwaitWithDeadline(&mutex_, absl::Condition(&stopping), clock_->Now() + backoff)) {
      return;
    }
    // Several tries within a lease timeout: after an orchestrator restart
    // the agent must be back before its leases are given up.
    const absl::Duration cap =
        std::clamp(stream->lease_timeout / 4, absl::Milliseconds(100), absl::Seconds(5));
    backoff = std::min(backoff * 2, cap);
  }
}

void AgentClient::RunSession(const StreamPtr& stream) {
  std::unique_ptr<OrchestratorSession> session = stream->link->Open();
  v1::AgentMessage hello;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_ || stream->removed) return;
    stream->session = session.get();
    *hello.mutable_register_() = Registration(*stream);
  }
  bool ok = session->Write(hello);
  int64_t resent = 0;  // results of the previous session sent again
  {
    // Both locks: no result is numbered and queued in between, so results
    // go out in the order of their numbers (acknowledged cumulatively).
    absl::MutexLock lock(&mutex_);
    absl::MutexLock out_lock(&stream->out_mutex);
    stream->outgoing.clear();  // the new registration carries the credit
    stream->pending_credit = 0;
    stream->writer_stop = false;
    // Until this session's orchestrator says it takes them.
    stream->credit_in_results.store(false, std::memory_order_release);
    // Results of the previous session that were never acknowledged.
    if (ok) {
      stream->outgoing.insert(stream->outgoing.end(), stream->unacked.begin(),
                              stream->unacked.end());
    }
    stream->connected = ok && !stream->removed;
    if (!ok) stream->credit = 0;
    resent = ok ? static_cast<int64_t>(stream->unacked.size()) : 0;
  }
  if (logging::Enabled(logging::Level::kDebug)) {
    logging::Debug(ok ? "registration sent" : "registration not sent: the stream broke",
                   {{"orchestrator", stream->name},
                    {"running", hello.register_().running_size()},
                    {"results_resent", resent}});
  }
  if (ok) {
    // Refused results it has not refused yet may go to it.
    absl::MutexLock lock(&mutex_);
    RouteHeldLocked();
  }
  std::thread writer(
      [this, stream = stream.get(), session = session.get()] { WriterLoop(stream, session); });
  v1::OrchestratorMessage message;
  while (ok && session->Read(&message)) {
    if (!HandleMessage(stream, message)) session->Cancel();
  }
  {
    absl::MutexLock lock(&mutex_);
    stream->session = nullptr;
    stream->connected = false;
    // The orchestrator forgets the credit with the session: the slots go
    // to the other streams until this one registers again.
    stream->credit = 0;
    GrantFreeSlotsLocked(nullptr);
  }
  {
    absl::MutexLock lock(&stream->out_mutex);
    stream->writer_stop = true;
  }
  writer.join();
  const absl::Status status = session->Finish();
  if (!status.ok() && !absl::IsCancelled(status)) {
    logging::Warn("orchestrator stream ended", {{"orchestrator", stream->name},
                                                {"code", static_cast<int>(status.code())},
                                                {"error", std::string(status.message())}});
  }
}

bool AgentClient::HandleMessage(const v1::OrchestratorMessage& message) {
  StreamPtr primary;
  {
    absl::MutexLock lock(&mutex_);
    if (primary_ == nullptr) {
      primary_ = std::make_shared<Stream>(config_.orchestrator_address, nullptr);
      streams_.push_back(primary_);
    }
    primary = primary_;
  }
  return HandleMessage(primary, message);
}

bool AgentClient::HandleMessage(const StreamPtr& stream, const v1::OrchestratorMessage& message) {
  switch (message.kind_case()) {
    case v1::OrchestratorMessage::kRegistered: {
      absl::MutexLock lock(&mutex_);
      const absl::Duration interval = FromProto(message.registered().heartbeat_interval());
      // An orchestrator that names none leaves the default.
      if (interval > absl::ZeroDuration()) stream->heartbeat_interval = interval;
      const absl::Duration lease_timeout = FromProto(message.registered().lease_timeout());
      if (lease_timeout > absl::ZeroDuration()) stream->lease_timeout = lease_timeout;
      stream->credit_in_results.store(message.registered().credit_in_results(),
                                      std::memory_order_release);
      absl::Duration shortest = stream->heartbeat_interval;
      for (const StreamPtr& other : streams_) {
        shortest = std::min(shortest, other->heartbeat_interval);
      }
      if (shortest != heartbeat_interval_) {
        heartbeat_interval_ = shortest;
        heartbeat_wake_++;
      }
      logging::Info("registered with the orchestrator", {{"agent", agent_id_},
                                                         {"orchestrator", stream->name},
                                                         {"slots", config_.slots},
                                                         {"credit", stream->credit}});
      break;
    }
    case v1::OrchestratorMessage::kAssignment: {
      const int64_t tasks = message.assignment().tasks_size();
      {
        absl::MutexLock lock(&mutex_);
        stream->credit = std::max<int64_t>(0, stream->credit - tasks);
        stream->assigned += tasks;
        in_use_ += tasks;
      }
      for (const v1::TaskAssignment& task : message.assignment().tasks()) {
        HandleAssignment(stream, task);
      }
      // Its credit ran low: more from the free slots, if any.
      absl::MutexLock lock(&mutex_);
      GrantFreeSlotsLocked(stream.get());
      break;
    }
    case v1::OrchestratorMessage::kCancel: {
      std::vector<TaskRunner::Handle> handle;
      {
        absl::MutexLock lock(&mutex_);
        const std::string key = Key(message.cancel().ref());
        auto it = running_.find(key);
        if (it != running_.end()) {
          // Only the orchestrator that assigned an attempt may stop it.
          if (it->second.stream == stream) handle.push_back(it->second.handle);
        } else if (std::string early = absl::StrCat(stream->name, "|", key);
                   early_cancels_.insert(early).second) {
          early_cancel_order_.push_back(std::move(early));
          if (early_cancel_order_.size() > kMaxEarlyCancels) {
            early_cancels_.erase(early_cancel_order_.front());
            early_cancel_order_.pop_front();
          }
        }
      }
      CancelAttempts(handle, FromProto(message.cancel().grace()));
      break;
    }
    case v1::OrchestratorMessage::kResultAck: {
      absl::MutexLock lock(&mutex_);
      const uint64_t through = message.result_ack().through_sequence();
      while (!stream->unacked.empty() &&
             stream->unacked.front()->task_result().sequence() <= through) {
        if (!offered_.empty()) offered_.erase(Key(stream->unacked.front()->task_result().ref()));
        stream->unacked.pop_front();
      }
      break;
    }
    case v1::OrchestratorMessage::kResultRefused: {
      const v1::ResultRefused& refused = message.result_refused();
      absl::MutexLock lock(&mutex_);
      auto it = std::find_if(stream->unacked.begin(), stream->unacked.end(),
                             [&](const QueuedMessage& result) {
                               return result->task_result().sequence() == refused.sequence();
                             });
      if (it == stream->unacked.end()) break;  // not (or no longer) ours to re-send
      QueuedMessage result = std::move(*it);
      stream->unacked.erase(it);
      const std::string key = Key(result->task_result().ref());
      HeldResult held;
      if (auto offered = offered_.find(key); offered != offered_.end()) {
        held = std::move(offered->second);
        offered_.erase(offered);
      }
      held.result = std::move(result);
      held.refused_by.insert(stream->name);
      if (refused_results_ != nullptr) refused_results_->Increment();
      logging::Info("result refused: its execution's shard is owned elsewhere; sending it on",
                    {{"orchestrator", stream->name},
                     {"execution", refused.ref().execution()},
                     {"task", refused.ref().task_id()},
                     {"attempt", refused.ref().attempt()},
                     {"shard", static_cast<int64_t>(refused.shard())}});
      HoldLocked(std::move(held));
      RouteHeldLocked();
      break;
    }
    case v1::OrchestratorMessage::kShutdown:
      logging::Warn("orchestrator asked the agent to reconnect",
                    {{"orchestrator", stream->name}, {"reason", message.shutdown().reason()}});
      return false;
    default:
      break;
  }
  return true;
}

int64_t AgentClient::CreditCapLocked() const {
  const int64_t members = std::max<int64_t>(1, static_cast<int64_t>(streams_.size()));
  if (members == 1) return config_.slots;
  return std::max<int64_t>(1, config_.slots / (2 * members));
}

AgentClient::SlotGrants AgentClient::FreeSlotGrantsLocked(const Stream* origin) {
  SlotGrants grants;
  if (draining_ || stopping_) return grants;
  int64_t free = config_.slots - in_use_;
  for (const StreamPtr& stream : streams_) free -= stream->credit;
  if (free <= 0) return grants;
  const int64_t cap = CreditCapLocked();
  const size_t count = streams_.size();
  while (free > 0) {
    Stream* best = nullptr;
    size_t candidates = 0;
    for (size_t i = 0; i < count; ++i) {
      Stream* stream = streams_[(next_turn_ + i) % count].get();
      if (!stream->connected || stream->credit >= cap) continue;
      candidates++;
      const int64_t held = stream->assigned + stream->credit;
      if (best == nullptr || held < best->assigned + best->credit ||
          (held == best->assigned + best->credit && stream == origin)) {
        best = stream;
      }
    }
    if (best == nullptr) break;
    // Alone below the cap: all it may take at once (one orchestrator: the
    // slot that freed goes straight back, as its result goes out).
    const int64_t grant = candidates == 1 ? std::min(free, cap - best->credit) : 1;
    best->credit += grant;
    free -= grant;
    next_turn_++;
    auto same = [best](const std::pair<Stream*, int32_t>& g) { return g.first == best; };
    if (auto it = std::find_if(grants.begin(), grants.end(), same); it != grants.end()) {
      it->second += static_cast<int32_t>(grant);
    } else {
      grants.emplace_back(best, static_cast<int32_t>(grant));
    }
  }
  return grants;
}

void AgentClient::SendGrants(const SlotGrants& grants) {
  for (const auto& [stream, grant] : grants) {
    if (grant == 0) continue;
    absl::MutexLock lock(&stream->out_mutex);
    stream->pending_credit += grant;
  }
}

void AgentClient::GrantFreeSlotsLocked(const Stream* origin) {
  SendGrants(FreeSlotGrantsLocked(origin));
}

AgentClient::HeldResult AgentClient::Held(QueuedMessage result) {
  HeldResult held;
  held.result = std::move(result);
  return held;
}

void AgentClient::HoldLocked(HeldResult held) {
  held_.push_back(std::move(held));
  while (held_.size() + offered_.size() > kMaxHeldResults && !held_.empty()) {
    const v1::TaskResult& dropped = held_.front().result->task_result();
    logging::Error("refused result dropped: too many results wait for an orchestrator",
                   {{"execution", dropped.ref().execution()},
                    {"task", dropped.ref().task_id()},
                    {"attempt", dropped.ref().attempt()},
                    {"max_held_results", static_cast<int64_t>(kMaxHeldResults)}});
    if (dropped_results_ != nullptr) dropped_results_->Increment();
    held_.pop_front();
  }
  heartbeat_wake_++;
}

void AgentClient::RouteHeldLocked() {
  if (held_.empty()) return;
  const absl::Time now = clock_->Now();
  std::deque<HeldResult> waiting;
  for (HeldResult& held : held_) {
    if (held.next_try > now) {
      waiting.push_back(std::move(held));
      continue;
    }
    std::vector<Stream*> candidates;
    bool any_connected = false;
    for (const StreamPtr& stream : streams_) {
      if (!stream->connected) continue;
      any_connected = true;
      if (!held.refused_by.contains(stream->name)) candidates.push_back(stream.get());
    }
    if (candidates.empty()) {
      if (any_connected) {
        // Every orchestrator refused it (the shard is between owners):
        // all are asked again after the backoff.
        held.refused_by.clear();
        held.next_try = now + held.backoff;
        held.backoff = std::min(held.backoff * 2, absl::Seconds(30));
      }
      waiting.push_back(std::move(held));
      continue;
    }
    Stream* target = candidates[next_turn_++ % candidates.size()];
    // A new number: the target acknowledges its session's results
    // cumulatively, and may be past the old one.
    auto resent = std::make_shared<v1::AgentMessage>(*held.result);
    resent->mutable_task_result()->set_sequence(++last_result_sequence_);
    const std::string key = Key(resent->task_result().ref());
    QueuedMessage queued(std::move(resent));
    target->unacked.push_back(queued);
    Send(*target, std::move(queued));
    held.result = nullptr;
    offered_[key] = std::move(held);
  }
  held_.swap(waiting);
}

bool AgentClient::AllAcknowledgedLocked() const {
  if (!held_.empty()) return false;
  for (const StreamPtr& stream : streams_) {
    if (!stream->unacked.empty()) return false;
  }
  return true;
}

void AgentClient::Send(Stream& stream, v1::AgentMessage message, int32_t credit) {
  if (message.has_credit()) {
    absl::MutexLock lock(&stream.out_mutex);
    stream.pending_credit += message.credit().tasks() + credit;
    return;
  }
  Send(stream, std::make_shared<const v1::AgentMessage>(std::move(message)), credit);
}

void AgentClient::Send(Stream& stream, QueuedMessage message, int32_t credit) {
  absl::MutexLock lock(&stream.out_mutex);
  stream.outgoing.push_back(std::move(message));
  stream.pending_credit += credit;
}

void AgentClient::HoldStart(Stream& stream, std::string attempt, const v1::AttemptRef& ref,
                            pid_t pid) {
  auto started = std::make_shared<v1::AgentMessage>();
  *started->mutable_task_started()->mutable_ref() = ref;
  started->mutable_task_started()->set_pid(pid);
  if (config_.start_report_delay <= absl::ZeroDuration()) {
    if (starts_sent_ != nullptr) starts_sent_->Increment();
    Send(stream, QueuedMessage(std::move(started)));
    return;
  }
  const absl::Time due = absl::Now() + config_.start_report_delay;
  absl::MutexLock lock(&stream.out_mutex);
  stream.starts.Hold(std::move(attempt), std::move(started), due);
}

void AgentClient::SendResult(Stream& stream, const std::string& attempt, QueuedMessage result,
                             int32_t credit) {
  absl::MutexLock lock(&stream.out_mutex);
  if (stream.starts.Drop(attempt) && starts_in_result_ != nullptr) starts_in_result_->Increment();
  stream.outgoing.push_back(std::move(result));
  stream.pending_credit += credit;
}

void AgentClient::WriterLoop(Stream* stream, OrchestratorSession* session) {
  while (true) {
    std::deque<QueuedMessage> batch;
    int32_t credit = 0;
    {
      absl::MutexLock lock(&stream->out_mutex);
      auto ready = [stream]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(stream->out_mutex) {
        return stream->writer_stop || !stream->outgoing.empty() || stream->pending_credit > 0;
      };
      // Held starts fall due in real time: a delay to coalesce messages, as
      // Nagle's, not a protocol timer (a test's clock need not move for it).
      while (!ready()) {
        const absl::Time due = stream->starts.next_due();
        if (due <= absl::Now()) break;
        auto ready_or_sooner = [stream, &ready, due]()
                                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(stream->out_mutex) {
                                     return ready() || stream->starts.next_due() < due;
                                   };
        if (due == absl::InfiniteFuture()) {
          stream->out_mutex.Await(absl::Condition(&ready_or_sooner));
        } else {
          stream->out_mutex.AwaitWithDeadline(absl::Condition(&ready_or_sooner), due);
        }
      }
      // More processes run than there are CPUs: a slot freed a moment
      // later leaves no CPU idle, so what finishes meanwhile joins this
      // message. The wait ends as soon as a CPU could be free: a layer of a
      // DAG that drains sends its last results at once. (The count is
      // re-read whenever this stream's out_mutex is released, which every
      // result queued on it does, after the count fell. A process ending
      // for another orchestrator's stream does not wake this one: with
      // several orchestrators a wait may run its full result_linger.)
      auto cpus_taken = [this] { return runner_.processes() > cpus_; };
      if (config_.result_linger > absl::ZeroDuration() && !stream->outgoing.empty() &&
          cpus_taken()) {
        auto send_now = [stream, &cpus_taken]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(stream->out_mutex) {
          return stream->writer_stop || stream->outgoing.size() >= kLingerMessages || !cpus_taken();
        };
        stream->out_mutex.AwaitWithTimeout(absl::Condition(&send_now), config_.result_linger);
      }
      if (stream->writer_stop) return;
      batch.swap(stream->outgoing);
      std::swap(credit, stream->pending_credit);
      // A task's output goes after its start: with output to send, every
      // held start goes too (ResultBatches puts the starts first).
      const bool output = std::any_of(batch.begin(), batch.end(), [](const QueuedMessage& message) {
        return message->has_log_chunk();
      });
      const size_t queued = batch.size();
      stream->starts.Release(output ? absl::InfiniteFuture() : absl::Now(), &batch);
      if (starts_sent_ != nullptr && batch.size() > queued) {
        starts_sent_->Increment(static_cast<double>(batch.size() - queued));
      }
    }
    if (batch.empty() && credit == 0) continue;  // only a start dropped since was due
    // Results finished together travel together, with the slots they free
    // when the orchestrator takes them so.
    ResultBatches batches(std::move(batch));
    if (credit > 0 && stream->credit_in_results.load(std::memory_order_acquire) &&
        batches.AttachCredit(credit)) {
      credit = 0;
    }
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

void AgentClient::HandleAssignment(const StreamPtr& stream, const v1::TaskAssignment& task) {
  TaskLaunch launch;
  absl::Status bad_assignment;  // why the attempt cannot run as assigned
  if (task.has_timeout()) {
    launch.timeout = FromProto(task.timeout());
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
    launch.sleep = FromProto(task.builtin().duration());
  } else {
    // Only a process needs a command line, an environment and a directory.
    launch.argv.assign(task.command().begin(), task.command().end());
    launch.shell = task.shell();
    for (const auto& [key, value] : task.env()) launch.env[key] = value;
    // One directory per attempt, directly under the root:
    // {execution}.{task}.{attempt}. Unless it is kept, the runner runs the
    // task in one of its reused directories under the root instead.
    absl::StatusOr<std::string> dir_name = WorkDirName(task.ref());
    if (dir_name.ok()) {
      launch.work_dir = absl::StrCat(config_.work_dir, "/", *dir_name);
    } else {
      bad_assignment = dir_name.status();
    }
    launch.remove_work_dir = !config_.keep_work_dirs;
    launch.rlimits = task_rlimits_;
    launch.limits.memory_bytes = task.resources().memory_bytes();
    launch.limits.cpu = task.resources().cpu();
  }
  const v1::AttemptRef& ref = task.ref();
  if (logging::Enabled(logging::Level::kDebug)) launch.log_name = Key(ref);
  const bool evaluator = task.evaluator();
  bool cancelled_early = false;
  {
    absl::MutexLock lock(&mutex_);
    // Erased from the set only: the order queue drops it in its turn.
    cancelled_early = early_cancels_.erase(absl::StrCat(stream->name, "|", Key(ref))) > 0;
  }
  if (cancelled_early) {
    TaskOutcome outcome;
    outcome.kind = TaskOutcome::Kind::kCancelled;
    outcome.error = "cancelled by the orchestrator before its assignment arrived";
    OnTaskDone(stream, ref, evaluator, /*tracked=*/false, std::move(outcome));
    return;
  }
  if (launch.builtin == TaskLaunch::Builtin::kNone) {
    // Refused before anything runs: the result says why.
    absl::Status refused = bad_assignment.ok() ? task_user_.status() : bad_assignment;
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
      OnTaskDone(stream, ref, evaluator, /*tracked=*/false, std::move(outcome));
      return;
    }
  }
  if (launch.builtin == TaskLaunch::Builtin::kNoop) {
    // Done before it could be seen running: no entry, runner or callback.
    TaskOutcome outcome;
    outcome.kind = TaskOutcome::Kind::kSucceeded;
    OnTaskDone(stream, ref, evaluator, /*tracked=*/false, std::move(outcome));
    return;
  }
  // Output streams to the orchestrator while the task runs (a builtin
  // writes none).
  if (launch.builtin == TaskLaunch::Builtin::kNone) {
    launch.on_output = [this, ref, stream](int output, int64_t offset, absl::string_view data) {
      v1::AgentMessage message;
      v1::TaskLogChunk* log = message.mutable_log_chunk();
      *log->mutable_ref() = ref;
      log->mutable_chunk()->set_stream(output == 1 ? v1::LogChunk::STDOUT : v1::LogChunk::STDERR);
      log->mutable_chunk()->set_offset(offset);
      log->mutable_chunk()->set_data(std::string(data));
      Send(*stream, std::move(message));
    };
  }
  const std::string key = Key(ref);
  {
    absl::MutexLock lock(&mutex_);
    running_[key] = Running{ref, 0, stream};
  }
  if (launch.builtin == TaskLaunch::Builtin::kNone) {
    // Reported once the process runs, and only if it runs long enough.
    launch.on_spawned = [this, stream, key, ref](pid_t pid) { HoldStart(*stream, key, ref, pid); };
  }
  const TaskRunner::Handle handle =
      runner_.Start(std::move(launch), [this, stream, ref, evaluator](TaskOutcome outcome) {
        OnTaskDone(stream, ref, evaluator, /*tracked=*/true, std::move(outcome));
      });
  absl::MutexLock lock(&mutex_);
  auto it = running_.find(key);
  if (it != running_.end()) it->second.handle = handle;
}

void AgentClient::OnTaskDone(const StreamPtr& stream, const v1::AttemptRef& ref, bool evaluator,
                             bool tracked, TaskOutcome outcome) {
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
  if (logging::Enabled(logging::Level::kDebug)) {
    logging::Debug("task finished", {{"attempt", Key(ref)},
                                     {"outcome", v1::AttemptOutcome_Name(result->outcome())},
                                     {"exit_code", result->exit_code()},
                                     {"signal", result->signal()},
                                     {"took_ms", absl::ToInt64Milliseconds(outcome.wall_time)},
                                     {"error", result->error()},
                                     {"orchestrator", stream->name}});
  }
  // Kept until acknowledged, and sent: the same message.
  auto queued = std::make_shared<v1::AgentMessage>(std::move(message));
  const std::string key = Key(ref);
  absl::MutexLock lock(&mutex_);
  if (tracked) running_.erase(key);
  in_use_--;
  stream->assigned--;
  queued->mutable_task_result()->set_sequence(++last_result_sequence_);
  SlotGrants grants = FreeSlotGrantsLocked(stream.get());
  if (stream->removed) {
    // Its orchestrator is no longer a member: another may own the
    // execution now.
    HoldLocked(Held(std::move(queued)));
    RouteHeldLocked();
  } else {
    stream->unacked.push_back(queued);
    // Queued under mutex_ too, so results go out in the order of their
    // numbers. The slot it frees is queued in the same step, so the writer
    // never takes one without the other (they may share one message). A
    // task that ended before its start went out sends only this.
    int32_t own = 0;
    for (auto& [granted_to, grant] : grants) {
      if (granted_to == stream.get()) std::swap(own, grant);
    }
    SendResult(*stream, key, QueuedMessage(std::move(queued)), own);
  }
  SendGrants(grants);
}

void AgentClient::HeartbeatLoop() {
  absl::Time last_sent = clock_->Now();
  while (true) {
    std::vector<std::pair<StreamPtr, v1::AgentMessage>> heartbeats;
    {
      absl::MutexLock lock(&mutex_);
      // The orchestrators set the interval at registration. A wait begun
      // with the default (5 s) must not outlast a shorter interval one asks
      // for: with a lease timeout below 5 s the agent would be declared
      // dead before its first heartbeat. Held results are retried on this
      // thread too, when their backoff ends.
      while (true) {
        absl::Time due = last_sent + heartbeat_interval_;
        // Results waiting for no stream at all wait for one to connect.
        const absl::Time now = clock_->Now();
        for (const HeldResult& held : held_) {
          if (held.next_try > now) due = std::min(due, held.next_try);
        }
        const uint64_t wake = heartbeat_wake_;
        auto stop_or_wake = [this, wake]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
          return stopping_ || heartbeat_wake_ != wake;
        };
        if (!clock_->AwaitWithDeadline(&mutex_, absl::Condition(&stop_or_wake), due)) {
          RouteHeldLocked();
          if (clock_->Now() >= last_sent + heartbeat_interval_) break;  // due
          continue;
        }
        if (stopping_) return;
      }
      // Every stream hears of every attempt running here and of the
      // refused results waiting for an owner: an orchestrator acts only on
      // the leases it holds (it ignores the others), and one that took a
      // shard over keeps the adopted leases of what it hears is running.
      // (A registration lists only its own: it cancels what it did not
      // lease.)
      v1::AgentMessage heartbeat;
      for (const auto& [key, entry] : running_) {
        *heartbeat.mutable_heartbeat()->add_running() = entry.ref;
      }
      for (const HeldResult& held : held_) {
        *heartbeat.mutable_heartbeat()->add_running() = held.result->task_result().ref();
      }
      heartbeat.mutable_heartbeat();
      for (const StreamPtr& stream : streams_) heartbeats.emplace_back(stream, heartbeat);
    }
    for (auto& [stream, heartbeat] : heartbeats) Send(*stream, std::move(heartbeat));
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
  {
    absl::MutexLock lock(&mutex_);
    for (const StreamPtr& stream : streams_) Send(*stream, v1::AgentMessage(draining));
  }
  logging::Info("draining: running tasks get the grace period",
                {{"running", runner_.running()}, {"grace_seconds", absl::ToDoubleSeconds(grace)}});
  const absl::Time deadline = clock_->Now() + grace;
  // Every attempt that ended has queued its result (OnTaskDone erases it).
  auto all_reported = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return running_.empty(); };
  std::vector<TaskRunner::Handle> overdue;
  {
    absl::MutexLock lock(&mutex_);
    if (!clock_->AwaitWithDeadline(&mutex_, absl::Condition(&all_reported), deadline)) {
      for (const auto& [key, entry] : running_) overdue.push_back(entry.handle);
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
  auto all_acknowledged = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return AllAcknowledgedLocked();
  };
  clock_->AwaitWithDeadline(&mutex_, absl::Condition(&all_acknowledged),
                            clock_->Now() + absl::Seconds(2));
  stopping_ = true;
  for (const StreamPtr& stream : streams_) {
    if (stream->session != nullptr) stream->session->Cancel();
  }
}

}  // namespace gyre::agent
