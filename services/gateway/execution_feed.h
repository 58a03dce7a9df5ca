#ifndef GYRE_SERVICES_GATEWAY_EXECUTION_FEED_H_
#define GYRE_SERVICES_GATEWAY_EXECUTION_FEED_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "prometheus/counter.h"

namespace gyre::gateway {

// One WebSocket message, encoded once and shared by every subscriber.
using Frame = std::shared_ptr<const std::string>;

// Encodes an orchestrator event as the WebSocket message
// {type, workflow_id, execution_id, sequence, timestamp, data}.
std::string EncodeEventMessage(const v1::Event& event, absl::string_view workflow_id);

// The events of one execution as WebSocket frames, fed by one upstream
// WatchBatches stream however many clients follow it: each event is
// encoded once and its frame shared. The frames are kept from sequence 1
// on (frame i is sequence i + 1), so a subscriber may start after any
// sequence it has seen (?since=N) and is never sent one twice.
//
// Subscribers pull: the feed only wakes them when frames arrive. A
// subscriber that falls too far behind the head is told to close (the
// feed never waits for one).
//
// Thread-safety: thread-safe; upstream callbacks run on gRPC threads and
// wake callbacks are called without the lock held.
class FinishedFeeds;

class ExecutionFeed : public std::enable_shared_from_this<ExecutionFeed> {
 public:
  // `finished` (may be empty) keeps the feed for a while once its
  // execution finished.
  ExecutionFeed(v1::OrchestratorService::Stub* stub, std::string execution, std::string workflow_id,
                std::weak_ptr<FinishedFeeds> finished = {});
  ~ExecutionFeed();

  // Starts the upstream stream. Call once, after construction.
  void Start();

  // Registers a wake-up called (on a gRPC thread) whenever new frames or
  // the end arrive; returns its id for Unsubscribe.
  int64_t Subscribe(std::function<void()> wake);
  void Unsubscribe(int64_t id);

  struct Chunk {
    std::vector<Frame> frames;  // from the asked index on, at most `max`
    int64_t head = 0;           // frames known so far
    bool ended = false;         // no frame will follow `head`
    int close_code = 1000;      // when ended: 1000, or 1011 if upstream failed
    std::string close_reason;
  };
  Chunk Read(int64_t from, size_t max) const;

  const std::string& execution() const { return execution_; }
  // True once the upstream stream failed: a new subscriber needs a new feed.
  bool failed() const;

 private:
  class Upstream;
  void Append(const v1::EventBatch& batch);
  void End(int close_code, std::string reason);
  void WakeAll();

  v1::OrchestratorService::Stub* const stub_;
  const std::string execution_;
  const std::string workflow_id_;
  const std::weak_ptr<FinishedFeeds> finished_;
  mutable absl::Mutex mu_;
  std::vector<Frame> frames_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of frames_
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  int close_code_ ABSL_GUARDED_BY(mu_) = 1000;
  std::string close_reason_ ABSL_GUARDED_BY(mu_);
  int64_t next_subscriber_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<int64_t, std::function<void()>> wakes_ ABSL_GUARDED_BY(mu_);
  // Set once by Start(); shared with the stream itself until its OnDone.
  std::shared_ptr<Upstream> upstream_holder_;
};

// The most recently finished feeds, kept after their last subscriber
// left: a finished execution's frames never change, so the next
// subscribers (a reloaded page, many clients connecting over a few seconds)
// share them instead of each replaying the execution from the orchestrator
// and encoding every event again. Bounded by count and by frame bytes; the
// oldest go first. Thread-safe.
class FinishedFeeds {
 public:
  FinishedFeeds(size_t max_feeds, size_t max_bytes)
      : max_feeds_(max_feeds), max_bytes_(max_bytes) {}
  // Keeps `feed`, whose frames take `bytes`.
  void Keep(std::shared_ptr<ExecutionFeed> feed, size_t bytes);

 private:
  const size_t max_feeds_;
  const size_t max_bytes_;
  absl::Mutex mu_;
  std::deque<std::pair<std::shared_ptr<ExecutionFeed>, size_t>> feeds_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Hands out the one feed of each execution; a feed lives while a
// subscriber holds it, and a finished one a while longer (FinishedFeeds).
// Thread-safe.
class FeedRegistry {
 public:
  // Finished feeds kept: at most 16, of 64 MiB of frames in all.
  static constexpr size_t kFinishedFeeds = 16;
  static constexpr size_t kFinishedBytes = 64 << 20;

  // `streams_opened` (may be null) counts the orchestrator streams opened.
  explicit FeedRegistry(v1::OrchestratorService::Stub* stub,
                        prometheus::Counter* streams_opened = nullptr)
      : stub_(stub), streams_opened_(streams_opened) {}
  std::shared_ptr<ExecutionFeed> Get(const std::string& execution, const std::string& workflow_id);

 private:
  v1::OrchestratorService::Stub* const stub_;
  prometheus::Counter* const streams_opened_;
  const std::shared_ptr<FinishedFeeds> finished_ =
      std::make_shared<FinishedFeeds>(kFinishedFeeds, kFinishedBytes);
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<ExecutionFeed>> feeds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_EXECUTION_FEED_H_
