#include "services/gateway/execution_feed.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/gateway/json_body.h"

namespace gyre::gateway {

namespace {

// The WebSocket message type of an event (docs/api.md lists them).
absl::string_view MessageType(const v1::Event& event) {
  switch (event.type()) {
    case v1::Event::EXECUTION_CREATED:
    case v1::Event::EXECUTION_STATE_CHANGED:
      switch (event.execution_snapshot().state()) {
        case v1::EXECUTION_PAUSED:
          return "checkpoint.created";
        case v1::EXECUTION_FAILED:
          return "error.occurred";
        default:
          return "workflow.status_changed";
      }
    case v1::Event::TASK_STATE_CHANGED:
      switch (event.task_run().state()) {
        case v1::TASK_LEASED:
          return "agent.assigned";
        case v1::TASK_RUNNING:
          return "task.started";
        case v1::TASK_SUCCEEDED:
          return "task.completed";
        case v1::TASK_FAILED:
        case v1::TASK_TIMED_OUT:
          return "task.failed";
        default:
          return "task.status_changed";
      }
    case v1::Event::TASK_LOG:
      return "task.log";
    default:
      return "event";
  }
}

absl::string_view IdOf(absl::string_view name) {
  const size_t slash = name.rfind('/');
  return slash == absl::string_view::npos ? name : name.substr(slash + 1);
}

}  // namespace

std::string EncodeEventMessage(const v1::Event& event, absl::string_view workflow_id) {
  const absl::Time time =
      absl::FromUnixSeconds(event.time().seconds()) + absl::Nanoseconds(event.time().nanos());
  std::string data = "null";
  if (event.has_execution_snapshot()) {
    data = ToJson(event.execution_snapshot());
    if (!event.execution_snapshot().workflow().empty()) {
      workflow_id = IdOf(event.execution_snapshot().workflow());
    }
  } else if (event.has_task_run()) {
    data = ToJson(event.task_run());
  } else if (event.has_log()) {
    data = ToJson(event.log());
  }
  return absl::StrCat(
      "{\"type\":\"", MessageType(event), "\",\"workflow_id\":", JsonString(workflow_id),
      ",\"execution_id\":", JsonString(IdOf(event.execution())), ",\"sequence\":", event.sequence(),
      ",\"timestamp\":\"", absl::FormatTime(absl::RFC3339_full, time, absl::UTCTimeZone()),
      "\",\"data\":", data, "}");
}

// The upstream WatchBatches stream. Owned jointly by the feed and itself
// (until OnDone), so the feed may cancel it at any time.
class ExecutionFeed::Upstream : public grpc::ClientReadReactor<v1::EventBatch> {
 public:
  explicit Upstream(std::weak_ptr<ExecutionFeed> feed) : feed_(std::move(feed)) {}

  void Start(v1::OrchestratorService::Stub* stub, const std::string& execution,
             std::shared_ptr<Upstream> self) {
    self_ = std::move(self);
    request_.set_execution(execution);
    request_.set_from_sequence(1);
    stub->async()->WatchBatches(&context_, &request_, this);
    StartRead(&batch_);
    StartCall();
  }

  void Cancel() {
    absl::MutexLock lock(&mu_);
    if (!done_) context_.TryCancel();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    std::shared_ptr<ExecutionFeed> feed = feed_.lock();
    if (feed == nullptr) {
      Cancel();
      return;
    }
    feed->Append(batch_);
    batch_.Clear();
    StartRead(&batch_);
  }

  void OnDone(const grpc::Status& status) override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    if (std::shared_ptr<ExecutionFeed> feed = feed_.lock()) {
      if (status.ok()) {
        feed->End(1000, "execution finished");
      } else {
        feed->End(1011, absl::StrCat("the orchestrator's event stream ended: ",
                                     status.error_message(), "; reconnect with since"));
      }
    }
    self_.reset();  // may delete this: nothing after it
  }

