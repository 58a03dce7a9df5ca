#include "services/orchestrator/workflow_engine.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <optional>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/client_text.h"
#include "libs/common/limits.h"
#include "libs/common/nearest_match.h"
#include "libs/logging/logger.h"
#include "libs/workflow/context_keys.h"
#include "libs/workflow/task_library.h"
#include "libs/workflow/workflow_graph.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/retry_backoff.h"
#include "services/orchestrator/task_identity.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

constexpr size_t kDispatchScanLimit = 256;

// ExecutionStarted.context_rules of executions started now: context is
// declared, and checked on replay as it was live.
constexpr uint32_t kDeclaredContextRules = 1;

std::string ShortWorkflowName(absl::string_view name) {
  absl::ConsumePrefix(&name, "workflows/");
  return std::string(name.substr(0, name.find('/')));
}

bool IsTerminal(v1::TaskState state) {
  return state == v1::TASK_SUCCEEDED || state == v1::TASK_FAILED || state == v1::TASK_SKIPPED ||
         state == v1::TASK_CANCELLED || state == v1::TASK_TIMED_OUT;
}

// Feeds what protobuf serializes through a 64-bit FNV-1a hash, a buffer at
// a time, so that fingerprinting a large request allocates nothing. FNV-1a
// is stable across processes and builds, as a recorded fingerprint must be.
class HashingOutputStream : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  bool Next(void** data, int* size) override {
    Absorb(handed_);
    *data = buffer_;
    *size = sizeof(buffer_);
    handed_ = sizeof(buffer_);
    return true;
  }
  void BackUp(int count) override { handed_ -= count; }
  int64_t ByteCount() const override { return bytes_ + handed_; }
  uint64_t Finish() {
    Absorb(handed_);
    handed_ = 0;
    return hash_;
  }

 private:
  void Absorb(int size) {
    for (int i = 0; i < size; ++i) {
      hash_ = (hash_ ^ static_cast<unsigned char>(buffer_[i])) * 0x100000001b3ULL;
    }
    bytes_ += size;
  }

  char buffer_[8192];
  int handed_ = 0;
  int64_t bytes_ = 0;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

// What a request with a request_id said, to tell a retry of it (same
// fingerprint) from another request reusing the id. Deterministic
// serialization orders map entries, so equal requests hash alike. Never 0,
// which stands for "unknown".
uint64_t RequestFingerprint(const google::protobuf::Message& request) {
  HashingOutputStream hashing;
  {
    google::protobuf::io::CodedOutputStream coded(&hashing);
    coded.SetSerializationDeterministic(true);
    request.SerializePartialToCodedStream(&coded);
  }
  const uint64_t fingerprint = hashing.Finish();
  return fingerprint == 0 ? 1 : fingerprint;
}

// A retry's jitter seed: the attempt's identity (FNV-1a), stable across
// processes, unlike absl::Hash.
uint64_t RetrySeed(absl::string_view execution, absl::string_view task, int64_t attempt) {
  uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](absl::string_view bytes) {
    for (const char c : bytes) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ull;
    }
  };
  mix(execution);
  mix("/");
  mix(task);
  mix(absl::StrCat("#", attempt));
  return hash;
}

}  // namespace

// --- EventSubscription ---

namespace {

// Stored events a backlog builds per Next: one EventBatch's worth.
constexpr uint32_t kReplayBatch = 4096;

// Results are acknowledged by their numbers: an unnumbered one could never be.
absl::Status UnnumberedResult() {
  return absl::InvalidArgumentError(
      "task_result: sequence must be set (the agent numbers its results 1, 2, 3...)");
}

// At most this much of a client's string is quoted back in a status
// message: a long one would make the status itself too large to send.
std::string Quote(absl::string_view text) {
  constexpr size_t kQuoted = 80;
  if (text.size() <= kQuoted) return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kQuoted)), "\"... (", text.size(),
                      " bytes)");
}

// Agent ids are [a-z0-9-]: they appear in resource names ("agents/{id}"),
// attempt records, log lines and working directories.
bool ValidAgentId(absl::string_view id) {
  return !id.empty() && id.size() <= WorkflowEngine::kMaxAgentIdLength &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
         });
}

// An attempt an agent names: bounded, so that nothing it sends can make
// an attempt number overflow when the next one is counted from it.
absl::Status CheckAttemptRef(const v1::AttemptRef& ref, absl::string_view where) {
  if (ref.attempt() < 1 || ref.attempt() > WorkflowEngine::kMaxAttempt) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": attempt ", ref.attempt(), " of ", Quote(ref.execution()), " task ",
        Quote(ref.task_id()), " is out of range [1, ", WorkflowEngine::kMaxAttempt, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckAttemptRefs(const google::protobuf::RepeatedPtrField<v1::AttemptRef>& refs,
                              absl::string_view where) {
  if (refs.size() > WorkflowEngine::kMaxAttemptRefs) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", refs.size(), " attempts listed; at most ", WorkflowEngine::kMaxAttemptRefs));
  }
  for (const v1::AttemptRef& ref : refs) {
    if (absl::Status status = CheckAttemptRef(ref, where); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status CheckRegistration(const v1::Register& registration) {
  const std::string& id = registration.agent_id();
  if (!ValidAgentId(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "register: invalid agent_id ", Quote(id), " (lower-case letters, digits and '-'; 1 to ",
        WorkflowEngine::kMaxAgentIdLength, " characters)"));
  }
  if (registration.slots() < 1 || registration.slots() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("register: slots ", registration.slots(), " is out of range [1, 4096]"));
  }
  if (registration.queues().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("register: agent ", id, " must serve at least one queue"));
  }
  if (registration.queues_size() > WorkflowEngine::kMaxQueuesPerAgent) {
    return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, " lists ",
                                                   registration.queues_size(), " queues; at most ",
                                                   WorkflowEngine::kMaxQueuesPerAgent));
  }
  for (const std::string& queue : registration.queues()) {
    if (queue.empty() || queue.size() > WorkflowEngine::kMaxQueueNameLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("register: agent ", id, ": queue name ", Quote(queue), " must be 1 to ",
                       WorkflowEngine::kMaxQueueNameLength, " characters"));
    }
  }
  if (registration.labels_size() > WorkflowEngine::kMaxAgentLabels) {
    return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, " has ",
                                                   registration.labels_size(), " labels; at most ",
                                                   WorkflowEngine::kMaxAgentLabels));
  }
  for (const auto& [key, value] : registration.labels()) {
    if (key.empty() || key.size() > WorkflowEngine::kMaxLabelLength ||
        value.size() > WorkflowEngine::kMaxLabelLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("register: agent ", id, ": label ", Quote(key), "=", Quote(value),
                       ": keys must be 1 to ", WorkflowEngine::kMaxLabelLength,
                       " characters, values up to ", WorkflowEngine::kMaxLabelLength));
    }
  }
  if (registration.initial_credit() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("register: agent ", id, ": initial_credit ",
                                                   registration.initial_credit(), " is negative"));
  }
  return CheckAttemptRefs(registration.running(), absl::StrCat("register: agent ", id));
}

// Arena blocks for events: a few KiB first, up to 256 KiB when busy.
std::unique_ptr<google::protobuf::Arena> NewEventArena() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 4096;
  options.max_block_size = 256 << 10;
  return std::make_unique<google::protobuf::Arena>(options);
}

}  // namespace

EventChunk EventSubscription::Next(absl::Duration timeout, bool* last) {
  EventChunk chunk;
  uint32_t from = 0;
  uint32_t to = 0;
  std::vector<std::shared_ptr<const v1::Event>> live;
  {
    absl::MutexLock lock(&mutex_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return backlog_next_ < backlog_end_ || !pending_.empty() || closed_;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    if (backlog_next_ < backlog_end_) {
      // Claimed here, built below without this lock: one reader calls Next.
      from = backlog_next_;
      to = std::min(backlog_end_, from + kReplayBatch);
      backlog_next_ = to;
    } else {
      live.swap(pending_);
      if (last != nullptr) *last = closed_;
    }
  }
  chunk.arena = NewEventArena();
  if (from == to) {
    // Copied here, on the reader's thread: the engine built each once.
    chunk.events.reserve(live.size());
    for (const auto& event : live) {
      auto* copy = google::protobuf::Arena::CreateMessage<v1::Event>(chunk.arena.get());
      copy->CopyFrom(*event);
      chunk.events.push_back(copy);
    }
    return chunk;
  }
  replay_(from, to, chunk.arena.get(), &chunk.events);
  if (last != nullptr) {
    // Live events that came meanwhile wait for the next call.
    absl::MutexLock lock(&mutex_);
    *last = backlog_next_ == backlog_end_ && closed_ && pending_.empty();
  }
  return chunk;
}

void EventSubscription::SetBacklog(uint32_t from, uint32_t to, Replayer replay) {
  absl::MutexLock lock(&mutex_);
  backlog_next_ = from;
  backlog_end_ = to;
  replay_ = std::move(replay);
  follows_one_execution_ = true;
}

void EventSubscription::Extend(uint32_t to) {
  absl::MutexLock lock(&mutex_);
  const bool was_readable = ReadableLocked();
  if (!closed_) backlog_end_ = std::max(backlog_end_, to);
  if (!was_readable && ReadableLocked() && on_ready_) on_ready_();
}

void EventSubscription::Push(std::shared_ptr<const v1::Event> event) {
  absl::MutexLock lock(&mutex_);
  if (closed_) return;
  if (pending_.size() >= kMaxPending) {
    // The reader stopped reading (or cannot keep up): cut it off rather
    // than hold events for it without bound. A watcher of one execution
    // resumes from the first stored event it has not been given.
    const std::string scope = event->execution();
    error_ = follows_one_execution_
                 ? absl::ResourceExhaustedError(absl::StrCat(
                       "watcher of ", scope, " fell behind at sequence ", backlog_next_ + 1, " (",
                       kMaxPending,
                       " live events unread); resume with from_sequence=", backlog_next_ + 1))
                 : absl::ResourceExhaustedError(absl::StrCat(
                       "watcher of all executions fell behind (", kMaxPending,
                       " events unread) and was cut off; watch again, or watch each execution "
                       "with from_sequence to replay what was missed"));
    pending_.clear();
    backlog_end_ = backlog_next_;
    closed_ = true;
    if (on_cut_off_) on_cut_off_();
    if (on_ready_) on_ready_();
    return;
  }
  const bool was_readable = ReadableLocked();
  pending_.push_back(std::move(event));
  if (!was_readable && on_ready_) on_ready_();
}

void EventSubscription::OnReady(absl::AnyInvocable<void()> hook) {
  absl::MutexLock lock(&mutex_);
  on_ready_ = std::move(hook);
  if (on_ready_ && ReadableLocked()) on_ready_();
}

void EventSubscription::OnCutOff(absl::AnyInvocable<void()> hook) {
  absl::MutexLock lock(&mutex_);
  on_cut_off_ = std::move(hook);
}

absl::Status EventSubscription::error() {
  absl::MutexLock lock(&mutex_);
  return error_;
}

void EventSubscription::Close() {
  absl::MutexLock lock(&mutex_);
  const bool was_readable = ReadableLocked();
  closed_ = true;
  if (!was_readable && on_ready_) on_ready_();
}

bool EventSubscription::closed() {
  absl::MutexLock lock(&mutex_);
  return closed_ && pending_.empty() && backlog_next_ == backlog_end_;
}

// --- Engine internals ---

struct WorkflowEngine::Agent {
  std::string id;
  v1::Register registration;
  std::shared_ptr<AgentChannel> channel;
  std::shared_ptr<ResultAcks> acks;  // this session's
  int64_t credit = 0;
  double free_cpu = 0;
  int64_t free_memory = 0;
  int32_t free_gpus = 0;
  absl::Time last_seen;
  absl::Time connected_since;  // of the current stream
  bool draining = false;
  std::vector<uint32_t> queues;  // distinct; each counted in its Queue::agents
  // (execution slot, task index) of every lease held.
  absl::flat_hash_set<std::pair<uint32_t, uint32_t>> leases;

  int32_t free_slots() const {
    return std::max<int32_t>(0, registration.slots() - static_cast<int32_t>(leases.size()));
  }
};

struct WorkflowEngine::Queue {
  std::string name;
  ReadyQueue ready;
  int64_t queued = 0;   // tasks in READY (exact; the ReadyQueue may hold stale entries)
  int64_t running = 0;  // tasks LEASED or RUNNING
  int32_t agents = 0;   // agents known (connected or within their lease timeout) serving it
  // Some execution's task refers to it by index (TaskSlot::queue): the name
  // and index stay for as long as the engine does.
  bool named_by_task = false;
  bool exported = false;  // has metrics series
  // Agents alone made it known; none serves it any more and nothing is
  // queued or running in it: nobody uses it.
  bool unused() const { return agents == 0 && !named_by_task && queued == 0 && running == 0; }
};

// Work that must happen after the engine lock is released. Messages to
// agents and events to watchers are handed over under the lock instead (they
// only enqueue), so their order always matches the order of the changes.
struct WorkflowEngine::Outbox {
  std::vector<v1::StartExecutionRequest> child_starts;
  // Logged after the lock is released: a log line is a write(2), and the
  // engine waits for none.
  struct Ended {
    std::string execution;
    v1::ExecutionState state;
    int32_t succeeded, failed, skipped;
  };
  std::vector<Ended> ended;
};

WorkflowEngine::WorkflowEngine(Options options)
    : options_(std::move(options)), metrics_(options_.metrics) {
  TickLeases();
  if (options_.store != nullptr && options_.snapshot_every_records > 0) {
    snapshotter_ = std::thread([this] { SnapshotLoop(); });
  }
}

WorkflowEngine::~WorkflowEngine() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (snapshotter_.joinable()) snapshotter_.join();
}

void WorkflowEngine::TickLeases() {
  const absl::Duration period =
      std::clamp(options_.lease_timeout / 4, absl::Milliseconds(50), absl::Seconds(5));
  timers_.ScheduleAfter(period, [this] {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    ExpireLeases(absl::Now());
    TickLeases();
  });
}

// --- Durability ---

StateStore::Completion DurableWait::Callback() {
  return [this](absl::Status status) {
    absl::MutexLock lock(&mutex_);
    status_ = std::move(status);
    done_ = true;
  };
}

absl::Status DurableWait::Wait() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(&done_));
  return status_;
}

void WorkflowEngine::FailStop(const absl::Status& status) {
  {
    absl::MutexLock lock(&failure_mu_);
    failed_.store(true, std::memory_order_release);
    if (!failure_.ok()) return;  // stopped already: told once
    failure_ = status;
  }
  // Logged and reported on the timer thread: this may run under mu_, and
  // nothing under it does I/O.
  timers_.ScheduleAfter(absl::ZeroDuration(), [this, status] {
    logging::Error(
        "state store failed: the orchestrator stops serving and must restart from "
        "what is durable",
        {{"error", std::string(status.message())}});
    if (options_.on_store_failure) options_.on_store_failure(status);
  });
}

absl::Status WorkflowEngine::Stopped() {
  if (!failed_.load(std::memory_order_acquire)) return absl::OkStatus();
  absl::MutexLock lock(&failure_mu_);
  return absl::UnavailableError(
      absl::StrCat("the orchestrator stopped after its state store failed (", failure_.message(),
                   "); it restarts from what is durable"));
}

StateStore::Completion WorkflowEngine::DurableCallback(std::shared_ptr<DurableWait> durable) {
  return [this, durable = std::move(durable)](const absl::Status& status) {
    if (!status.ok()) FailStop(status);
    durable->Callback()(status);
  };
}

void WorkflowEngine::RecordResultsLocked(Agent& agent,
                                         absl::Span<const v1::TaskResult* const> results,
                                         absl::Span<ParsedOutput> parsed, Outbox& out) {
  // Reused whole, like the lease records: filling one in allocates nothing.
  std::vector<v1::StateRecord> records = std::move(result_scratch_);
  size_t recorded = 0;
  uint64_t through = 0;
  ParsedOutput nothing;  // the output of every result when `parsed` is empty
  for (size_t i = 0; i < results.size(); ++i) {
    const v1::TaskResult* result = results[i];
    through = std::max(through, result->sequence());
    if (recorded == records.size()) records.emplace_back();
    v1::TaskResultRecorded* record = records[recorded].mutable_task_result();
    // What an earlier use of this scratch record said about its output.
    record->clear_outputs();
    record->clear_decision();
    record->clear_output_error();
    record->clear_output_error_final();
    record->set_output_parsed(true);
    // A stale result is acknowledged too, so the agent forgets it.
    if (!HandleResultLocked(agent.id, *result, parsed.empty() ? nothing : parsed[i], record, out)) {
      continue;
    }
    recorded++;
    record->set_agent_id(agent.id);
    // Lent, not copied: the store is done with the records when Append
    // returns, and they give the results back below.
    record->unsafe_arena_set_allocated_result(const_cast<v1::TaskResult*>(result));
  }
  // Acknowledged once durable: the agent keeps re-sending until then.
  if (recorded == 0) {
    agent.acks->NothingToRecord(through);
  } else {
    agent.acks->Appended();
    PersistLocked(absl::MakeSpan(records.data(), recorded),
                  [this, acks = agent.acks, through](const absl::Status& status) {
                    if (!status.ok()) FailStop(status);
                    acks->Durable(through, status);
                  });
    for (size_t i = 0; i < recorded; ++i) {
      records[i].mutable_task_result()->unsafe_arena_release_result();
    }
  }
  result_scratch_ = std::move(records);
  DispatchLocked(out);
}

