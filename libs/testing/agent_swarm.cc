#include "libs/testing/agent_swarm.h"

#include <atomic>
#include <deque>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gyre::testing {

namespace v1 = ::gyre::v1;

// One agent's stream: a read always outstanding, writes one at a time with
// a queue behind them (the callback API allows one of each in flight).
class SwarmAgent final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::OrchestratorMessage> {
 public:
  SwarmAgent(AgentSwarm* swarm, std::string id) : swarm_(swarm), id_(std::move(id)) {}

  void Start(v1::AgentService::Stub* stub) {
    stub->async()->Connect(&context_, this);
    v1::AgentMessage hello;
    v1::Register& registration = *hello.mutable_register_();
    registration.set_agent_id(id_);
    registration.set_slots(1);
    registration.set_initial_credit(1);
    registration.add_queues(swarm_->options_.queue);
    Send(std::move(hello));
    StartRead(&incoming_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  // Sends a heartbeat if one is due at `now`.
  void MaybeHeartbeat(absl::Time now) {
    const int64_t due = next_heartbeat_ns_.load(std::memory_order_relaxed);
    if (due == 0 || absl::ToUnixNanos(now) < due) return;
    next_heartbeat_ns_.store(absl::ToUnixNanos(now + interval_), std::memory_order_relaxed);
    v1::AgentMessage heartbeat;
    heartbeat.mutable_heartbeat();  // nothing runs between messages: no attempts to list
    Send(std::move(heartbeat));
    absl::MutexLock lock(&swarm_->mutex_);
    ++swarm_->heartbeats_sent_;
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone says how
    switch (incoming_.kind_case()) {
      case v1::OrchestratorMessage::kRegistered: {
        const auto& interval = incoming_.registered().heartbeat_interval();
        interval_ = absl::Seconds(interval.seconds()) + absl::Nanoseconds(interval.nanos());
        if (interval_ <= absl::ZeroDuration()) interval_ = absl::Seconds(5);
        // The first heartbeats spread over one interval, as agents started
        // at different times would.
        std::minstd_rand random(std::hash<std::string>()(id_));
        const double phase = std::uniform_real_distribution<double>(0.1, 1.0)(random);
        next_heartbeat_ns_.store(absl::ToUnixNanos(absl::Now() + interval_ * phase));
        absl::MutexLock lock(&swarm_->mutex_);
        ++swarm_->registered_;
        break;
      }
      case v1::OrchestratorMessage::kAssignment:
        Run(incoming_.assignment());
        break;
      case v1::OrchestratorMessage::kShutdown:
      case v1::OrchestratorMessage::kCancel: {
        absl::MutexLock lock(&swarm_->mutex_);
        swarm_->problems_.push_back(absl::StrCat(id_, ": ", incoming_.ShortDebugString()));
        break;
      }
      default:
        break;  // result acknowledgements: nothing to keep
    }
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mutex_);
    if (!ok) broken_ = true;
    if (broken_ || pending_.empty()) {
      writing_ = false;
      return;
    }
    outgoing_ = std::move(pending_.front());
    pending_.pop_front();
    StartWrite(&outgoing_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&swarm_->mutex_);
    if (!swarm_->stopping_) {
      swarm_->problems_.push_back(
          absl::StrCat(id_, ": stream ended: ", status.error_code(), " ", status.error_message()));
    }
    ++swarm_->done_;
  }

 private:
  // Finishes each task at once and grants the slot back.
  void Run(const v1::Assignment& assignment) {
    const absl::Time now = absl::Now();
    v1::AgentMessage results;
    for (const v1::TaskAssignment& task : assignment.tasks()) {
      v1::TaskResult& result = *results.mutable_task_results()->add_results();
      *result.mutable_ref() = task.ref();
      result.set_outcome(v1::ATTEMPT_SUCCEEDED);
      result.set_sequence(++sequence_);
    }
    const int tasks = assignment.tasks_size();
    Send(std::move(results));
    v1::AgentMessage credit;
    credit.mutable_credit()->set_tasks(tasks);
    Send(std::move(credit));
    absl::MutexLock lock(&swarm_->mutex_);
    swarm_->results_sent_ += tasks;
    for (const v1::TaskAssignment& task : assignment.tasks()) {
      swarm_->receipts_.push_back({task.ref().execution(), now});
    }
  }

  void Send(v1::AgentMessage message) {
    absl::MutexLock lock(&mutex_);
    if (broken_) return;
    if (writing_) {
      pending_.push_back(std::move(message));
      return;
    }
    writing_ = true;
    outgoing_ = std::move(message);
    StartWrite(&outgoing_);
  }

  AgentSwarm* const swarm_;
  const std::string id_;
  grpc::ClientContext context_;
  v1::OrchestratorMessage incoming_;  // the read in flight
  uint64_t sequence_ = 0;             // results sent (read side only)
  absl::Duration interval_ = absl::Seconds(5);
  std::atomic<int64_t> next_heartbeat_ns_{0};  // 0: not registered yet
  absl::Mutex mutex_;
  v1::AgentMessage outgoing_ ABSL_GUARDED_BY(mutex_);  // the write in flight
  std::deque<v1::AgentMessage> pending_ ABSL_GUARDED_BY(mutex_);
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;
};

AgentSwarm::AgentSwarm(Options options) : options_(std::move(options)) {
  for (int i = 0; i < options_.channels; ++i) {
    grpc::ChannelArguments args;
    // A channel of its own (not a shared subchannel): one TCP connection each.
    args.SetInt("gyre.swarm_channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels_.push_back(
        grpc::CreateCustomChannel(options_.address, grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(v1::AgentService::NewStub(channels_.back()));
  }
  for (int i = 0; i < options_.agents; ++i) {
    agents_.push_back(std::make_unique<SwarmAgent>(this, absl::StrCat(options_.id_prefix, "-", i)));
  }
}

AgentSwarm::~AgentSwarm() {
  int started = 0;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    started = started_;
  }
  if (heartbeats_.joinable()) heartbeats_.join();
  for (int i = 0; i < started; ++i) agents_[static_cast<size_t>(i)]->Cancel();
  absl::MutexLock lock(&mutex_);
  auto all_done = [this, started]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return done_ == started; };
  mutex_.Await(absl::Condition(&all_done));
}

int AgentSwarm::Connect(absl::Duration timeout, int in_flight) {
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t i = 0; i < agents_.size(); ++i) {
    {
      // Registrations in flight stay bounded: a burst of 10,000 at once
      // is not what is measured.
      absl::MutexLock lock(&mutex_);
      const int limit = static_cast<int>(i) - in_flight;
      auto room = [this, limit]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return registered_ + done_ >= limit;
      };
      if (!mutex_.AwaitWithDeadline(absl::Condition(&room), deadline)) break;
      ++started_;
    }
    agents_[i]->Start(stubs_[i % stubs_.size()].get());
  }
  if (!heartbeats_.joinable()) heartbeats_ = std::thread([this] { HeartbeatLoop(); });
  absl::MutexLock lock(&mutex_);
  const int want = started_;
  auto all = [this, want]()
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return registered_ + done_ >= want; };
  mutex_.AwaitWithDeadline(absl::Condition(&all), deadline);
  return registered_;
}