 private:
  std::weak_ptr<ExecutionFeed> feed_;
  std::shared_ptr<Upstream> self_;
  grpc::ClientContext context_;
  v1::WatchRequest request_;
  v1::EventBatch batch_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

ExecutionFeed::ExecutionFeed(v1::OrchestratorService::Stub* stub, std::string execution,
                             std::string workflow_id, std::weak_ptr<FinishedFeeds> finished)
    : stub_(stub),
      execution_(std::move(execution)),
      workflow_id_(std::move(workflow_id)),
      finished_(std::move(finished)) {}

ExecutionFeed::~ExecutionFeed() {
  if (upstream_holder_ != nullptr) upstream_holder_->Cancel();
}

void ExecutionFeed::Start() {
  upstream_holder_ = std::make_shared<Upstream>(weak_from_this());
  upstream_holder_->Start(stub_, execution_, upstream_holder_);
}

bool ExecutionFeed::failed() const {
  absl::MutexLock lock(&mu_);
  return ended_ && close_code_ != 1000;
}

int64_t ExecutionFeed::Subscribe(std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_subscriber_++;
  wakes_.emplace(id, std::move(wake));
  return id;
}

void ExecutionFeed::Unsubscribe(int64_t id) {
  absl::MutexLock lock(&mu_);
  wakes_.erase(id);
}

ExecutionFeed::Chunk ExecutionFeed::Read(int64_t from, size_t max) const {
  Chunk chunk;
  absl::MutexLock lock(&mu_);
  chunk.head = static_cast<int64_t>(frames_.size());
  for (int64_t i = std::max<int64_t>(0, from); i < chunk.head && chunk.frames.size() < max; ++i) {
    chunk.frames.push_back(frames_[i]);
  }
  chunk.ended = ended_;
  chunk.close_code = close_code_;
  chunk.close_reason = close_reason_;
  return chunk;
}

void ExecutionFeed::Append(const v1::EventBatch& batch) {
  // Encoded outside the lock: once per event, whatever the subscribers.
  std::vector<Frame> encoded;
  encoded.reserve(batch.events_size());
  for (const v1::Event& event : batch.events()) {
    if (event.sequence() <= 0) continue;  // live-only log chunks are not asked for
    encoded.push_back(std::make_shared<const std::string>(EncodeEventMessage(event, workflow_id_)));
  }
  {
    absl::MutexLock lock(&mu_);
    for (Frame& frame : encoded) {
      bytes_ += frame->size();
      frames_.push_back(std::move(frame));
    }
  }
  WakeAll();
}

void ExecutionFeed::End(int close_code, std::string reason) {
  size_t bytes = 0;
  {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    close_code_ = close_code;
    close_reason_ = std::move(reason);
    bytes = bytes_;
  }
  WakeAll();
  // Complete and final: worth keeping for the next subscribers. (Called
  // by the upstream stream, which holds the feed.)
  if (close_code == 1000) {
    if (std::shared_ptr<FinishedFeeds> finished = finished_.lock()) {
      finished->Keep(shared_from_this(), bytes);
    }
  }
}

void FinishedFeeds::Keep(std::shared_ptr<ExecutionFeed> feed, size_t bytes) {
  if (bytes > max_bytes_ || max_feeds_ == 0) return;
  // Released outside the lock: a feed's destructor cancels its stream.
  std::vector<std::shared_ptr<ExecutionFeed>> evicted;
  {
    absl::MutexLock lock(&mu_);
    feeds_.emplace_back(std::move(feed), bytes);
    bytes_ += bytes;
    while (feeds_.size() > max_feeds_ || bytes_ > max_bytes_) {
      bytes_ -= feeds_.front().second;
      evicted.push_back(std::move(feeds_.front().first));
      feeds_.pop_front();
    }
  }
}

void ExecutionFeed::WakeAll() {
  std::vector<std::function<void()>> wakes;
  {
    absl::MutexLock lock(&mu_);
    wakes.reserve(wakes_.size());
    for (const auto& [id, wake] : wakes_) wakes.push_back(wake);
  }
  for (const auto& wake : wakes) wake();
}

std::shared_ptr<ExecutionFeed> FeedRegistry::Get(const std::string& execution,
                                                 const std::string& workflow_id) {
  absl::MutexLock lock(&mu_);
  std::weak_ptr<ExecutionFeed>& slot = feeds_[execution];
  if (std::shared_ptr<ExecutionFeed> feed = slot.lock(); feed != nullptr && !feed->failed()) {
    return feed;
  }
  // Forget feeds nobody holds any more, so the map stays as small as the
  // set of followed executions.
  absl::erase_if(feeds_, [](const auto& entry) { return entry.second.expired(); });
  auto feed = std::make_shared<ExecutionFeed>(stub_, execution, workflow_id, finished_);
  feeds_[execution] = feed;
  if (streams_opened_ != nullptr) streams_opened_->Increment();
  feed->Start();
  return feed;
}

}  // namespace gyre::gateway