void WorkflowEngine::PersistLocked(v1::StateRecord& record, StateStore::Completion done) {
  PersistLocked(absl::MakeSpan(&record, 1), std::move(done));
}

void WorkflowEngine::PersistLocked(absl::Span<v1::StateRecord> records,
                                   StateStore::Completion done) {
  if (options_.store == nullptr || replaying_) {
    if (done) done(absl::OkStatus());
    return;
  }
  // The time the change's events and attempt times carry: replay gives
  // them this one rather than its own.
  const int64_t unix_nanos = absl::ToUnixNanos(now_);
  for (v1::StateRecord& record : records) record.set_unix_nanos(unix_nanos);
  // Enqueued under the engine lock so the log's order is the order of the
  // changes; the append itself never blocks on I/O.
  // Callers' completions stop the engine on an error themselves (see
  // DurableCallback), so that wrapping them costs no allocation here.
  options_.store->Append(
      records, done ? std::move(done) : [this](const absl::Status& status) {
        if (!status.ok()) FailStop(status);
      });
  if (options_.snapshot_every_records > 0 &&
      (records_since_snapshot_ += records.size()) >= options_.snapshot_every_records) {
    snapshot_requested_ = true;
  }
}

absl::Status WorkflowEngine::Recover() {
  if (options_.store == nullptr) return absl::OkStatus();
  const absl::Time start = absl::Now();
  int64_t records = 0;
  int64_t requeued = 0;
  int64_t kept = 0;
  int64_t executions = 0;
  bool from_snapshot = false;
  absl::Duration restore_time;
  absl::Status status;
  Outbox out;
  {
    absl::MutexLock one_at_a_time(&snapshot_mu_);
    absl::MutexLock lock(&mu_);
    TickLocked();  // a snapshot's retry timers count from here
    replaying_ = true;
    status = options_.store->Load(
        [&](v1::EngineSnapshot snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_, snapshot_mu_) {
          from_snapshot = true;
          last_snapshot_position_ = snapshot.position();
          const absl::Time restore_start = absl::Now();
          absl::Status restored = RestoreLocked(std::move(snapshot));
          restore_time = absl::Now() - restore_start;
          return restored;
        },
        [&](const v1::StateRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          Outbox discarded;  // nothing is sent while history is replayed
          records++;
          // The change is dated as it was made (older records carry no time).
          now_ = record.unix_nanos() != 0 ? absl::FromUnixNanos(record.unix_nanos()) : absl::Now();
          return ApplyRecordLocked(record, discarded);
        });
    replaying_ = false;
    recovered_at_ = absl::Now();
    TickLocked();
    if (status.ok()) {
      // Children an evaluator started whose start never reached the log.
      for (const auto& [request_id, child] : pending_children_) out.child_starts.push_back(child);
      for (auto& exec : executions_) {
        if (exec->final()) continue;
        for (uint32_t i = 0; i < exec->tasks.size(); ++i) {
          TaskSlot& task = exec->tasks[i];
          if (task.state != v1::TASK_LEASED && task.state != v1::TASK_RUNNING) continue;
          if (!task.agent.empty()) {
            KeepRecoveredLeaseLocked(*exec, i);
            kept++;
            continue;
          }
          LoseAttemptLocked(*exec, i, "the orchestrator restarted during the attempt", out);
          requeued++;
        }
      }
      RefreshQueueMetricsLocked();
    }
    executions = static_cast<int64_t>(executions_.size());
  }
  if (!status.ok()) return status;
  Deliver(out);
  logging::Info("engine recovered", {{"from_snapshot", from_snapshot},
                                     {"restore_seconds", absl::ToDoubleSeconds(restore_time)},
                                     {"records", records},
                                     {"executions", executions},
                                     {"leases_kept_for_their_agents", kept},
                                     {"requeued_attempts", requeued},
                                     {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  return absl::OkStatus();
}

void WorkflowEngine::KeepRecoveredLeaseLocked(ExecutionState& exec, uint32_t index) {
  TaskSlot& task = exec.tasks[index];
  std::unique_ptr<Agent>& agent = agents_[task.agent];
  if (agent == nullptr) {
    // Known only by its leases until it registers again: no channel, so
    // nothing is dispatched to it, and the lease timeout counts from now.
    agent = std::make_unique<Agent>();
    agent->id = task.agent;
    agent->last_seen = absl::Now();
  }
  agent->leases.insert({exec.slot, index});
  queues_[task.queue]->running++;
}

void WorkflowEngine::TickLocked() { now_ = absl::Now(); }

bool WorkflowEngine::StartAttemptLocked(ExecutionState& exec, uint32_t index, int64_t attempt,
                                        Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  if (task.attempt != attempt || task.state != v1::TASK_LEASED || task.attempts.empty()) {
    return false;
  }
  task.attempts.back().start_time = absl::ToUnixNanos(now_);
  SetTaskStateLocked(exec, index, v1::TASK_RUNNING, out);
  // Not waited for: the next group commit takes it along; a stream shows
  // the RUNNING event only once it is durable (AwaitDurable).
  v1::StateRecord record;
  v1::AttemptStarted& started = *record.mutable_attempt_started();
  started.set_execution_id(exec.id);
  started.set_task_id(task.spec->id());
  started.set_attempt(attempt);
  PersistLocked(record);
  return true;
}

void WorkflowEngine::LoseAttemptLocked(ExecutionState& exec, uint32_t index, std::string error,
                                       Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  v1::StateRecord record;
  v1::AttemptLost& lost = *record.mutable_attempt_lost();
  lost.set_execution_id(exec.id);
  lost.set_task_id(task.spec->id());
  lost.set_attempt(task.attempt);
  lost.set_error(error);
  if (!task.attempts.empty()) {
    AttemptRecord& attempt = task.attempts.back();
    attempt.outcome = v1::ATTEMPT_LOST;
    attempt.error = std::move(error);
    attempt.end_time = absl::ToUnixNanos(now_);
  }
  metrics_.CountOutcome(v1::ATTEMPT_LOST);
  ReleaseLeaseLocked(exec, index);
  if (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING) {
    RequeueLocked(exec, index, out);
  }
  // Recorded after its events, before any lease of the task again.
  PersistLocked(record);
}

void WorkflowEngine::FailNotStartedLocked(ExecutionState& exec, uint32_t index,
                                          const std::string& agent_id, int64_t attempt,
                                          std::string error, Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  v1::StateRecord record;
  v1::AttemptNotStarted& failed = *record.mutable_attempt_not_started();
  failed.set_execution_id(exec.id);
  failed.set_task_id(task.spec->id());
  failed.set_attempt(attempt);
  failed.set_agent_id(agent_id);
  failed.set_error(error);
  AttemptRecord& last = task.attempts.back();
  last.outcome = v1::ATTEMPT_FAILED;
  last.error = std::move(error);
  // Expanding it again would fail the same way: not retried.
  task.retries_used = task.spec->retry().max_retries();
  FailOrRetryLocked(exec, index, v1::TASK_FAILED, out);
  UpdateExecutionStateLocked(exec, out);
  PersistLocked(record);
}

absl::Status WorkflowEngine::ApplyRecordLocked(const v1::StateRecord& record, Outbox& out) {
  switch (record.kind_case()) {
    case v1::StateRecord::kWorkflowStored: {
      const v1::WorkflowDefinition& def = record.workflow_stored().definition();
      workflows_[def.name()].push_back(std::make_shared<const v1::WorkflowDefinition>(def));
      return absl::OkStatus();
    }
    case v1::StateRecord::kExecutionStarted: {
      ExecutionState& exec = CreateExecutionLocked(
          record.execution_started(),
          std::make_shared<const v1::WorkflowDefinition>(record.execution_started().definition()),
          out);
      UpdateExecutionStateLocked(exec, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kTaskLeased: {
      const v1::TaskLeased& leased = record.task_leased();
      ExecutionState* exec = FindExecutionLocked(leased.execution_id());
      if (exec == nullptr) return absl::DataLossError("lease of an unknown execution");
      auto task = exec->task_index.find(leased.task_id());
      if (task == exec->task_index.end()) return absl::DataLossError("lease of an unknown task");
      LeaseLocked(*exec, task->second, leased.agent_id(), leased.attempt());
      SetTaskStateLocked(*exec, task->second, v1::TASK_LEASED, out);
      UpdateExecutionStateLocked(*exec, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kTaskResult: {
      ParsedOutput parsed = RecordedOutput(record.task_result());
      HandleResultLocked(record.task_result().agent_id(), record.task_result().result(), parsed,
                         nullptr, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kExecutionControl: {
      const v1::ExecutionControl& control = record.execution_control();
      ExecutionState* exec = FindExecutionLocked(control.execution_id());
      if (exec == nullptr) return absl::DataLossError("control of an unknown execution");
      if (control.action() == v1::ExecutionControl::CANCEL)
        CancelLocked(*exec, control.reason(), out);
      if (control.action() == v1::ExecutionControl::PAUSE) {
        SetExecutionStateLocked(*exec, v1::EXECUTION_PAUSED, out);
      }
      if (control.action() == v1::ExecutionControl::RESUME) ResumeLocked(*exec, out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kAttemptStarted: {
      const v1::AttemptStarted& started = record.attempt_started();
      ExecutionState* exec = FindExecutionLocked(started.execution_id());
      if (exec == nullptr) return absl::DataLossError("start of an unknown execution");
      auto task = exec->task_index.find(started.task_id());
      if (task == exec->task_index.end()) return absl::DataLossError("start of an unknown task");
      StartAttemptLocked(*exec, task->second, started.attempt(), out);
      return absl::OkStatus();
    }
    case v1::StateRecord::kAttemptLost: {
      const v1::AttemptLost& lost = record.attempt_lost();
      ExecutionState* exec = FindExecutionLocked(lost.execution_id());
      if (exec == nullptr) return absl::DataLossError("lost attempt of an unknown execution");
      auto task = exec->task_index.find(lost.task_id());
      if (task == exec->task_index.end()) {
        return absl::DataLossError("lost attempt of an unknown task");
      }
      const TaskSlot& slot = exec->tasks[task->second];
      if (slot.attempt == lost.attempt() && !slot.attempts.empty()) {
        LoseAttemptLocked(*exec, task->second, lost.error(), out);
      }
      return absl::OkStatus();
    }
    case v1::StateRecord::kTaskRetryDue: {
      const v1::TaskRetryDue& due = record.task_retry_due();
      ExecutionState* exec = FindExecutionLocked(due.execution_id());
      if (exec == nullptr) return absl::DataLossError("retry of an unknown execution");
      auto task = exec->task_index.find(due.task_id());
      if (task == exec->task_index.end()) return absl::DataLossError("retry of an unknown task");
      const TaskSlot& slot = exec->tasks[task->second];
      if (slot.state == v1::TASK_PENDING && slot.attempt == due.attempt()) {
        RetryDueLocked(*exec, task->second, out);
      }
      return absl::OkStatus();
    }
    case v1::StateRecord::kAttemptNotStarted: {
      const v1::AttemptNotStarted& failed = record.attempt_not_started();
      ExecutionState* exec = FindExecutionLocked(failed.execution_id());
      if (exec == nullptr) return absl::DataLossError("attempt of an unknown execution");
      auto task = exec->task_index.find(failed.task_id());
      if (task == exec->task_index.end()) return absl::DataLossError("attempt of an unknown task");
      LeaseLocked(*exec, task->second, failed.agent_id(), failed.attempt());
      FailNotStartedLocked(*exec, task->second, failed.agent_id(), failed.attempt(), failed.error(),
                           out);
      return absl::OkStatus();
    }
    default:
      return absl::DataLossError("state record of an unknown kind (written by a newer Gyre?)");
  }
}

// --- Workflow definitions ---

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::CreateWorkflow(v1::WorkflowDefinition def) {
  return StoreWorkflowVersion(std::move(def), /*create=*/true);
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::UpdateWorkflow(v1::WorkflowDefinition def) {
  return StoreWorkflowVersion(std::move(def), /*create=*/false);
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::StoreWorkflowVersion(
    v1::WorkflowDefinition def, bool create) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  if (!absl::StartsWith(def.name(), "workflows/")) def.set_name("workflows/" + def.name());
  if (absl::Status status = IncludeLibraryTasks(def); !status.ok()) return status;
  if (absl::Status status = workflow::ValidateWorkflowGraph(def); !status.ok()) return status;
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    auto existing = workflows_.find(def.name());
    const bool exists = existing != workflows_.end() && !existing->second.empty();
    if (create && exists) {
      return absl::AlreadyExistsError(absl::StrCat(def.name(), " already exists (version ",
                                                   existing->second.back()->version(),
                                                   "); use UpdateWorkflow for a new version"));
    }
    if (!create && !exists) return absl::NotFoundError(absl::StrCat(def.name(), " not found"));
    auto& versions = workflows_[def.name()];
    def.set_version(versions.empty() ? 1 : versions.back()->version() + 1);
    *def.mutable_create_time() = ToProto(absl::Now());
    versions.push_back(std::make_shared<const v1::WorkflowDefinition>(def));
    v1::StateRecord record;
    *record.mutable_workflow_stored()->mutable_definition() = def;
    PersistLocked(record, DurableCallback(durable));
  }
  if (absl::Status status = durable->Wait(); !status.ok()) return status;
  return def;
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::GetWorkflow(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  v1::StartExecutionRequest request;
  request.set_workflow(std::string(name));
  Suggestion suggestion;
  absl::StatusOr<std::shared_ptr<const v1::WorkflowDefinition>> def;
  {
    absl::MutexLock lock(&mu_);
    def = ResolveDefinitionLocked(request, &suggestion);
  }
  // The suggestion and the copy of the definition (it may be large) are
  // made without the lock.
  if (!def.ok() && !suggestion.word.empty()) {
    return absl::NotFoundError(
        absl::StrCat(def.status().message(), DidYouMean(suggestion.word, suggestion.candidates)));
  }
  if (!def.ok()) return def.status();
  return **def;
}

namespace {

// A list's page size: `requested` in [1, max], 0 for the default.
absl::StatusOr<size_t> PageSize(int32_t requested, int32_t fallback, int32_t max) {
  if (requested < 0 || requested > max) {
    return absl::InvalidArgumentError(absl::StrCat("page_size ", requested, " is out of range [1, ",
                                                   max, "] (0: ", fallback, ")"));
  }
  return static_cast<size_t>(requested == 0 ? fallback : requested);
}

// A ListWorkflows page ends early once it holds this much (and at least one
// definition): a client's default receive limit is 4 MiB.
constexpr size_t kMaxWorkflowPageBytes = size_t{2} << 20;

// ListWorkflows page tokens name the last workflow handed out ("w" and its
// short name): workflows are listed by name, and one stored meanwhile must
// not shift the next page. Opaque to clients.
std::string WorkflowPageToken(absl::string_view name) {
  absl::ConsumePrefix(&name, "workflows/");
  return absl::StrCat("w", name);
}

absl::StatusOr<std::string> WorkflowAfterToken(absl::string_view token) {
  if (token.empty()) return std::string();
  if (!absl::ConsumePrefix(&token, "w") || token.empty() || token.size() > 63 ||
      !std::all_of(token.begin(), token.end(), [](char c) {
        return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
      })) {
    return absl::InvalidArgumentError("invalid page_token (pass the next_page_token of a page)");
  }
  return absl::StrCat("workflows/", token);
}

}  // namespace

absl::StatusOr<v1::ListWorkflowsResponse> WorkflowEngine::ListWorkflows(
    const v1::ListWorkflowsRequest& req) {
  absl::StatusOr<size_t> limit = PageSize(req.page_size(), 100, 1000);
  if (!limit.ok()) return limit.status();
  absl::StatusOr<std::string> after = WorkflowAfterToken(req.page_token());
  if (!after.ok()) return after.status();
  // Under the lock only the page's shared definitions are taken; copying
  // them (megabytes each, perhaps) happens after.
  std::vector<std::shared_ptr<const v1::WorkflowDefinition>> page;
  bool more = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = after->empty() ? workflows_.begin() : workflows_.upper_bound(*after);
    for (; it != workflows_.end(); ++it) {
      if (it->second.empty()) continue;
      if (page.size() == *limit) {
        more = true;
        break;
      }
      page.push_back(it->second.back());
    }
  }
  v1::ListWorkflowsResponse response;
  size_t bytes = 0;
  for (size_t i = 0; i < page.size(); ++i) {
    if (i > 0 && bytes + page[i]->ByteSizeLong() > kMaxWorkflowPageBytes) {
      more = true;
      break;
    }
    bytes += page[i]->ByteSizeLong();
    *response.add_workflows() = *page[i];
  }
  if (more) {
    response.set_next_page_token(WorkflowPageToken(response.workflows().rbegin()->name()));
  }
  return response;
}

absl::Status WorkflowEngine::IncludeLibraryTasks(v1::WorkflowDefinition& def) const {
  // Resolved once, when the definition is stored or started: the execution
  // keeps the tasks it started with, and a replay does not depend on the
  // library loaded by a later process.
  if (options_.task_library == nullptr) return absl::OkStatus();
  return workflow::IncludeLibraryTasks(*options_.task_library, &def);
}

absl::StatusOr<std::shared_ptr<const v1::WorkflowDefinition>> WorkflowEngine::InlineDefinition(
    v1::StartExecutionRequest& req) const {
  v1::WorkflowDefinition def = std::move(*req.mutable_definition());
  if (!absl::StartsWith(def.name(), "workflows/")) def.set_name("workflows/" + def.name());
  if (absl::Status status = IncludeLibraryTasks(def); !status.ok()) return status;
  if (absl::Status status = workflow::ValidateWorkflowGraph(def); !status.ok()) return status;
  std::vector<std::string> targets(req.targets().begin(), req.targets().end());
  return workflow::SelectTargets(std::make_shared<const v1::WorkflowDefinition>(std::move(def)),
                                 targets);
}

absl::StatusOr<std::shared_ptr<const v1::WorkflowDefinition>>
WorkflowEngine::ResolveDefinitionLocked(const v1::StartExecutionRequest& req,
                                        Suggestion* suggestion) {
  std::vector<std::string> parts = absl::StrSplit(req.workflow(), '/');
  if (parts.size() == 1) parts.insert(parts.begin(), "workflows");
  if ((parts.size() != 2 && parts.size() != 4) || parts[0] != "workflows" ||
      (parts.size() == 4 && parts[2] != "versions")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid workflow name ", QuoteClientText(req.workflow()),
        " (expected workflows/{workflow} or workflows/{workflow}/versions/{version})"));
  }
  const std::string name = "workflows/" + parts[1];
  auto it = workflows_.find(name);
  if (it == workflows_.end() || it->second.empty()) {
    std::vector<std::string> known;
    for (const auto& [known_name, versions] : workflows_) known.push_back(known_name);
    if (suggestion != nullptr) {
      suggestion->word = name;
      suggestion->candidates = std::move(known);
      return absl::NotFoundError(absl::StrCat(QuoteClientText(name), " not found"));
    }
    return absl::NotFoundError(
        absl::StrCat(QuoteClientText(name), " not found", DidYouMean(name, known)));
  }
  if (parts.size() == 2) return it->second.back();
  int64_t version = 0;
  if (!absl::SimpleAtoi(parts[3], &version) || version < 1 ||
      version > static_cast<int64_t>(it->second.size())) {
    return absl::NotFoundError(absl::StrCat(QuoteClientText(name), " has no version ",
                                            QuoteClientText(parts[3]), " (latest is ",
                                            it->second.size(), ")"));
  }
  return it->second[static_cast<size_t>(version - 1)];
}

uint32_t WorkflowEngine::QueueIndexLocked(const std::string& name) {
  auto it = queue_by_name_.find(name);
  if (it != queue_by_name_.end()) return it->second;
  uint32_t index;
  if (!free_queues_.empty()) {
    index = free_queues_.back();
    free_queues_.pop_back();
  } else {
    index = static_cast<uint32_t>(queues_.size());
    queues_.emplace_back();
  }
  queues_[index] = std::make_unique<Queue>();
  queues_[index]->name = name;
  queue_by_name_.emplace(name, index);
  return index;
}

absl::Status WorkflowEngine::CheckQueueRoomLocked(absl::Span<const std::string* const> names,
                                                  absl::string_view what) {
  if (queue_by_name_.size() + names.size() <= kMaxQueues) return absl::OkStatus();
  absl::flat_hash_set<absl::string_view> unknown;
  for (const std::string* name : names) {
    if (!queue_by_name_.contains(*name)) unknown.insert(*name);
  }
  if (queue_by_name_.size() + unknown.size() <= kMaxQueues) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      what, ": ", unknown.size(), " new queue names would pass the limit of ", kMaxQueues,
      " queue names the orchestrator knows at once (", queue_by_name_.size(),
      " known now: listed by agents or named by executions' tasks)"));
}

void WorkflowEngine::SetAgentQueuesLocked(
    Agent& agent, const google::protobuf::RepeatedPtrField<std::string>* names) {
  std::vector<uint32_t> previous;
  previous.swap(agent.queues);
  if (names != nullptr) {
    for (const std::string& name : *names) {
      const uint32_t index = QueueIndexLocked(name);
      if (std::find(agent.queues.begin(), agent.queues.end(), index) != agent.queues.end()) {
        continue;  // listed twice
      }
      agent.queues.push_back(index);
      queues_[index]->agents++;
    }
  }
  for (uint32_t index : previous) {
    Queue& queue = *queues_[index];
    queue.agents--;
    if (!queue.unused()) continue;
    // Listed only by agents, and none lists it now: forgotten, so that
    // names agents come and go with do not pile up (its metrics series
    // goes at the next refresh). No task refers to the index, so it can
    // be reused.
    if (queue.exported) metrics_.RemoveQueue(queue.name);
    queue_by_name_.erase(queue.name);
    queues_[index] = nullptr;
    free_queues_.push_back(index);
  }
}

size_t WorkflowEngine::QueueCount() {
  absl::MutexLock lock(&mu_);
  return queue_by_name_.size();
}

// --- Executions ---

absl::StatusOr<v1::Execution> WorkflowEngine::StartExecution(v1::StartExecutionRequest req) {
  return StartExecution(std::move(req), nullptr, 0);
}

absl::StatusOr<WorkflowEngine::StartedExecution> WorkflowEngine::StartAndWatch(
    v1::StartExecutionRequest req, bool include_logs) {
  auto events = std::make_shared<EventSubscription>(include_logs);
  absl::StatusOr<v1::Execution> execution = StartExecution(std::move(req), events, 0);
  if (!execution.ok()) {
    Unwatch(events);
    return execution.status();
  }
  return StartedExecution{*std::move(execution), std::move(events)};
}

absl::StatusOr<v1::Execution> WorkflowEngine::StartExecution(
    v1::StartExecutionRequest req, const std::shared_ptr<EventSubscription>& watch,
    uint64_t fingerprint) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  if (absl::Status status = workflow::ValidateContextMap(req.context()); !status.ok()) {
    return status;
  }
  if (req.priority() < 0 || req.priority() > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority ", req.priority(), " is out of range [0, 100]"));
  }
  if (req.request_id().size() > 128) {
    return absl::InvalidArgumentError("request_id is longer than 128 characters");
  }
  // Before the definition is moved out of the request, and off the lock.
  if (fingerprint == 0 && !req.request_id().empty()) fingerprint = RequestFingerprint(req);
  // An inline definition is validated before taking the lock: a large one
  // must not stall dispatch.
  absl::StatusOr<std::shared_ptr<const v1::WorkflowDefinition>> selected;
  std::shared_ptr<const workflow::DeclaredContext> declared;
  const bool inline_definition = req.has_definition();
  if (inline_definition) {
    selected = InlineDefinition(req);
    if (!selected.ok()) return selected.status();
    declared = std::make_shared<const workflow::DeclaredContext>(**selected);
  }
  Outbox out;
  v1::Execution result;
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    if (!req.request_id().empty()) {
      auto existing = execution_by_request_.find(req.request_id());
      if (existing != execution_by_request_.end()) {
        const ExecutionState& exec = *executions_[existing->second];
        if (exec.request_fingerprint != 0 && exec.request_fingerprint != fingerprint) {
          return absl::AlreadyExistsError(
              absl::StrCat("request_id ", req.request_id(), " was used for a different request (",
                           exec.name(), "); use a new request_id for a new request"));
        }
        if (watch != nullptr) SubscribeLocked(exec, 1, watch);
        return ExecutionProtoLocked(exec);
      }
    }
    if (!inline_definition) {
      absl::StatusOr<std::shared_ptr<const v1::WorkflowDefinition>> def =
          ResolveDefinitionLocked(req);
      if (!def.ok()) return def.status();
      std::vector<std::string> targets(req.targets().begin(), req.targets().end());
      selected = workflow::SelectTargets(*def, targets);
      if (!selected.ok()) return selected.status();
      declared = std::make_shared<const workflow::DeclaredContext>(**selected);
    }
    // Only declared names enter the context (a child may also be given
    // what its parent's workflow declares: its evaluator passes them on).
    const ExecutionState* parent = nullptr;
    if (!req.parent().empty()) {
      parent = FindExecutionLocked(req.parent());
      if (parent == nullptr) return absl::NotFoundError(absl::StrCat(req.parent(), " not found"));
    }
    if (absl::Status status = workflow::CheckStartContextDeclared(
            req.context(), *declared, (*selected)->name(),
            parent != nullptr ? parent->declared.get() : nullptr);
        !status.ok()) {
      return status;
    }

    v1::StateRecord record;
    v1::ExecutionStarted& started = *record.mutable_execution_started();
    // Time-ordered ids; the counter restarts with the process, so an id
    // taken within the same millisecond before a restart is skipped.
    std::string id;
    do {
      id = absl::StrFormat("%x-%04x", absl::ToUnixMillis(absl::Now()), ++next_execution_);
    } while (execution_by_id_.contains(id));
    started.set_execution_id(std::move(id));

    for (const auto& [key, value] : (*selected)->default_context()) {
      (*started.mutable_context())[key] = value;
    }
    if (parent != nullptr) {
      started.set_parent(parent->name());
      for (const auto& [key, value] : parent->context) (*started.mutable_context())[key] = value;
    }
    for (const auto& [key, value] : req.context()) (*started.mutable_context())[key] = value;
    // Each part is within the limits; together they may not be. Checked
    // before anything is applied (a few hundred entries at most, so cheap
    // under the lock).
    if (const size_t entries = static_cast<size_t>(started.context_size()),
        bytes = workflow::ContextBytes(started.context());
        entries > limits::kMaxContextEntries || bytes > limits::kMaxContextTotalBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the execution's context (the workflow's default context, the parent's and the "
          "request's together) has ",
          entries, " entries and ", bytes, " bytes; at most ", limits::kMaxContextEntries,
          " entries and ", limits::kMaxContextTotalBytes, " bytes"));
    }
    for (const std::string& target : req.targets()) started.add_targets(target);
    started.set_priority(req.priority() == 0 ? 50 : req.priority());
    started.set_request_id(req.request_id());
    started.set_request_fingerprint(fingerprint);
    started.set_context_rules(kDeclaredContextRules);
    *started.mutable_create_time() = ToProto(now_);

    if (queue_by_name_.size() + static_cast<size_t>((*selected)->tasks_size()) > kMaxQueues) {
      // Each queue name a task names costs the engine memory for as long
      // as it runs: bounded like those agents list.
      const std::string default_queue =
          (*selected)->default_queue().empty() ? "default" : (*selected)->default_queue();
      std::vector<const std::string*> names;
      names.reserve(static_cast<size_t>((*selected)->tasks_size()));
      for (const v1::TaskSpec& task : (*selected)->tasks()) {
        names.push_back(task.queue().empty() ? &default_queue : &task.queue());
      }
      if (absl::Status room = CheckQueueRoomLocked(names, "start execution"); !room.ok()) {
        return room;
      }
    }
    ExecutionState& state = CreateExecutionLocked(started, *selected, out, std::move(declared));
    // The record lends the shared definition instead of copying it (a large
    // one is most of a submission's memory); the store is done with the
    // record when Append returns.
    started.unsafe_arena_set_allocated_definition(
        const_cast<v1::WorkflowDefinition*>(selected->get()));
    PersistLocked(record, DurableCallback(durable));
    started.unsafe_arena_release_definition();
    UpdateExecutionStateLocked(state, out);
    DispatchLocked(out);
    // Its events wait in the subscription until the caller has the reply.
    if (watch != nullptr) SubscribeLocked(state, 1, watch);
    result = ExecutionProtoLocked(state);
  }
  Deliver(out);
  // Acknowledged only once durable: a crash after this reply loses nothing.
  if (absl::Status status = durable->Wait(); !status.ok()) return status;
  logging::Info("execution started", {{"execution", result.name()},
                                      {"workflow", result.workflow()},
                                      {"tasks", result.task_counts().total()}});
  return result;
}

absl::Status WorkflowEngine::AwaitDurable() {
  if (options_.store == nullptr) return absl::OkStatus();
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  uint64_t position = 0;
  {
    // Under the lock: an event is published inside the critical section of
    // its change, perhaps before that change's records are appended; once
    // the lock is ours, every such section has appended them.
    absl::MutexLock lock(&mu_);
    position = options_.store->last_position();
  }
  return options_.store->AwaitDurable(position);
}

absl::StatusOr<v1::WorkflowDefinition> WorkflowEngine::GetTaskLibrary() const {
  if (options_.task_library == nullptr) {
    return absl::NotFoundError(
        "no task library is loaded: set task_library_dir in the orchestrator's config");
  }
  return *options_.task_library;
}

absl::StatusOr<v1::Execution> WorkflowEngine::ScheduleOutcome(
    const v1::ScheduleOutcomeRequest& req) {
  if (options_.task_library == nullptr) {
    return absl::FailedPreconditionError(
        "no task library is loaded: set task_library_dir in the orchestrator's config");
  }
  if (req.targets().empty()) {
    return absl::InvalidArgumentError("schedule outcome: name at least one target task");
  }
  v1::StartExecutionRequest start;
  *start.mutable_definition() = *options_.task_library;
  *start.mutable_targets() = req.targets();
  *start.mutable_context() = req.context();
  start.set_priority(req.priority());
  start.set_request_id(req.request_id());
  // The client's request, not the expanded one: the library may change
  // between a request and its retry after a restart.
  const uint64_t fingerprint = req.request_id().empty() ? 0 : RequestFingerprint(req);
  return StartExecution(std::move(start), nullptr, fingerprint);
}

ExecutionState& WorkflowEngine::CreateExecutionLocked(
    const v1::ExecutionStarted& record, std::shared_ptr<const v1::WorkflowDefinition> definition,
    Outbox& out, std::shared_ptr<const workflow::DeclaredContext> declared) {
  ExecutionState& state = BuildExecutionLocked(record, std::move(definition), std::move(declared));
  pending_children_.erase(record.request_id());
  v1::Event created;
  created.set_type(v1::Event::EXECUTION_CREATED);
  EmitLocked(state, std::move(created), out);
  for (uint32_t i = 0; i < state.tasks.size(); ++i) {
    if (state.tasks[i].unmet_dependencies == 0) MakeReadyLocked(state, i, out);
  }
  return state;
}

ExecutionState& WorkflowEngine::BuildExecutionLocked(
    const v1::ExecutionStarted& record,
    std::shared_ptr<const v1::WorkflowDefinition> shared_definition,
    std::shared_ptr<const workflow::DeclaredContext> declared) {
  auto exec = std::make_unique<ExecutionState>();
  exec->slot = static_cast<uint32_t>(executions_.size());
  exec->id = record.execution_id();
  exec->full_name = "executions/" + exec->id;
  exec->definition = std::move(shared_definition);
  exec->targets.assign(record.targets().begin(), record.targets().end());
  exec->priority = record.priority();
  exec->request_id = record.request_id();
  exec->request_fingerprint = record.request_fingerprint();
  exec->context_rules = record.context_rules();
  if (declared != nullptr) {
    exec->declared = std::move(declared);
  } else if (exec->context_rules >= kDeclaredContextRules) {
    exec->declared = std::make_shared<const workflow::DeclaredContext>(*exec->definition);
  } else {
    exec->declared = workflow::DeclaredContext::Open();  // started under the open rule
  }
  exec->parent = record.parent();
  exec->create_time = FromProto(record.create_time());
  for (const auto& [key, value] : record.context()) exec->context[key] = value;
  exec->builtins = ExecutionBuiltins{
      exec->id, ShortWorkflowName(exec->definition->name()),
      absl::FormatTime("%Y-%m-%d", exec->create_time, absl::UTCTimeZone()),
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", exec->create_time, absl::UTCTimeZone())};

  const v1::WorkflowDefinition& definition = *exec->definition;
  const std::string default_queue =
      definition.default_queue().empty() ? "default" : definition.default_queue();
  exec->tasks.resize(static_cast<size_t>(definition.tasks_size()));
  exec->task_index.reserve(static_cast<size_t>(definition.tasks_size()));
  for (int i = 0; i < definition.tasks_size(); ++i) {
    exec->task_index[definition.tasks(i).id()] = static_cast<uint32_t>(i);
  }
  for (int i = 0; i < definition.tasks_size(); ++i) {
    const v1::TaskSpec& spec = definition.tasks(i);
    TaskSlot& task = exec->tasks[static_cast<size_t>(i)];
    task.spec = &spec;
    task.queue = QueueIndexLocked(spec.queue().empty() ? default_queue : spec.queue());
    queues_[task.queue]->named_by_task = true;
    task.priority = static_cast<uint8_t>(spec.priority() > 0 ? spec.priority() : exec->priority);
    for (const std::string& dependency : spec.depends_on()) {
      const uint32_t parent = exec->task_index.at(dependency);
      task.parents.push_back(parent);
      exec->tasks[parent].dependants.push_back(static_cast<uint32_t>(i));
    }
    task.unmet_dependencies = static_cast<uint32_t>(task.parents.size());
  }
  exec->total = definition.tasks_size();
  exec->pending = exec->total;

  ExecutionState& state = *exec;
  execution_by_id_[exec->id] = exec->slot;
  if (!exec->request_id.empty()) execution_by_request_[exec->request_id] = exec->slot;
  executions_.push_back(std::move(exec));
  CountExecutionLocked(v1::EXECUTION_STATE_UNSPECIFIED, state.state);
  return state;
}

void WorkflowEngine::CountExecutionLocked(v1::ExecutionState from, v1::ExecutionState to) {
  for (const auto& [state, delta] : {std::pair{from, -1}, std::pair{to, +1}}) {
    if (state == v1::EXECUTION_STATE_UNSPECIFIED) continue;
    metrics_.SetExecutions(state, executions_by_state_[state] += delta);
  }
}

ExecutionState* WorkflowEngine::FindExecutionLocked(absl::string_view name) {
  absl::string_view id = name;
  absl::ConsumePrefix(&id, "executions/");
  id = id.substr(0, id.find('/'));
  auto it = execution_by_id_.find(id);
  return it == execution_by_id_.end() ? nullptr : executions_[it->second].get();
}

absl::StatusOr<v1::Execution> WorkflowEngine::GetExecution(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::MutexLock lock(&mu_);
  ExecutionState* exec = FindExecutionLocked(name);
  if (exec == nullptr)
    return absl::NotFoundError(absl::StrCat("execution ", QuoteClientText(name), " not found"));
  return ExecutionProtoLocked(*exec);
}

namespace {

// The most executions one ListExecutions call looks at.
constexpr uint32_t kMaxListScan = 10000;

// Page tokens are where the next page starts ("p" and a position), opaque
// to clients; `end` bounds what this engine could have handed out.
absl::StatusOr<uint32_t> PagePosition(absl::string_view token, uint32_t first, uint32_t end) {
  if (token.empty()) return first;
  uint32_t position = 0;
  if (!absl::ConsumePrefix(&token, "p") || !absl::SimpleAtoi(token, &position) || position > end) {
    return absl::InvalidArgumentError("invalid page_token (pass the next_page_token of a page)");
  }
  return position;
}

}  // namespace

absl::StatusOr<v1::ListExecutionsResponse> WorkflowEngine::ListExecutions(
    const v1::ListExecutionsRequest& req) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::StatusOr<size_t> limit = PageSize(req.page_size(), 100, 1000);
  if (!limit.ok()) return limit.status();
  if (!v1::ExecutionView_IsValid(req.view())) {
    return absl::InvalidArgumentError(
        absl::StrCat("view ", req.view(), " is not an ExecutionView (BASIC or FULL)"));
  }
  absl::MutexLock lock(&mu_);
  // Newest first: slots are in start order, so a page starts below a slot.
  absl::StatusOr<uint32_t> below =
      PagePosition(req.page_token(), static_cast<uint32_t>(executions_.size()),
                   static_cast<uint32_t>(executions_.size()));
  if (!below.ok()) return below.status();
  v1::ListExecutionsResponse response;
  uint32_t slot = *below;
  // A filter that matches little must not hold the engine lock over a long
  // history: a page may come back short, with a token to go on from.
  const uint32_t scan_end = slot > kMaxListScan ? slot - kMaxListScan : 0;
  // Lists leave contexts out unless asked (ExecutionView).
  const bool full = req.view() == v1::EXECUTION_VIEW_FULL;
  size_t context_bytes = 0;
  for (; slot > scan_end && static_cast<size_t>(response.executions_size()) < *limit; --slot) {
    const ExecutionState& exec = *executions_[slot - 1];
    if (!req.workflow().empty() && exec.definition->name() != req.workflow()) continue;
    if (!req.states().empty() &&
        std::find(req.states().begin(), req.states().end(), exec.state) == req.states().end()) {
      continue;
    }
    if (!full) {
      *response.add_executions() = ExecutionProtoLocked(exec, /*with_context=*/false);
      continue;
    }
    // A FULL page is bounded by its contexts' bytes too (at least one
    // execution per page, whose context is within its own limit).
    const size_t bytes = workflow::ContextBytes(exec.context);
    if (response.executions_size() > 0 && context_bytes + bytes > limits::kMaxListPageValueBytes) {
      break;
    }
    context_bytes += bytes;
    *response.add_executions() = ExecutionProtoLocked(exec);
  }
  if (slot > 0) response.set_next_page_token(absl::StrCat("p", slot));
  return response;
}

absl::StatusOr<v1::ListTaskRunsResponse> WorkflowEngine::ListTaskRuns(
    const v1::ListTaskRunsRequest& req) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::StatusOr<size_t> limit = PageSize(req.page_size(), 1000, 10000);
  if (!limit.ok()) return limit.status();
  absl::MutexLock lock(&mu_);
  ExecutionState* exec = FindExecutionLocked(req.parent());
  if (exec == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("execution ", QuoteClientText(req.parent()), " not found"));
  }
  const auto tasks = static_cast<uint32_t>(exec->tasks.size());
  absl::StatusOr<uint32_t> from = PagePosition(req.page_token(), 0, tasks);
  if (!from.ok()) return from.status();
  v1::ListTaskRunsResponse response;
  uint32_t index = *from;
  // Outputs may be up to 1 MiB per task: a page is bounded by their bytes too.
  size_t output_bytes = 0;
  for (; index < tasks && static_cast<size_t>(response.task_runs_size()) < *limit; ++index) {
    const size_t bytes = workflow::ContextBytes(exec->tasks[index].details_or_empty().outputs);
    if (response.task_runs_size() > 0 && output_bytes + bytes > limits::kMaxListPageValueBytes) {
      break;
    }
    output_bytes += bytes;
    *response.add_task_runs() = TaskRunProtoLocked(*exec, index, /*with_history=*/true);
  }
  if (index < tasks) response.set_next_page_token(absl::StrCat("p", index));
  return response;
}

namespace {

// Tells an agent to stop an attempt: SIGTERM, then SIGKILL after a grace.
v1::OrchestratorMessage CancelMessage(v1::AttemptRef ref) {
  v1::OrchestratorMessage cancel;
  *cancel.mutable_cancel()->mutable_ref() = std::move(ref);
  *cancel.mutable_cancel()->mutable_grace() = ToProto(absl::Seconds(10));
  return cancel;
}

}  // namespace

void WorkflowEngine::CancelLocked(ExecutionState& exec, absl::string_view reason, Outbox& out) {
  exec.reason = reason.empty() ? "cancelled by a client" : std::string(reason);
  for (uint32_t i = 0; i < exec.tasks.size(); ++i) {
    TaskSlot& task = exec.tasks[i];
    if (IsTerminal(task.state)) continue;
    if (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING) {
      auto agent = agents_.find(task.agent);
      if (agent != agents_.end() && agent->second->channel != nullptr) {
        v1::AttemptRef ref;
        ref.set_execution(exec.name());
        ref.set_task_id(task.spec->id());
        ref.set_attempt(task.attempt);
        agent->second->channel->Send(CancelMessage(std::move(ref)));
      }
    }
    task.generation++;
    task.reason = "execution cancelled";
    SetTaskStateLocked(exec, i, v1::TASK_CANCELLED, out);
    if (task.spec->global()) SettleGlobalLocked(exec, i, /*succeeded=*/false, out);
  }
  SetExecutionStateLocked(exec, v1::EXECUTION_CANCELLED, out);
}

void WorkflowEngine::ResumeLocked(ExecutionState& exec, Outbox& out) {
  // Back to what its tasks say: an execution paused before any task ran is
  // PENDING again (RUNNING would claim a start that never happened, with no
  // start_time); UpdateExecutionStateLocked moves it on as tasks run.
  SetExecutionStateLocked(
      exec, exec.start_time != absl::InfinitePast() ? v1::EXECUTION_RUNNING : v1::EXECUTION_PENDING,
      out);
  for (uint32_t task : exec.parked) {
    TaskSlot& slot = exec.tasks[task];
    if (slot.state != v1::TASK_READY) continue;
    queues_[slot.queue]->ready.Push({exec.slot, task, slot.priority, slot.generation});
  }
  exec.parked.clear();
  UpdateExecutionStateLocked(exec, out);
}

absl::StatusOr<v1::Execution> WorkflowEngine::CancelExecution(absl::string_view name,
                                                              absl::string_view reason) {
  return ControlExecution(name, v1::ExecutionControl::CANCEL, reason);
}

absl::StatusOr<v1::Execution> WorkflowEngine::PauseExecution(absl::string_view name) {
  return ControlExecution(name, v1::ExecutionControl::PAUSE, "");
}

absl::StatusOr<v1::Execution> WorkflowEngine::ResumeExecution(absl::string_view name) {
  return ControlExecution(name, v1::ExecutionControl::RESUME, "");
}

absl::StatusOr<v1::Execution> WorkflowEngine::ControlExecution(absl::string_view name,
                                                               v1::ExecutionControl::Action action,
                                                               absl::string_view reason) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  // Kept with the execution and recorded: free text for people, bounded.
  if (reason.size() > limits::kMaxMessageTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat("reason is ", reason.size(), " bytes; at most ",
                                                   limits::kMaxMessageTextBytes));
  }
  Outbox out;
  v1::Execution result;
  auto durable = std::make_shared<DurableWait>();
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    ExecutionState* exec = FindExecutionLocked(name);
    if (exec == nullptr) {
      return absl::NotFoundError(absl::StrCat("execution ", QuoteClientText(name), " not found"));
    }
    const std::string state = v1::ExecutionState_Name(exec->state);
    switch (action) {
      case v1::ExecutionControl::CANCEL:
        if (exec->final()) {
          return absl::FailedPreconditionError(
              absl::StrCat(exec->name(), " already ended (", state, ")"));
        }
        CancelLocked(*exec, reason, out);
        break;
      case v1::ExecutionControl::PAUSE:
        if (exec->state != v1::EXECUTION_PENDING && exec->state != v1::EXECUTION_RUNNING) {
          return absl::FailedPreconditionError(
              absl::StrCat(exec->name(), " cannot be paused in state ", state));
        }
        SetExecutionStateLocked(*exec, v1::EXECUTION_PAUSED, out);
        break;
      case v1::ExecutionControl::RESUME:
        if (exec->state != v1::EXECUTION_PAUSED) {
          return absl::FailedPreconditionError(
              absl::StrCat(exec->name(), " is not paused (", state, ")"));
        }
        ResumeLocked(*exec, out);
        break;
      default:
        return absl::InvalidArgumentError("unknown execution control");
    }
    v1::StateRecord record;
    v1::ExecutionControl& control = *record.mutable_execution_control();
    control.set_execution_id(exec->id);
    control.set_action(action);
    control.set_reason(exec->reason);
    PersistLocked(record, DurableCallback(durable));
    // After the control's record: the leases it allows come after it in the
    // log, as their events come after its event.
    if (action == v1::ExecutionControl::RESUME) DispatchLocked(out);
    result = ExecutionProtoLocked(*exec);
  }
  Deliver(out);
  if (absl::Status status = durable->Wait(); !status.ok()) return status;
  return result;
}