void AgentSwarm::HeartbeatLoop() {
  while (true) {
    int started = 0;
    {
      absl::MutexLock lock(&mutex_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stopping_; };
      if (mutex_.AwaitWithTimeout(absl::Condition(&stopping), absl::Milliseconds(50))) return;
      started = started_;
    }
    const absl::Time now = absl::Now();
    for (int i = 0; i < started; ++i) agents_[static_cast<size_t>(i)]->MaybeHeartbeat(now);
  }
}

bool AgentSwarm::AwaitResults(int64_t results, absl::Duration timeout) {
  absl::MutexLock lock(&mutex_);
  auto reached = [this, results]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return results_sent_ >= results; };
  return mutex_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

int AgentSwarm::registered() {
  absl::MutexLock lock(&mutex_);
  return registered_;
}

int64_t AgentSwarm::results_sent() {
  absl::MutexLock lock(&mutex_);
  return results_sent_;
}

int64_t AgentSwarm::heartbeats_sent() {
  absl::MutexLock lock(&mutex_);
  return heartbeats_sent_;
}

std::vector<std::string> AgentSwarm::Problems() {
  absl::MutexLock lock(&mutex_);
  return problems_;
}

std::vector<AgentSwarm::Receipt> AgentSwarm::TakeReceipts() {
  std::vector<Receipt> receipts;
  absl::MutexLock lock(&mutex_);
  receipts.swap(receipts_);
  return receipts;
}

}  // namespace gyre::testing