absl::StatusOr<v1::TaskRun> WorkflowEngine::GetTaskRun(absl::string_view name) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::MutexLock lock(&mu_);
  ExecutionState* exec = FindExecutionLocked(name);
  const size_t tasks_at = name.find("/tasks/");
  if (exec == nullptr || tasks_at == absl::string_view::npos) {
    return absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name), " not found"));
  }
  auto it = exec->task_index.find(name.substr(tasks_at + 7));
  if (it == exec->task_index.end()) {
    return absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name), " not found"));
  }
  v1::TaskRun run = TaskRunProtoLocked(*exec, it->second, /*with_history=*/true);
  run.set_waiting_reason(WaitingReasonLocked(*exec, exec->tasks[it->second]));
  return run;
}

std::string WorkflowEngine::WaitingReasonLocked(const ExecutionState& exec,
                                                const TaskSlot& task) const {
  // A paused execution's state says why its tasks wait.
  if (task.state != v1::TASK_READY || exec.state == v1::EXECUTION_PAUSED) return "";
  const std::string& queue = queues_[task.queue]->name;
  const v1::TaskSpec& spec = *task.spec;
  bool served = false;
  for (const auto& [id, agent] : agents_) {
    if (agent->channel == nullptr || agent->draining ||
        std::find(agent->queues.begin(), agent->queues.end(), task.queue) == agent->queues.end()) {
      continue;
    }
    served = true;
    // An agent's whole offer (0: as much as asked), not what is free now.
    const v1::Resources& offer = agent->registration.resources();
    bool fits =
        (offer.cpu() <= 0 || spec.resources().cpu() <= offer.cpu() + 1e-9) &&
        (offer.memory_bytes() <= 0 || spec.resources().memory_bytes() <= offer.memory_bytes()) &&
        spec.resources().gpus() <= offer.gpus();
    for (const auto& [key, value] : spec.agent_selector()) {
      auto label = agent->registration.labels().find(key);
      fits = fits && label != agent->registration.labels().end() && label->second == value;
    }
    if (fits) return "";  // it waits its turn, or for a slot
  }
  if (!served) return absl::StrCat("waiting for an agent serving queue \"", queue, "\"");
  return absl::StrCat("no agent serving queue \"", queue,
                      "\" offers the labels and resources it needs (cpu ", spec.resources().cpu(),
                      ", memory ", spec.resources().memory_bytes(), " bytes, gpus ",
                      spec.resources().gpus(), ")");
}

absl::StatusOr<v1::GetTaskLogsResponse> WorkflowEngine::GetTaskLogs(absl::string_view name,
                                                                    int64_t attempt) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  absl::MutexLock lock(&mu_);
  ExecutionState* exec = FindExecutionLocked(name);
  const size_t tasks_at = name.find("/tasks/");
  if (exec == nullptr || tasks_at == absl::string_view::npos) {
    return absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name), " not found"));
  }
  auto it = exec->task_index.find(name.substr(tasks_at + 7));
  if (it == exec->task_index.end()) {
    return absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name), " not found"));
  }
  const TaskSlot& task = exec->tasks[it->second];
  const int64_t wanted = attempt != 0 ? attempt : task.attempt;
  const std::map<int64_t, AttemptLogs>& logs = task.details_or_empty().logs;
  auto found = logs.find(wanted);
  if (found == logs.end()) {
    if (wanted < 1 || wanted > task.attempt) {
      return absl::NotFoundError(absl::StrCat("task run ", QuoteClientText(name),
                                              " has no attempt ", wanted,
                                              " (attempts: ", task.attempt, ")"));
    }
    // The attempt exists but reported no output (yet).
  }
  v1::GetTaskLogsResponse response;
  response.set_attempt(wanted);
  if (found != logs.end()) {
    response.set_stdout(found->second.stdout_tail);
    response.set_stderr(found->second.stderr_tail);
    response.set_truncated(found->second.truncated);
  }
  return response;
}

absl::StatusOr<std::shared_ptr<EventSubscription>> WorkflowEngine::Watch(
    absl::string_view execution, int64_t from_sequence, bool include_logs) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  auto subscription = std::make_shared<EventSubscription>(include_logs);
  absl::MutexLock lock(&mu_);
  if (execution.empty()) {
    watchers_.emplace_back("", subscription);
    return subscription;
  }
  ExecutionState* exec = FindExecutionLocked(execution);
  if (exec == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("execution ", QuoteClientText(execution), " not found"));
  }
  SubscribeLocked(*exec, from_sequence, subscription);
  return subscription;
}

void WorkflowEngine::SubscribeLocked(const ExecutionState& exec, int64_t from_sequence,
                                     const std::shared_ptr<EventSubscription>& subscription) {
  const auto first = static_cast<uint32_t>(
      std::min<int64_t>(std::max<int64_t>(1, from_sequence) - 1, exec.events.size()));
  const auto end = static_cast<uint32_t>(exec.events.size());
  // Live events extend the backlog: the subscription builds them all.
  subscription->SetBacklog(
      first, end,
      [this, slot = exec.slot](uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                               std::vector<v1::Event*>* events) {
        ReplayEvents(slot, from, to, arena, events);
      });
  if (exec.final()) {
    subscription->Close();
  } else {
    watchers_.emplace_back(exec.name(), subscription);
  }
}

void WorkflowEngine::Unwatch(const std::shared_ptr<EventSubscription>& subscription) {
  absl::MutexLock lock(&mu_);
  std::erase_if(watchers_, [&](const auto& entry) { return entry.second == subscription; });
}

std::vector<v1::QueueInfo> WorkflowEngine::ListQueues() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::QueueInfo> result;
  for (const auto& queue : queues_) {
    if (queue == nullptr) continue;  // forgotten
    v1::QueueInfo info;
    info.set_name("queues/" + queue->name);
    info.set_depth(queue->queued);
    info.set_running(queue->running);
    const uint32_t index = queue_by_name_.at(queue->name);
    for (const auto& [id, agent] : agents_) {
      if (agent->channel == nullptr ||
          std::find(agent->queues.begin(), agent->queues.end(), index) == agent->queues.end()) {
        continue;
      }
      info.set_agents(info.agents() + 1);
      info.set_free_slots(info.free_slots() + agent->free_slots());
    }
    auto pool = options_.worker_pools.find(queue->name);
    info.set_desired_workers(DesiredWorkers(
        queue->queued, queue->running,
        pool != options_.worker_pools.end() ? pool->second : options_.default_worker_pool));
    result.push_back(std::move(info));
  }
  return result;
}

std::vector<v1::AgentInfo> WorkflowEngine::ListAgents() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::AgentInfo> result;
  for (const auto& [id, agent] : agents_) {
    v1::AgentInfo info;
    info.set_name("agents/" + id);
    info.set_display_name(agent->registration.display_name());
    *info.mutable_queues() = agent->registration.queues();
    *info.mutable_labels() = agent->registration.labels();
    *info.mutable_resources() = agent->registration.resources();
    info.set_slots(agent->registration.slots());
    info.set_free_slots(agent->free_slots());
    info.set_state(agent->channel == nullptr ? v1::AgentInfo::DISCONNECTED
                   : agent->draining         ? v1::AgentInfo::DRAINING
                                             : v1::AgentInfo::CONNECTED);
    *info.mutable_last_heartbeat_time() = ToProto(agent->last_seen);
    info.set_version(agent->registration.version());
    result.push_back(std::move(info));
  }
  return result;
}

// --- The agent protocol ---

absl::StatusOr<v1::Registered> WorkflowEngine::RegisterAgent(
    const v1::Register& registration, std::shared_ptr<AgentChannel> channel) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  if (absl::Status status = CheckRegistration(registration); !status.ok()) return status;
  const std::string& id = registration.agent_id();
  Outbox out;
  std::string took_over;  // why the old stream was replaced, for the log
  bool reconnected = false;
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    auto existing = agents_.find(id);
    const bool reconnect = existing != agents_.end();
    reconnected = reconnect;
    std::vector<const std::string*> new_names;
    new_names.reserve(static_cast<size_t>(registration.queues_size()));
    for (const std::string& queue : registration.queues()) new_names.push_back(&queue);
    if (absl::Status room = CheckQueueRoomLocked(new_names, absl::StrCat("register: agent ", id));
        !room.ok()) {
      return room;
    }
    if (reconnect && existing->second->channel != nullptr) {
      // An id belongs to one live stream. A second registration while the
      // first stream is alive is an impostor or a misconfigured twin:
      // merging it would hand the real agent's leases to it and leave the
      // real agent connected, heartbeating and never given work again.
      // But a network cut can leave the old stream half-open here for a
      // long time: once it has been silent past two heartbeat intervals
      // (the agent sends one each interval), the newcomer is taken to be
      // the agent reconnecting, and the old stream is told and closed.
      // (At least half a second: with short intervals, a busy machine's
      // scheduling delays alone would let an impostor in.)
      Agent& current = *existing->second;
      const absl::Duration silent = absl::Now() - current.last_seen;
      const absl::Duration live_within =
          std::max(2 * options_.heartbeat_interval, absl::Milliseconds(500));
      if (silent <= live_within) {
        return absl::FailedPreconditionError(absl::StrCat(
            "register: agent id ", id, " is connected on another stream since ",
            absl::FormatTime(current.connected_since), " (last heard ",
            absl::ToInt64Milliseconds(silent),
            " ms ago); an agent id belongs to one live stream: use another id, or stop the "
            "other agent (a stream silent for over ",
            absl::ToInt64Milliseconds(live_within), " ms is replaced)"));
      }
      took_over = absl::StrCat("agent id ", id,
                               " registered again on another stream after this one was silent "
                               "for ",
                               absl::ToInt64Milliseconds(silent), " ms");
      current.channel->Replace(took_over);
      current.channel = nullptr;
    }
    auto& slot = agents_[id];
    if (!reconnect) slot = std::make_unique<Agent>();
    Agent& agent = *slot;
    agent.id = id;
    agent.registration = registration;
    agent.channel = std::move(channel);
    agent.acks = std::make_shared<ResultAcks>(agent.channel);
    agent.credit =
        registration.initial_credit() > 0 ? registration.initial_credit() : registration.slots();
    agent.draining = false;
    agent.last_seen = absl::Now();
    agent.connected_since = agent.last_seen;
    SetAgentQueuesLocked(agent, &registration.queues());
    agent.free_cpu = registration.resources().cpu() > 0 ? registration.resources().cpu() : 1e9;
    agent.free_memory = registration.resources().memory_bytes() > 0
                            ? registration.resources().memory_bytes()
                            : std::numeric_limits<int64_t>::max() / 2;
    agent.free_gpus = registration.resources().gpus();
    if (reconnect) {
      // Leases the agent no longer reports were lost with the old session.
      absl::flat_hash_set<std::string> still_running;
      for (const v1::AttemptRef& ref : registration.running()) {
        still_running.insert(absl::StrCat(ref.execution(), "/", ref.task_id(), "#", ref.attempt()));
      }
      std::vector<std::pair<uint32_t, uint32_t>> lost;
      for (const auto& lease : agent.leases) {
        ExecutionState& exec = *executions_[lease.first];
        const TaskSlot& task = exec.tasks[lease.second];
        if (!still_running.contains(
                absl::StrCat(exec.name(), "/", task.spec->id(), "#", task.attempt))) {
          lost.push_back(lease);
        }
      }
      for (const auto& [exec_slot, task] : lost) {
        LoseAttemptLocked(*executions_[exec_slot], task,
                          absl::StrCat("agent ", id, " came back without it"), out);
      }
    }
    // Attempts it reports that are not its live leases (any more):
    // re-queued while it was away, never known (it was declared dead), or
    // cancelled while no cancel could reach it. Another attempt may be
    // running elsewhere; this one must stop.
    for (const v1::AttemptRef& ref : registration.running()) {
      if (HoldsLiveLeaseLocked(agent, ref)) continue;
      agent.channel->Send(CancelMessage(ref));
      SkipUnrecordedAttemptLocked(agent, ref);
    }
    for (const auto& lease : agent.leases) {
      // Resources of leases kept across the reconnect stay reserved.
      const v1::Resources& need = executions_[lease.first]->tasks[lease.second].spec->resources();
      agent.free_cpu -= need.cpu();
      agent.free_memory -= need.memory_bytes();
      agent.free_gpus -= need.gpus();
    }
    DispatchLocked(out);
    RefreshQueueMetricsLocked();
  }
  Deliver(out);
  if (!took_over.empty())
    logging::Warn("agent stream replaced", {{"agent", id}, {"why", took_over}});
  logging::Info(reconnected ? "agent reconnected" : "agent registered",
                {{"agent", id},
                 {"slots", registration.slots()},
                 {"queues", absl::StrJoin(registration.queues(), ",")}});
  v1::Registered registered;
  registered.set_agent("agents/" + id);
  *registered.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
  *registered.mutable_lease_timeout() = ToProto(options_.lease_timeout);
  return registered;
}

namespace {

// Whether a result holds more than the orchestrator keeps of it.
bool Oversized(const v1::TaskResult& result) {
  return result.stdout_tail().size() > limits::kMaxResultTailBytes ||
         result.stderr_tail().size() > limits::kMaxResultTailBytes ||
         result.error().size() > limits::kMaxMessageTextBytes ||
         result.output_json().size() > limits::kMaxOutputJsonBytes;
}

bool HasOversizedResult(const v1::AgentMessage& message) {
  if (message.has_task_result()) return Oversized(message.task_result());
  if (!message.has_task_results()) return false;
  const auto& results = message.task_results().results();
  return std::any_of(results.begin(), results.end(), Oversized);
}

// Cuts `text` to at most `max` bytes, at a UTF-8 character boundary (a
// proto string must stay valid UTF-8).
void CutText(std::string* text, size_t max) {
  if (text->size() <= max) return;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>((*text)[end]) & 0xC0) == 0x80) --end;
  text->resize(end);
}

// Cuts a stdout or stderr tail to what the orchestrator keeps; returns the
// byte count to record (what the task wrote: never less than what arrived,
// so the logs show as truncated).
int64_t CutTail(std::string* tail, int64_t bytes) {
  const auto arrived = static_cast<int64_t>(tail->size());
  if (tail->size() > limits::kMaxResultTailBytes) tail->resize(limits::kMaxResultTailBytes);
  return std::max(bytes, arrived);
}

// Makes `result` fit what the orchestrator keeps (libs/common/limits.h), so
// that it always fits one log record and is never refused: tails and the
// error are cut, and an output larger than a task may pass on fails the
// attempt instead.
void CapResult(v1::TaskResult& result) {
  result.set_stdout_bytes(CutTail(result.mutable_stdout_tail(), result.stdout_bytes()));
  result.set_stderr_bytes(CutTail(result.mutable_stderr_tail(), result.stderr_bytes()));
  if (result.output_json().size() > limits::kMaxOutputJsonBytes) {
    if (result.outcome() == v1::ATTEMPT_SUCCEEDED) {
      result.set_outcome(v1::ATTEMPT_FAILED);
      result.set_error(absl::StrCat("$GYRE_OUTPUT holds ", result.output_json().size(),
                                    " bytes; a task may pass on at most ",
                                    limits::kMaxOutputJsonBytes));
    }
    result.clear_output_json();
  }
  CutText(result.mutable_error(), limits::kMaxMessageTextBytes);
}

}  // namespace

absl::Status WorkflowEngine::HandleAgentMessage(const std::string& agent_id,
                                                const v1::AgentMessage& received,
                                                const AgentChannel* channel) {
  if (absl::Status stopped = Stopped(); !stopped.ok()) return stopped;
  // Results are cut to the documented limits on arrival, before anything is
  // applied (a copy, only in the rare case that something is over them).
  std::optional<v1::AgentMessage> capped;
  if (HasOversizedResult(received)) {
    capped.emplace(received);
    if (capped->has_task_result()) {
      CapResult(*capped->mutable_task_result());
    } else {
      for (v1::TaskResult& result : *capped->mutable_task_results()->mutable_results()) {
        CapResult(result);
      }
    }
  }
  const v1::AgentMessage& message = capped ? *capped : received;
  // Checked before the lock: what an agent names is bounded.
  switch (message.kind_case()) {
    case v1::AgentMessage::kHeartbeat:
      if (absl::Status status = CheckAttemptRefs(message.heartbeat().running(), "heartbeat");
          !status.ok()) {
        return status;
      }
      break;
    case v1::AgentMessage::kTaskStarted:
      if (absl::Status status = CheckAttemptRef(message.task_started().ref(), "task_started");
          !status.ok()) {
        return status;
      }
      break;
    case v1::AgentMessage::kLogChunk:
      if (absl::Status status = CheckAttemptRef(message.log_chunk().ref(), "log_chunk");
          !status.ok()) {
        return status;
      }
      break;
    default:
      break;
  }
  // Results' outputs are a task's JSON: parsed here, on the stream's own
  // thread, before the engine lock is taken. Most results have none, and
  // then nothing is allocated.
  std::vector<ParsedOutput> parsed;
  auto parse_outputs = [&parsed](absl::Span<const v1::TaskResult* const> results) {
    if (std::none_of(results.begin(), results.end(),
                     [](const v1::TaskResult* r) { return !r->output_json().empty(); })) {
      return;
    }
    parsed.reserve(results.size());
    for (const v1::TaskResult* result : results) {
      parsed.push_back(ParseTaskOutput(result->output_json()));
    }
  };
  if (message.has_task_result()) {
    const v1::TaskResult* result = &message.task_result();
    parse_outputs({&result, 1});
  } else if (message.has_task_results() &&
             message.task_results().results_size() <= kMaxResultsPerMessage) {
    const auto& results = message.task_results().results();
    parse_outputs(absl::MakeConstSpan(results.data(), results.size()));
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it == agents_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent \"", agent_id, "\" is not registered (declared dead?)"));
    }
    Agent& agent = *it->second;
    if (channel != nullptr && agent.channel.get() != channel) {
      // This stream fell silent and the id registered again on another:
      // what still comes on it must not act for the new session.
      return absl::FailedPreconditionError(absl::StrCat(
          "agent ", agent_id, ": this stream was replaced by a newer registration of the id"));
    }
    TickLocked();
    agent.last_seen = now_;
    switch (message.kind_case()) {
      case v1::AgentMessage::kHeartbeat:
        ReconcileLeasesLocked(agent, message.heartbeat(), out);
        break;
      case v1::AgentMessage::kCredit:
        agent.credit += std::max(0, message.credit().tasks());
        DispatchToAgentLocked(agent, out);
        break;
      case v1::AgentMessage::kTaskStarted: {
        const v1::AttemptRef& ref = message.task_started().ref();
        ExecutionState* exec = FindExecutionLocked(ref.execution());
        if (exec == nullptr) break;
        auto task = exec->task_index.find(ref.task_id());
        if (task == exec->task_index.end()) break;
        // Only the lease holder says when its attempt started.
        if (exec->tasks[task->second].agent != agent_id) break;
        if (StartAttemptLocked(*exec, task->second, ref.attempt(), out)) {
          metrics_.ObserveSubmitToStart(
              absl::ToDoubleSeconds(now_ - exec->tasks[task->second].ready_time));
        }
        break;
      }
      case v1::AgentMessage::kTaskResult: {
        const v1::TaskResult* result = &message.task_result();
        if (result->sequence() == 0) return UnnumberedResult();
        RecordResultsLocked(agent, {&result, 1}, absl::MakeSpan(parsed), out);
        break;
      }
      case v1::AgentMessage::kTaskResults: {
        const auto& results = message.task_results().results();
        if (results.size() > kMaxResultsPerMessage) {
          return absl::InvalidArgumentError(absl::StrCat("task_results: ", results.size(),
                                                         " results in one message; at most ",
                                                         kMaxResultsPerMessage));
        }
        for (const v1::TaskResult& result : results) {
          if (result.sequence() == 0) return UnnumberedResult();
        }
        RecordResultsLocked(agent, absl::MakeConstSpan(results.data(), results.size()),
                            absl::MakeSpan(parsed), out);
        break;
      }
      case v1::AgentMessage::kLogChunk: {
        // Live output goes to watchers that asked for it; the complete
        // (capped) output is stored with the result.
        const v1::AttemptRef& ref = message.log_chunk().ref();
        // Only for an attempt this agent runs now: any other would put
        // words in another execution's output (a late chunk of an attempt
        // just cancelled or re-leased is dropped too).
        if (!HoldsLiveLeaseLocked(agent, ref)) break;
        ExecutionState* exec = FindExecutionLocked(ref.execution());
        std::shared_ptr<v1::Event> event;  // built once, if anybody wants it
        for (const auto& [scope, subscription] : watchers_) {
          if (!subscription->include_logs() || (!scope.empty() && scope != exec->name())) {
            continue;
          }
          if (event == nullptr) {
            event = std::make_shared<v1::Event>();
            event->set_type(v1::Event::TASK_LOG);
            event->set_execution(exec->name());
            *event->mutable_time() = ToProto(absl::Now());
            event->mutable_log()->set_task_id(ref.task_id());
            event->mutable_log()->set_attempt(ref.attempt());
            *event->mutable_log()->mutable_chunk() = message.log_chunk().chunk();
          }
          subscription->Push(event);
        }
        break;
      }
      case v1::AgentMessage::kDraining:
        agent.draining = true;
        logging::Info("agent draining", {{"agent", agent_id}});
        break;
      case v1::AgentMessage::kRegister:
        return absl::FailedPreconditionError("register sent twice on one stream");
      default:
        return absl::InvalidArgumentError("empty agent message");
    }
    RefreshQueueMetricsLocked();
  }
  Deliver(out);
  return absl::OkStatus();
}

void WorkflowEngine::ReconcileLeasesLocked(Agent& agent, const v1::Heartbeat& heartbeat,
                                           Outbox& out) {
  if (agent.leases.empty()) return;
  absl::flat_hash_set<std::pair<uint32_t, uint32_t>> reported;
  for (const v1::AttemptRef& ref : heartbeat.running()) {
    ExecutionState* exec = FindExecutionLocked(ref.execution());
    if (exec == nullptr) continue;
    auto index = exec->task_index.find(ref.task_id());
    if (index != exec->task_index.end() && exec->tasks[index->second].attempt == ref.attempt()) {
      reported.insert({exec->slot, index->second});
    }
  }
  // A lease younger than this may be on its way to the agent still.
  const absl::Time settled = absl::Now() - 2 * options_.heartbeat_interval;
  std::vector<std::pair<uint32_t, uint32_t>> gone;
  for (const auto& lease : agent.leases) {
    const TaskSlot& task = executions_[lease.first]->tasks[lease.second];
    if (!reported.contains(lease) && task.lease_time < settled) gone.push_back(lease);
  }
  if (gone.empty()) return;
  logging::Warn("leases the agent no longer reports running were re-queued",
                {{"agent", agent.id}, {"requeued", static_cast<int64_t>(gone.size())}});
  for (const auto& [exec_slot, index] : gone) {
    LoseAttemptLocked(*executions_[exec_slot], index,
                      absl::StrCat("agent ", agent.id, " no longer reports it running"), out);
  }
  DispatchLocked(out);
}

bool WorkflowEngine::HoldsLiveLeaseLocked(const Agent& agent, const v1::AttemptRef& ref) {
  ExecutionState* exec = FindExecutionLocked(ref.execution());
  if (exec == nullptr) return false;
  auto index = exec->task_index.find(ref.task_id());
  if (index == exec->task_index.end() || !agent.leases.contains({exec->slot, index->second})) {
    return false;
  }
  const TaskSlot& task = exec->tasks[index->second];
  return task.attempt == ref.attempt() &&
         (task.state == v1::TASK_LEASED || task.state == v1::TASK_RUNNING);
}

void WorkflowEngine::SkipUnrecordedAttemptLocked(const Agent& agent, const v1::AttemptRef& ref) {
  ExecutionState* exec = FindExecutionLocked(ref.execution());
  if (exec == nullptr) return;
  auto index = exec->task_index.find(ref.task_id());
  if (index == exec->task_index.end()) return;
  TaskSlot& task = exec->tasks[index->second];
  // An attempt newer than any recorded was leased just before a crash, its
  // lease not yet durable. Its number must not be handed out again: the
  // same agent would get a second attempt it cannot tell from the first
  // (one key, one working directory) while the first is still stopping.
  // That is the only case: the very next number, of a task waiting to run
  // on a queue this agent serves, reported within a lease timeout of the
  // restart. Anything else an agent claims it was never leased, and it is
  // only told to cancel (an agent must not be able to move another's task
  // to any attempt number it likes).
  if (ref.attempt() != task.attempt + 1 || task.state != v1::TASK_READY ||
      absl::Now() - recovered_at_ > options_.lease_timeout ||
      std::find(agent.queues.begin(), agent.queues.end(), task.queue) == agent.queues.end()) {
    return;
  }
  const std::string& agent_id = agent.id;
  task.attempt = ref.attempt();
  AttemptRecord& record = task.attempts.emplace_back();
  record.attempt = ref.attempt();
  record.agent = agent_id;
  record.outcome = v1::ATTEMPT_LOST;
  record.error =
      "leased just before the orchestrator restarted, the lease not yet recorded; "
      "stopped when its agent reported it";
  record.end_time = absl::ToUnixNanos(absl::Now());
  metrics_.CountOutcome(v1::ATTEMPT_LOST);
}

void WorkflowEngine::DisconnectAgent(const std::string& agent_id, const AgentChannel* channel) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second->channel.get() != channel) return;
  it->second->channel = nullptr;
  it->second->credit = 0;
  logging::Info("agent disconnected",
                {{"agent", agent_id}, {"leases", static_cast<int64_t>(it->second->leases.size())}});
  RefreshQueueMetricsLocked();
}

void WorkflowEngine::ExpireLeases(absl::Time now) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    TickLocked();
    std::vector<std::string> dead;
    for (const auto& [id, agent] : agents_) {
      if (now - agent->last_seen > options_.lease_timeout) dead.push_back(id);
    }
    for (const std::string& id : dead) {
      Agent& agent = *agents_.at(id);
      DeclareAgentDeadLocked(agent, out);
      SetAgentQueuesLocked(agent, nullptr);
      agents_.erase(id);
    }
    if (!dead.empty()) DispatchLocked(out);
    agent_gauges_time_ = absl::InfinitePast();
    RefreshQueueMetricsLocked();
  }
  Deliver(out);
}

std::string WorkflowEngine::DispatchStallForTest() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, agent] : agents_) {
    if (agent->channel == nullptr || agent->draining || agent->credit <= 0 ||
        agent->free_slots() <= 0) {
      continue;
    }
    for (const auto& exec : executions_) {
      if (exec->final() || exec->state == v1::EXECUTION_PAUSED || exec->ready == 0) continue;
      for (const TaskSlot& task : exec->tasks) {
        if (task.state != v1::TASK_READY || std::find(agent->queues.begin(), agent->queues.end(),
                                                      task.queue) == agent->queues.end()) {
          continue;
        }
        const v1::TaskSpec& spec = *task.spec;
        bool fits = spec.resources().cpu() <= agent->free_cpu + 1e-9 &&
                    spec.resources().memory_bytes() <= agent->free_memory &&
                    spec.resources().gpus() <= agent->free_gpus;
        for (const auto& [key, value] : spec.agent_selector()) {
          auto label = agent->registration.labels().find(key);
          fits = fits && label != agent->registration.labels().end() && label->second == value;
        }
        if (!fits) continue;
        return absl::StrCat(
            exec->name(), "/tasks/", spec.id(), " is READY in queue \"", queues_[task.queue]->name,
            "\" while agent ", id, " has credit ", agent->credit, ", ", agent->free_slots(),
            " free slot(s) and room for it (", agent->leases.size(), " lease(s) held)");
      }
    }
  }
  return "";
}

void WorkflowEngine::DeclareAgentDeadLocked(Agent& agent, Outbox& out) {
  logging::Warn("agent declared dead: no message within the lease timeout",
                {{"agent", agent.id},
                 {"lease_timeout_seconds", absl::ToDoubleSeconds(options_.lease_timeout)},
                 {"requeued", static_cast<int64_t>(agent.leases.size())}});
  const std::vector<std::pair<uint32_t, uint32_t>> leases(agent.leases.begin(), agent.leases.end());
  for (const auto& [exec_slot, task] : leases) {
    LoseAttemptLocked(*executions_[exec_slot], task,
                      absl::StrCat("agent ", agent.id, " missed heartbeats"), out);
  }
  if (agent.channel != nullptr) {
    v1::OrchestratorMessage shutdown;
    shutdown.mutable_shutdown()->set_reason("declared dead after missing heartbeats");
    agent.channel->Send(std::move(shutdown));
  }
}

// --- State transitions ---

void WorkflowEngine::SetTaskStateLocked(ExecutionState& exec, uint32_t index, v1::TaskState state,
                                        Outbox& /*out*/) {
  TaskSlot& task = exec.tasks[index];
  if (task.state == state) return;
  CountTaskStateLocked(exec, index, state);

  const auto index_in_history = static_cast<uint32_t>(exec.events.size());
  exec.events.push_back(
      StoredEvent{absl::ToUnixNanos(now_), index, static_cast<uint8_t>(state), 0,
                  static_cast<uint16_t>(std::min<size_t>(task.attempts.size(), UINT16_MAX))});
  if (!task.reason.empty()) exec.event_reasons[index_in_history] = task.reason;
  PublishLocked(exec, index_in_history, /*closing=*/false);
}

namespace {

// What a stored event needs to become a gyre::v1::Event, copied under the
// engine lock so that the event itself is built without it (on the
// watcher's thread, not the engine's).
struct EventSource {
  uint32_t index = 0;
  StoredEvent stored;
  const v1::TaskSpec* spec = nullptr;  // immutable while the engine lives
  v1::Event* whole = nullptr;          // an execution-level event, copied whole
  bool has_reason = false;
  std::string reason;
  bool has_attempt = false;
  AttemptRecord attempt;  // a final state's last attempt
};

// Under the engine lock. Assigns into `source`, whose strings keep their
// buffers from one use to the next.
void CollectEvent(const ExecutionState& exec, uint32_t index, google::protobuf::Arena* arena,
                  EventSource* source) {
  const StoredEvent& stored = exec.events[index];
  source->index = index;
  source->stored = stored;
  source->whole = nullptr;
  source->has_reason = false;
  source->has_attempt = false;
  if (stored.task == StoredEvent::kExecutionLevel) {
    // A few per execution: built here, whole.
    source->whole = google::protobuf::Arena::CreateMessage<v1::Event>(arena);
    source->whole->CopyFrom(exec.whole_events.at(index));
    return;
  }
  const TaskSlot& task = exec.tasks[stored.task];
  source->spec = task.spec;
  if (auto reason = exec.event_reasons.find(index); reason != exec.event_reasons.end()) {
    source->has_reason = true;
    source->reason = reason->second;
  }
  if (IsTerminal(static_cast<v1::TaskState>(stored.state)) && stored.attempts > 0 &&
      stored.attempts <= task.attempts.size()) {
    source->has_attempt = true;
    source->attempt = task.attempts[stored.attempts - 1];
  }
}

// Needs no lock: reads only what never changes and the copies in `source`.
v1::Event* BuildEvent(const ExecutionState& exec, const EventSource& source,
                      google::protobuf::Arena* arena) {
  if (source.whole != nullptr) return source.whole;
  auto* event = google::protobuf::Arena::CreateMessage<v1::Event>(arena);
  event->set_execution(exec.name());
  event->set_sequence(static_cast<int64_t>(source.index) + 1);
  *event->mutable_time() = ToProto(absl::FromUnixNanos(source.stored.unix_nanos));
  event->set_type(v1::Event::TASK_STATE_CHANGED);
  v1::TaskRun* run = event->mutable_task_run();
  run->set_name(absl::StrCat(exec.name(), "/tasks/", source.spec->id()));
  run->set_task_id(source.spec->id());
  run->set_state(static_cast<v1::TaskState>(source.stored.state));
  if (source.has_reason) run->set_reason(source.reason);
  if (source.has_attempt) FillProto(source.attempt, run->add_attempts());
  return event;
}

}  // namespace

void WorkflowEngine::ReplayEvents(uint32_t slot, uint32_t from, uint32_t to,
                                  google::protobuf::Arena* arena, std::vector<v1::Event*>* events) {
  // Kept per thread: the watcher threads that call this reuse the sources'
  // buffers batch after batch.
  thread_local std::vector<EventSource> sources;
  const size_t count = to - from;
  if (sources.size() < count) sources.resize(count);
  const ExecutionState* exec = nullptr;
  {
    // Only copies under the lock: the engine's thread waits for no
    // event being built.
    absl::MutexLock lock(&mu_);
    exec = executions_[slot].get();
    for (size_t i = 0; i < count; ++i) {
      CollectEvent(*exec, from + static_cast<uint32_t>(i), arena, &sources[i]);
    }
  }
  events->reserve(events->size() + count);
  for (size_t i = 0; i < count; ++i) events->push_back(BuildEvent(*exec, sources[i], arena));
}

v1::Event* WorkflowEngine::BuildEventLocked(const ExecutionState& exec, uint32_t index,
                                            google::protobuf::Arena* arena) const {
  EventSource source;
  CollectEvent(exec, index, arena, &source);
  return BuildEvent(exec, source, arena);
}

void WorkflowEngine::PublishLocked(const ExecutionState& exec, uint32_t index, bool closing) {
  const std::string& name = exec.name();
  absl::InlinedVector<EventSubscription*, 4> audience;
  for (const auto& [scope, subscription] : watchers_) {
    if (scope.empty() || scope == name) audience.push_back(subscription.get());
  }
  std::shared_ptr<const v1::Event> built;
  for (EventSubscription* subscription : audience) {
    if (subscription->follows_one_execution()) {
      // Its own thread builds the event, as it does the history.
      subscription->Extend(index + 1);
    } else {
      // Built only if somebody watches, and once for all of them (a build
      // per watcher, under this lock, made many watchers stall the engine).
      if (built == nullptr) built.reset(BuildEventLocked(exec, index, nullptr));
      subscription->Push(built);
    }
  }
  if (closing) {
    for (const auto& [scope, subscription] : watchers_) {
      if (scope == name) subscription->Close();
    }
  }
  if (closing) std::erase_if(watchers_, [&](const auto& entry) { return entry.first == name; });
}

void WorkflowEngine::CountTaskStateLocked(ExecutionState& exec, uint32_t index,
                                          v1::TaskState state) {
  TaskSlot& task = exec.tasks[index];
  auto counter = [&exec](v1::TaskState s) -> int32_t* {
    switch (s) {
      case v1::TASK_PENDING:
        return &exec.pending;
      case v1::TASK_READY:
        return &exec.ready;
      case v1::TASK_LEASED:
      case v1::TASK_RUNNING:
        return &exec.running;
      case v1::TASK_SUCCEEDED:
        return &exec.succeeded;
      case v1::TASK_FAILED:
      case v1::TASK_TIMED_OUT:
        return &exec.failed;
      case v1::TASK_SKIPPED:
        return &exec.skipped;
      case v1::TASK_CANCELLED:
        return &exec.cancelled;
      default:
        return nullptr;
    }
  };
  Queue& queue = *queues_[task.queue];
  if (task.state == v1::TASK_READY) queue.queued--;
  if (state == v1::TASK_READY) queue.queued++;
  if (int32_t* from = counter(task.state)) --*from;
  if (int32_t* to = counter(state)) ++*to;
  task.state = state;
}

void WorkflowEngine::MakeReadyLocked(ExecutionState& exec, uint32_t index, Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  // Outputs flow along edges: a task sees what its ancestors wrote.
  for (uint32_t parent : task.parents) {
    const TaskSlot& from = exec.tasks[parent];
    const TaskDetails& passed = from.details_or_empty();
    if (passed.inherited.empty() && passed.outputs.empty()) continue;
    std::map<std::string, std::string>& inherited = task.mutable_details().inherited;
    for (const auto& [key, value] : passed.inherited) inherited[key] = value;
    for (const auto& [key, value] : passed.outputs) inherited[key] = value;
  }
  if (task.spec->global() && ResolveGlobalLocked(exec, index, out)) return;
  task.ready_time = now_;
  task.generation++;
  SetTaskStateLocked(exec, index, v1::TASK_READY, out);
  QueueReadyLocked(exec, index);
}

void WorkflowEngine::QueueReadyLocked(ExecutionState& exec, uint32_t index) {
  const TaskSlot& task = exec.tasks[index];
  if (exec.state == v1::EXECUTION_PAUSED) {
    exec.parked.push_back(index);
  } else {
    queues_[task.queue]->ready.Push({exec.slot, index, task.priority, task.generation});
  }
}

bool WorkflowEngine::ResolveGlobalLocked(ExecutionState& exec, uint32_t index, Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  std::map<std::string, std::string> context = exec.context;
  TaskDetails& details = task.mutable_details();
  for (const auto& [key, value] : details.inherited) context[key] = value;
  details.identity = TaskIdentity(*task.spec, context);
  const std::string name = absl::StrCat(exec.name(), "/tasks/", task.spec->id());
  auto [it, inserted] = globals_.try_emplace(details.identity);
  GlobalTask& global = it->second;
  if (inserted || global.owner == name) {
    global.owner = name;
    return false;  // this execution runs it
  }
  if (global.succeeded) {
    details.outputs = global.outputs;
    details.satisfied_by = global.owner;
    task.reason = absl::StrCat("satisfied by global task ", global.owner);
    CompleteTaskLocked(exec, index, out);
    UpdateExecutionStateLocked(exec, out);
    return true;
  }
  global.waiters.emplace_back(exec.slot, index);
  task.reason = absl::StrCat("waiting for global task ", global.owner);
  return true;
}

void WorkflowEngine::SettleGlobalLocked(ExecutionState& exec, uint32_t index, bool succeeded,
                                        Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  auto it = globals_.find(task.details_or_empty().identity);
  if (it == globals_.end() ||
      it->second.owner != absl::StrCat(exec.name(), "/tasks/", task.spec->id())) {
    return;
  }
  std::vector<std::pair<uint32_t, uint32_t>> waiters = std::move(it->second.waiters);
  it->second.waiters.clear();
  if (succeeded) {
    it->second.succeeded = true;
    it->second.outputs = task.details_or_empty().outputs;
  } else {
    globals_.erase(it);  // the next waiter to become ready runs it
  }
  for (const auto& [exec_slot, waiter] : waiters) {
    ExecutionState& other = *executions_[exec_slot];
    if (other.final() || other.tasks[waiter].state != v1::TASK_PENDING) continue;
    MakeReadyLocked(other, waiter, out);
    UpdateExecutionStateLocked(other, out);
  }
}

void WorkflowEngine::SkipDependantsLocked(ExecutionState& exec, uint32_t index,
                                          absl::string_view reason, Outbox& out) {
  std::vector<uint32_t> stack(exec.tasks[index].dependants);
  while (!stack.empty()) {
    const uint32_t next = stack.back();
    stack.pop_back();
    TaskSlot& task = exec.tasks[next];
    if (task.state != v1::TASK_PENDING) continue;
    task.reason = std::string(reason);
    task.generation++;
    SetTaskStateLocked(exec, next, v1::TASK_SKIPPED, out);
    stack.insert(stack.end(), task.dependants.begin(), task.dependants.end());
  }
}

void WorkflowEngine::CompleteTaskLocked(ExecutionState& exec, uint32_t index, Outbox& out) {
  SetTaskStateLocked(exec, index, v1::TASK_SUCCEEDED, out);
  if (exec.tasks[index].spec->global()) SettleGlobalLocked(exec, index, /*succeeded=*/true, out);
  for (uint32_t dependant : exec.tasks[index].dependants) {
    TaskSlot& next = exec.tasks[dependant];
    if (next.unmet_dependencies > 0) next.unmet_dependencies--;
    if (next.unmet_dependencies == 0 && next.state == v1::TASK_PENDING &&
        exec.state != v1::EXECUTION_CANCELLED) {
      MakeReadyLocked(exec, dependant, out);
    }
  }
}

void WorkflowEngine::FailOrRetryLocked(ExecutionState& exec, uint32_t index,
                                       v1::TaskState final_state, Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  const v1::RetryPolicy& retry = task.spec->retry();
  if (task.retries_used < retry.max_retries() && exec.state != v1::EXECUTION_CANCELLED) {
    task.retries_used++;
    RetryBackoffPolicy policy;
    if (retry.has_initial_backoff()) policy.initial = FromProto(retry.initial_backoff());
    if (retry.has_max_backoff()) policy.max = FromProto(retry.max_backoff());
    if (retry.multiplier() >= 1) policy.multiplier = retry.multiplier();
    if (retry.jitter() > 0) policy.jitter = retry.jitter();
    // Jitter drawn from the attempt's own seed: replay computes the same
    // delay (and the same reason, which watchers saw).
    std::mt19937_64 random(RetrySeed(exec.id, task.spec->id(), task.attempt));
    const absl::Duration delay = RetryDelay(policy, task.attempt + 1, random);
    // Why the attempt failed comes first: the retry's reason is what a
    // watcher sees of the failure.
    const std::string& error = task.attempts.empty() ? "" : task.attempts.back().error;
    task.reason = absl::StrCat(error, error.empty() ? "" : "; ", "retry ", task.retries_used,
                               " of ", retry.max_retries(), " in ",
                               absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1))));
    task.generation++;
    SetTaskStateLocked(exec, index, v1::TASK_PENDING, out);
    ScheduleRetryLocked(exec, index, delay);
    return;
  }
  task.reason = task.attempts.empty() || task.attempts.back().error.empty()
                    ? "failed"
                    : task.attempts.back().error;
  SetTaskStateLocked(exec, index, final_state, out);
  if (task.spec->global()) SettleGlobalLocked(exec, index, /*succeeded=*/false, out);
  SkipDependantsLocked(exec, index, absl::StrCat("dependency \"", task.spec->id(), "\" failed"),
                       out);
}

void WorkflowEngine::ScheduleRetryLocked(ExecutionState& exec, uint32_t index,
                                         absl::Duration delay) {
  const uint32_t exec_slot = exec.slot;
  const uint16_t generation = exec.tasks[index].generation;
  // Until it is ready again, ready_time is when the retry is due (kept in
  // snapshots, so that a restart keeps the backoff). In replay it counts
  // from the failure's record, so the timer waits only what is left.
  exec.tasks[index].ready_time = now_ + delay;
  const absl::Duration left =
      std::max(absl::ZeroDuration(), exec.tasks[index].ready_time - absl::Now());
  timers_.ScheduleAfter(left, [this, exec_slot, index, generation] {
    Outbox out;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      TickLocked();
      ExecutionState& exec = *executions_[exec_slot];
      TaskSlot& task = exec.tasks[index];
      if (task.generation != generation || task.state != v1::TASK_PENDING) return;
      RetryDueLocked(exec, index, out);
      DispatchLocked(out);
    }
    Deliver(out);
  });
}

void WorkflowEngine::RetryDueLocked(ExecutionState& exec, uint32_t index, Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  task.reason.clear();
  MakeReadyLocked(exec, index, out);
  v1::StateRecord record;
  v1::TaskRetryDue& due = *record.mutable_task_retry_due();
  due.set_execution_id(exec.id);
  due.set_task_id(task.spec->id());
  due.set_attempt(task.attempt);
  PersistLocked(record);
}

void WorkflowEngine::RequeueLocked(ExecutionState& exec, uint32_t index, Outbox& out) {
  if (exec.final()) return;
  exec.tasks[index].reason = "re-queued: its agent was lost";
  MakeReadyLocked(exec, index, out);
}

void WorkflowEngine::UpdateExecutionStateLocked(ExecutionState& exec, Outbox& out) {
  if (exec.final()) return;
  if (exec.pending + exec.ready + exec.running == 0) {
    exec.end_time = now_;
    if (exec.failed > 0) {
      exec.reason = absl::StrCat(exec.failed, " task(s) failed");
      SetExecutionStateLocked(exec, v1::EXECUTION_FAILED, out);
    } else {
      SetExecutionStateLocked(exec, v1::EXECUTION_SUCCEEDED, out);
    }
    return;
  }
  if (exec.state == v1::EXECUTION_PENDING && exec.running > 0) {
    exec.start_time = now_;
    SetExecutionStateLocked(exec, v1::EXECUTION_RUNNING, out);
  }
}

void WorkflowEngine::SetExecutionStateLocked(ExecutionState& exec, v1::ExecutionState state,
                                             Outbox& out) {
  if (exec.state == state) return;
  CountExecutionLocked(exec.state, state);
  exec.state = state;
  if (exec.final() && exec.end_time == absl::InfinitePast()) exec.end_time = now_;
  v1::Event event;
  event.set_type(v1::Event::EXECUTION_STATE_CHANGED);
  EmitLocked(exec, std::move(event), out);
  if (exec.final()) {
    out.ended.push_back({exec.name(), state, exec.succeeded, exec.failed, exec.skipped});
  }
}

void WorkflowEngine::EmitLocked(ExecutionState& exec, v1::Event event, Outbox& /*out*/) {
  const auto index = static_cast<uint32_t>(exec.events.size());
  const absl::Time now = now_;
  event.set_execution(exec.name());
  event.set_sequence(static_cast<int64_t>(index) + 1);
  *event.mutable_time() = ToProto(now);
  *event.mutable_execution_snapshot() = ExecutionProtoLocked(exec);
  const bool closing = exec.final() && event.type() == v1::Event::EXECUTION_STATE_CHANGED;
  exec.events.push_back(StoredEvent{absl::ToUnixNanos(now)});
  exec.whole_events.emplace(index, std::move(event));
  PublishLocked(exec, index, closing);
}

// --- Dispatch and leases ---

void WorkflowEngine::DispatchLocked(Outbox& out) {
  // Agents are visited only while a task waits: with 10,000 agents, a visit
  // of each after every result was most of the engine's time (issue 27).
  auto any_ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::any_of(queues_.begin(), queues_.end(),
                       [](const auto& queue) { return queue != nullptr && !queue->ready.empty(); });
  };
  bool waiting = any_ready();
  for (auto& [id, agent] : agents_) {
    if (!waiting) break;
    if (agent->channel == nullptr || agent->credit <= 0 || agent->draining) continue;
    const auto credit = agent->credit;
    DispatchToAgentLocked(*agent, out);
    if (agent->credit != credit) waiting = any_ready();  // it took some
  }
  // Every change that can move a backlog ends in a dispatch pass, so the
  // autoscaling signal is refreshed here (a few gauges per queue).
  RefreshQueueMetricsLocked();
}

namespace {
// An assignment's fields besides its command line and environment, and the
// message framing, generously (ids are added apart).
constexpr size_t kAssignmentOverheadBytes = 256;
}  // namespace

void WorkflowEngine::DispatchToAgentLocked(Agent& agent, Outbox& out) {
  if (agent.channel == nullptr || agent.draining) return;
  v1::OrchestratorMessage message;
  v1::Assignment* assignment = message.mutable_assignment();
  // Both reused across dispatches: growing fresh ones each time made glibc
  // consolidate its free lists on every larger allocation.
  std::vector<ReadyTask> taken = std::move(dispatch_scratch_);
  // Records are reused whole: their strings keep their buffers, so filling
  // one in allocates nothing.
  std::vector<v1::StateRecord> lease_records = std::move(lease_scratch_);
  size_t leases = 0;
  size_t message_bytes = 0;  // estimated, of the assignment being filled
  for (uint32_t queue_index : agent.queues) {
    const int64_t room = std::min<int64_t>(agent.credit, agent.free_slots());
    if (room <= 0) break;
    taken.clear();
    queues_[queue_index]->ready.PopMatching(
        static_cast<size_t>(room), kDispatchScanLimit,
        [&](const ReadyTask& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          if (entry.execution >= executions_.size()) return ReadyVerdict::kDrop;
          ExecutionState& exec = *executions_[entry.execution];
          TaskSlot& task = exec.tasks[entry.task];
          if (task.generation != entry.generation || task.state != v1::TASK_READY) {
            return ReadyVerdict::kDrop;
          }
          if (exec.state == v1::EXECUTION_PAUSED) {
            exec.parked.push_back(entry.task);
            return ReadyVerdict::kDrop;
          }
          const v1::TaskSpec& spec = *task.spec;
          for (const auto& [key, value] : spec.agent_selector()) {
            auto label = agent.registration.labels().find(key);
            if (label == agent.registration.labels().end() || label->second != value) {
              return ReadyVerdict::kSkip;
            }
          }
          if (spec.resources().cpu() > agent.free_cpu + 1e-9 ||
              spec.resources().memory_bytes() > agent.free_memory ||
              spec.resources().gpus() > agent.free_gpus) {
            return ReadyVerdict::kSkip;
          }
          // Reserve now so the next candidate sees what is left.
          agent.free_cpu -= spec.resources().cpu();
          agent.free_memory -= spec.resources().memory_bytes();
          agent.free_gpus -= spec.resources().gpus();
          return ReadyVerdict::kTake;
        },
        &taken);
    for (const ReadyTask& entry : taken) {
      ExecutionState& exec = *executions_[entry.execution];
      TaskSlot& task = exec.tasks[entry.task];
      LeaseLocked(exec, entry.task, agent.id, task.attempt + 1);
      AttemptRecord& attempt = task.attempts.back();

      v1::TaskAssignment* assigned = assignment->add_tasks();
      size_t task_bytes = 0;  // its command line and environment
      assigned->mutable_ref()->set_execution(exec.name());
      assigned->mutable_ref()->set_task_id(task.spec->id());
      assigned->mutable_ref()->set_attempt(task.attempt);
      // The execution's context, with what ancestors passed along edges on
      // top (copied only when there is such a thing). A builtin task runs
      // no process: it gets neither command line nor environment.
      const bool builtin = task.spec->builtin().kind() != v1::BuiltinExecutor::KIND_UNSPECIFIED;
      absl::Status built;
      if (!builtin) {
        const std::map<std::string, std::string>& inherited = task.details_or_empty().inherited;
        std::map<std::string, std::string> merged;
        if (!inherited.empty()) {
          merged = exec.context;
          for (const auto& [key, value] : inherited) merged[key] = value;
        }
        built = BuildTaskEnvironment(*task.spec, inherited.empty() ? exec.context : merged,
                                     exec.builtins, task.attempt, exec.declared.get(), assigned);
        // Outputs merged in at run time can take it past what exec takes.
        if (built.ok()) built = CheckExecSize(*assigned, &task_bytes);
      }
      if (!built.ok()) {
        // A definition that cannot be expanded, or a task that could not be
        // exec'd, fails without running (and without retries: it would
        // fail the same way).
        assignment->mutable_tasks()->RemoveLast();
        agent.free_cpu += task.spec->resources().cpu();
        agent.free_memory += task.spec->resources().memory_bytes();
        agent.free_gpus += task.spec->resources().gpus();
        // The leases taken so far go to the log first: records keep the
        // order of the events.
        if (leases > 0) PersistLocked(absl::MakeSpan(lease_records.data(), leases), nullptr);
        leases = 0;
        FailNotStartedLocked(exec, entry.task, agent.id, attempt.attempt,
                             std::string(built.message()), out);
        continue;
      }
      if (builtin) *assigned->mutable_builtin() = task.spec->builtin();
      if (task.spec->has_timeout()) *assigned->mutable_timeout() = task.spec->timeout();
      if (task.spec->has_resources()) *assigned->mutable_resources() = task.spec->resources();
      assigned->set_evaluator(task.spec->evaluator());
      // One message stays under what the agent accepts: a batch whose
      // tasks carry large environments goes out in several messages.
      // Counted from the exec sizes above (plus room for the ids and small
      // fields), not by serializing.
      task_bytes += kAssignmentOverheadBytes + exec.name().size() + task.spec->id().size();
      if (message_bytes + task_bytes > limits::kMaxAssignmentMessageBytes &&
          assignment->tasks_size() > 1) {
        v1::TaskAssignment* last = assignment->mutable_tasks()->ReleaseLast();
        agent.channel->Send(std::move(message));
        message = v1::OrchestratorMessage();
        assignment = message.mutable_assignment();
        assignment->mutable_tasks()->AddAllocated(last);
        message_bytes = 0;
      }
      message_bytes += task_bytes;
      agent.credit--;
      agent.leases.insert({entry.execution, entry.task});
      queues_[task.queue]->running++;
      if (leases == lease_records.size()) lease_records.emplace_back();
      v1::TaskLeased& leased = *lease_records[leases++].mutable_task_leased();
      leased.set_execution_id(exec.id);
      leased.set_task_id(task.spec->id());
      leased.set_attempt(task.attempt);
      leased.set_agent_id(agent.id);
      metrics_.ObserveLeaseLatency(absl::ToDoubleSeconds(task.lease_time - task.ready_time));
      SetTaskStateLocked(exec, entry.task, v1::TASK_LEASED, out);
      UpdateExecutionStateLocked(exec, out);
    }
  }
  // One append for the batch: the leases are the only records of this
  // dispatch, so their order among the engine's records is unchanged.
  if (leases > 0) PersistLocked(absl::MakeSpan(lease_records.data(), leases), nullptr);
  taken.clear();
  dispatch_scratch_ = std::move(taken);
  lease_scratch_ = std::move(lease_records);
  if (assignment->tasks_size() > 0) agent.channel->Send(std::move(message));
}

void WorkflowEngine::LeaseLocked(ExecutionState& exec, uint32_t index, const std::string& agent_id,
                                 int64_t attempt) {
  TaskSlot& task = exec.tasks[index];
  // Queued entries and pending retry timers of this task go stale.
  task.generation++;
  task.attempt = attempt;
  task.agent = agent_id;
  task.lease_time = now_;
  // Why it waited ("re-queued: ...") no longer applies; its event keeps it.
  task.reason.clear();
  AttemptRecord& record = task.attempts.emplace_back();
  record.attempt = attempt;
  record.agent = agent_id;
  record.lease_time = absl::ToUnixNanos(task.lease_time);
}

void WorkflowEngine::ReleaseLeaseLocked(ExecutionState& exec, uint32_t index) {
  TaskSlot& task = exec.tasks[index];
  auto agent = agents_.find(task.agent);
  if (agent != agents_.end() && agent->second->leases.erase({exec.slot, index}) > 0) {
    const v1::Resources& need = task.spec->resources();
    agent->second->free_cpu += need.cpu();
    agent->second->free_memory += need.memory_bytes();
    agent->second->free_gpus += need.gpus();
    queues_[task.queue]->running--;
  }
  task.agent.clear();
}

bool WorkflowEngine::HandleResultLocked(const std::string& agent_id, const v1::TaskResult& result,
                                        ParsedOutput& parsed, v1::TaskResultRecorded* record,
                                        Outbox& out) {
  const v1::AttemptRef& ref = result.ref();
  ExecutionState* exec = FindExecutionLocked(ref.execution());
  if (exec == nullptr || !exec->task_index.contains(ref.task_id())) {
    logging::Warn("result for an unknown task rejected",
                  {{"agent", agent_id}, {"execution", ref.execution()}, {"task", ref.task_id()}});
    return false;
  }
  const auto index = exec->task_index.find(ref.task_id());
  TaskSlot& task = exec->tasks[index->second];
  // The attempt number is the fencing token: only the current lease holder
  // may report, and only once.
  const bool current = task.attempt == ref.attempt() && task.agent == agent_id;
  if (!current || (task.state != v1::TASK_LEASED && task.state != v1::TASK_RUNNING &&
                   task.state != v1::TASK_CANCELLED)) {
    // Sent again after a reconnect because its acknowledgement was lost:
    // nothing is wrong, and nothing changes.
    const bool recorded =
        std::any_of(task.attempts.begin(), task.attempts.end(), [&](const AttemptRecord& attempt) {
          return attempt.attempt == ref.attempt() && attempt.agent == agent_id &&
                 attempt.outcome != v1::ATTEMPT_OUTCOME_UNSPECIFIED &&
                 attempt.outcome != v1::ATTEMPT_LOST;
        });
    if (recorded) {
      logging::Debug("result already recorded; the copy is ignored",
                     {{"agent", agent_id},
                      {"execution", ref.execution()},
                      {"task", ref.task_id()},
                      {"attempt", ref.attempt()}});
      return false;
    }
    logging::Warn("stale result rejected", {{"agent", agent_id},
                                            {"execution", ref.execution()},
                                            {"task", ref.task_id()},
                                            {"attempt", ref.attempt()},
                                            {"current_attempt", task.attempt}});
    return false;
  }
  AttemptRecord& attempt = task.attempts.back();
  attempt.outcome = result.outcome();
  attempt.exit_code = result.exit_code();
  attempt.signal = result.signal();
  attempt.wall_time = absl::ToInt64Nanoseconds(FromProto(result.wall_time()));
  attempt.cpu_time = absl::ToInt64Nanoseconds(FromProto(result.cpu_time()));
  attempt.peak_rss_bytes = result.peak_rss_bytes();
  attempt.error = result.error();
  attempt.stdout_bytes = result.stdout_bytes();
  attempt.stderr_bytes = result.stderr_bytes();
  attempt.end_time = absl::ToUnixNanos(now_);
  if (!result.stdout_tail().empty() || !result.stderr_tail().empty()) {
    AttemptLogs& logs = task.mutable_details().logs[task.attempt];
    logs.stdout_tail = result.stdout_tail();
    logs.stderr_tail = result.stderr_tail();
    logs.truncated = result.stdout_bytes() > static_cast<int64_t>(result.stdout_tail().size()) ||
                     result.stderr_bytes() > static_cast<int64_t>(result.stderr_tail().size());
  }
  ReleaseLeaseLocked(*exec, index->second);
  metrics_.CountOutcome(result.outcome());
  metrics_.ObserveRunDuration(absl::ToDoubleSeconds(FromProto(result.wall_time())));
  if (task.state == v1::TASK_CANCELLED) return true;  // cancelled while running

  switch (result.outcome()) {
    case v1::ATTEMPT_SUCCEEDED: {
      if (task.spec->evaluator()) {
        std::string refused = ApplyEvaluatorDecisionLocked(
            *exec, index->second, result.output_json().empty(), parsed, out);
        if (record != nullptr) {
          if (refused.empty()) {
            record->mutable_decision()->Swap(&parsed.decision);  // applied; not needed here
          } else {
            record->set_output_error(std::move(refused));
          }
        }
        break;
      }
      // Only what the task declares passes on (checked live; a replay
      // takes the verdict recorded with the result).
      if (!replaying_ && parsed.outputs_error.empty()) {
        absl::Status declared = workflow::CheckOutputsDeclared(
            *task.spec, parsed.outputs, exec->declared->passthrough(), "$GYRE_OUTPUT");
        if (!declared.ok()) {
          parsed.outputs_error = std::string(declared.message());
          // The task's code wrote it: running it again would do the same.
          parsed.outputs_error_final = true;
        }
      }
      if (!parsed.outputs_error.empty()) {
        attempt.outcome = v1::ATTEMPT_FAILED;
        attempt.error = parsed.outputs_error;
        if (parsed.outputs_error_final) task.retries_used = task.spec->retry().max_retries();
        if (record != nullptr) {
          record->set_output_error(parsed.outputs_error);
          record->set_output_error_final(parsed.outputs_error_final);
        }
        FailOrRetryLocked(*exec, index->second, v1::TASK_FAILED, out);
        break;
      }
      if (!parsed.outputs.empty()) {
        if (record != nullptr) {
          record->mutable_outputs()->insert(parsed.outputs.begin(), parsed.outputs.end());
        }
        task.mutable_details().outputs = std::move(parsed.outputs);
      }
      CompleteTaskLocked(*exec, index->second, out);
      break;
    }
    case v1::ATTEMPT_TIMED_OUT:
      FailOrRetryLocked(*exec, index->second, v1::TASK_TIMED_OUT, out);
      break;
    case v1::ATTEMPT_CANCELLED:
    case v1::ATTEMPT_FAILED:
    default:
      FailOrRetryLocked(*exec, index->second, v1::TASK_FAILED, out);
      break;
  }
  UpdateExecutionStateLocked(*exec, out);
  return true;
}

std::string WorkflowEngine::ApplyEvaluatorDecisionLocked(ExecutionState& exec, uint32_t index,
                                                         bool empty_output, ParsedOutput& parsed,
                                                         Outbox& out) {
  TaskSlot& task = exec.tasks[index];
  // Parsed and checked for shape and context keys outside the lock
  // (ParseTaskOutput), or read back from the record with its verdict then.
  std::string refused = parsed.decision_error;
  if (refused.empty() && empty_output && !parsed.recorded) {
    refused = "evaluator output: empty (print a JSON decision or write it to $GYRE_OUTPUT)";
  }
  // Keys its decision passes on must be declared, and so must those a child
  // is given (checked live; a replay takes the verdict recorded with the
  // result). A child's are checked again when it starts; here, so that the
  // evaluator fails rather than the child silently not starting.
  if (refused.empty() && !replaying_) {
    absl::Status status = workflow::CheckOutputsDeclared(
        *task.spec, parsed.decision.context(), exec.declared->passthrough(), "evaluator output");
    for (int i = 0; status.ok() && i < parsed.decision.start_size(); ++i) {
      const std::string& named = parsed.decision.start(i).workflow();
      auto child =
          workflows_.find(absl::StartsWith(named, "workflows/") ? named : "workflows/" + named);
      // An unknown workflow is refused with the other child checks below.
      if (child == workflows_.end() || child->second.empty()) continue;
      const workflow::DeclaredContext child_declared(*child->second.back());
      status = workflow::CheckStartContextDeclared(
          parsed.decision.start(i).context(), child_declared, child->first, exec.declared.get());
      if (!status.ok()) {
        status = absl::InvalidArgumentError(absl::StrCat("evaluator output: ", status.message()));
      }
    }
    if (!status.ok()) refused = std::string(status.message());
  }
  const v1::EvaluatorDecision& decision = parsed.decision;
  if (refused.empty()) {
    // Tasks an evaluator may decide about: its transitive dependants.
    absl::flat_hash_set<uint32_t> downstream;
    std::vector<uint32_t> stack(task.dependants);
    while (!stack.empty()) {
      const uint32_t next = stack.back();
      stack.pop_back();
      if (!downstream.insert(next).second) continue;
      stack.insert(stack.end(), exec.tasks[next].dependants.begin(),
                   exec.tasks[next].dependants.end());
    }
    auto check = [&](const std::string& id) -> std::string {
      auto it = exec.task_index.find(id);
      if (it != exec.task_index.end() && downstream.contains(it->second)) return "";
      std::vector<std::string> names;
      // DidYouMean compares few of them: ids are at most 128 bytes and
      // only names of a close length are compared.
      for (uint32_t d : downstream) names.push_back(exec.tasks[d].spec->id());
      return absl::StrCat("evaluator output: task ", QuoteClientText(id),
                          " is not downstream of evaluator \"", task.spec->id(), "\"",
                          DidYouMean(id, names));
    };
    // Linear in the decision's length: a hash set, not a search of "run"
    // for every skipped id.
    absl::flat_hash_set<absl::string_view> run(decision.run().begin(), decision.run().end());
    for (const std::string& id : decision.run()) {
      if (refused = check(id); !refused.empty()) break;
    }
    for (int i = 0; refused.empty() && i < decision.skip_size(); ++i) {
      const std::string& id = decision.skip(i);
      if (refused = check(id); !refused.empty()) break;
      if (run.contains(id)) {
        refused = absl::StrCat("evaluator output: task ", QuoteClientText(id),
                               " is both run and skipped");
      }
    }
    // The limits on children are today's rules; a replay keeps what was
    // accepted then (and a refusal was recorded with the result).
    if (refused.empty() && !replaying_ && decision.start_size() > 0) {
      refused = CheckChildStartsLocked(exec, decision);
    }
  }
  if (!refused.empty()) {
    task.attempts.back().outcome = v1::ATTEMPT_FAILED;
    task.attempts.back().error = refused;
    task.retries_used = task.spec->retry().max_retries();  // a bad decision is not transient
    FailOrRetryLocked(exec, index, v1::TASK_FAILED, out);
    return refused;
  }
  for (const auto& [key, value] : decision.context()) task.mutable_details().outputs[key] = value;
  for (const std::string& id : decision.skip()) {
    const uint32_t skipped = exec.task_index.at(id);
    TaskSlot& slot = exec.tasks[skipped];
    if (slot.state != v1::TASK_PENDING) continue;
    slot.reason = absl::StrCat("skipped by evaluator \"", task.spec->id(), "\"");
    slot.generation++;
    SetTaskStateLocked(exec, skipped, v1::TASK_SKIPPED, out);
    SkipDependantsLocked(exec, skipped, slot.reason, out);
  }
  for (int i = 0; i < decision.start_size(); ++i) {
    const auto& start = decision.start(i);
    v1::StartExecutionRequest child;
    child.set_workflow(start.workflow());
    child.set_parent(exec.name());
    for (const auto& [key, value] : task.details_or_empty().outputs) {
      (*child.mutable_context())[key] = value;
    }
    for (const auto& [key, value] : start.context()) (*child.mutable_context())[key] = value;
    // Deterministic, so that starting it again after a crash is a no-op
    // when the first start was recorded.
    // Task ids may be long; the task's index keeps this under 128 bytes.
    child.set_request_id(absl::StrCat("child/", exec.id, "/", index, "/", task.attempt, "/", i));
    pending_children_[child.request_id()] = child;
    out.child_starts.push_back(std::move(child));
  }
  exec.children_started += static_cast<uint32_t>(decision.start_size());
  CompleteTaskLocked(exec, index, out);
  return "";
}

std::string WorkflowEngine::CheckChildStartsLocked(const ExecutionState& exec,
                                                   const v1::EvaluatorDecision& decision) {
  // The depth of `exec`: how many parents up to an execution without one.
  // Walks at most kMaxChildDepth links, whatever the history holds.
  int depth = 0;
  for (const ExecutionState* at = &exec; !at->parent.empty() && depth <= kMaxChildDepth;) {
    at = FindExecutionLocked(at->parent);
    if (at == nullptr) break;
    ++depth;
  }
  if (depth + 1 > kMaxChildDepth) {
    return absl::StrCat("evaluator output: cannot start child workflows from ", exec.name(),
                        ", which is already ", depth,
                        " levels below a top-level execution (children of children... at most ",
                        kMaxChildDepth, " deep)");
  }
  const uint32_t wanted = static_cast<uint32_t>(decision.start_size());
  if (exec.children_started + wanted > kMaxChildrenPerExecution) {
    return absl::StrCat("evaluator output: starting ", wanted, " more child workflows from ",
                        exec.name(), " would make ", exec.children_started + wanted,
                        "; one execution starts at most ", kMaxChildrenPerExecution);
  }
  for (int i = 0; i < decision.start_size(); ++i) {
    v1::StartExecutionRequest probe;
    probe.set_workflow(decision.start(i).workflow());
    absl::StatusOr<std::shared_ptr<const v1::WorkflowDefinition>> found =
        ResolveDefinitionLocked(probe);
    if (!found.ok()) {
      return absl::StrCat("evaluator output: start[", i, "]: ", found.status().message());
    }
  }
  return "";
}

void WorkflowEngine::RefreshQueueMetricsLocked() {
  // Summing over every agent after every agent message cost O(agents) each
  // (10,000 at the seeds' scale): past 1,000 agents, at most every 100 ms
  // here and at every lease tick (ExpireLeases), so the gauges trail by at
  // most that. Exact counts kept as agents change would remove this.
  const absl::Time now = absl::Now();
  if (agents_.size() <= 1000 || now - agent_gauges_time_ >= absl::Milliseconds(100)) {
    agent_gauges_time_ = now;
    int64_t connected = 0;
    int64_t free_slots = 0;
    for (const auto& [id, agent] : agents_) {
      if (agent->channel == nullptr) continue;
      connected++;
      free_slots += agent->free_slots();
    }
    metrics_.SetAgents(connected, free_slots);
  }
  for (const auto& queue : queues_) {
    if (queue == nullptr) continue;
    auto pool = options_.worker_pools.find(queue->name);
    if (queue->agents == 0 && queue->queued == 0 && queue->running == 0 &&
        pool == options_.worker_pools.end()) {
      // Nobody serves it and nothing waits in it: no series (absent reads
      // as zero) and no storage, until a task or an agent comes.
      if (queue->exported) {
        metrics_.RemoveQueue(queue->name);
        queue->exported = false;
        queue->ready.Release();
      }
      continue;
    }
    const WorkerPoolPolicy& policy =
        pool != options_.worker_pools.end() ? pool->second : options_.default_worker_pool;
    metrics_.SetQueue(queue->name, queue->queued, queue->running,
                      DesiredWorkers(queue->queued, queue->running, policy));
    queue->exported = true;
  }
}

// --- Views ---

v1::Execution WorkflowEngine::ExecutionProtoLocked(const ExecutionState& exec,
                                                   bool with_context) const {
  v1::Execution proto;
  proto.set_name(exec.name());
  proto.set_workflow(exec.definition->name());
  proto.set_workflow_version(exec.definition->version());
  proto.set_state(exec.state);
  if (with_context) {
    for (const auto& [key, value] : exec.context) (*proto.mutable_context())[key] = value;
  }
  proto.set_parent(exec.parent);
  for (const std::string& target : exec.targets) proto.add_targets(target);
  v1::TaskCounts* counts = proto.mutable_task_counts();
  counts->set_pending(exec.pending);
  counts->set_ready(exec.ready);
  counts->set_running(exec.running);
  counts->set_succeeded(exec.succeeded);
  counts->set_failed(exec.failed);
  counts->set_skipped(exec.skipped);
  counts->set_cancelled(exec.cancelled);
  counts->set_total(exec.total);
  proto.set_priority(exec.priority);
  *proto.mutable_create_time() = ToProto(exec.create_time);
  if (exec.start_time != absl::InfinitePast())
    *proto.mutable_start_time() = ToProto(exec.start_time);
  if (exec.end_time != absl::InfinitePast()) *proto.mutable_end_time() = ToProto(exec.end_time);
  proto.set_reason(exec.reason);
  proto.set_last_sequence(static_cast<int64_t>(exec.events.size()));
  return proto;
}

v1::TaskRun WorkflowEngine::TaskRunProtoLocked(const ExecutionState& exec, uint32_t index,
                                               bool with_history) const {
  const TaskSlot& task = exec.tasks[index];
  v1::TaskRun run;
  run.set_name(absl::StrCat(exec.name(), "/tasks/", task.spec->id()));
  run.set_task_id(task.spec->id());
  run.set_state(task.state);
  run.set_priority(task.priority);
  run.set_queue(queues_[task.queue]->name);
  run.set_reason(task.reason);
  const TaskDetails& details = task.details_or_empty();
  run.set_identity(details.identity);
  run.set_satisfied_by(details.satisfied_by);
  if (task.ready_time != absl::Time()) *run.mutable_ready_time() = ToProto(task.ready_time);
  for (const auto& [key, value] : details.outputs) {
    (*run.mutable_outputs()->mutable_fields())[key].set_string_value(value);
  }
  if (with_history) {
    for (const AttemptRecord& attempt : task.attempts) *run.add_attempts() = ToProto(attempt);
  }
  return run;
}

void WorkflowEngine::Deliver(Outbox& out) {
  for (const Outbox::Ended& ended : out.ended) {
    logging::Info("execution ended", {{"execution", ended.execution},
                                      {"state", v1::ExecutionState_Name(ended.state)},
                                      {"succeeded", ended.succeeded},
                                      {"failed", ended.failed},
                                      {"skipped", ended.skipped}});
  }
  for (const v1::StartExecutionRequest& child : out.child_starts) {
    absl::StatusOr<v1::Execution> started = StartExecution(child);
    if (!started.ok()) {
      absl::MutexLock lock(&mu_);
      pending_children_.erase(child.request_id());  // not transient: do not retry at restart
      logging::Error("evaluator could not start a child workflow",
                     {{"parent", child.parent()},
                      {"workflow", child.workflow()},
                      {"error", std::string(started.status().message())}});
    }
  }
}

}  // namespace gyre::orchestrator
