#include "services/gateway/event_subscriber.h"

#include <deque>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gyre::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace asio = boost::asio;

namespace {

// Frames taken from the feeds per read; small, so the lag check stays fresh.
constexpr size_t kFramesPerRead = 256;
// Longest message a client may send (they are ignored: the stream is
// one-way; control frames and a close are what matter).
constexpr size_t kMaxClientMessageBytes = 4096;

absl::string_view IdOf(absl::string_view name) {
  const size_t slash = name.rfind('/');
  return slash == absl::string_view::npos ? name : name.substr(slash + 1);
}

bool Final(v1::ExecutionState state) {
  return state == v1::EXECUTION_SUCCEEDED || state == v1::EXECUTION_FAILED ||
         state == v1::EXECUTION_CANCELLED;
}

absl::Time TimeOf(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
}

// One WebSocket client following one execution, or every execution of a
// workflow. Everything runs on the connection's strand; the feeds' wake-ups
// and the workflow's announcements are posted onto it.
class EventSubscriber : public std::enable_shared_from_this<EventSubscriber> {
 public:
  EventSubscriber(HttpStream stream, const SubscriberOptions& options,
                  std::shared_ptr<SubscriberCount> count)
      : ws_(std::move(stream)), options_(options), count_(std::move(count)) {
    count_->open.fetch_add(1, std::memory_order_relaxed);
    if (count_->gauge != nullptr) count_->gauge->Increment();
  }
  ~EventSubscriber() {
    count_->open.fetch_sub(1, std::memory_order_relaxed);
    if (count_->gauge != nullptr) count_->gauge->Decrement();
  }

  // Follows one execution after sequence `since`; closes when it ends.
  void FollowExecution(std::shared_ptr<ExecutionFeed> feed, int64_t since) {
    first_feed_ = std::move(feed);
    first_since_ = since;
  }
  // Follows every execution of a workflow; stays open when one ends.
  void FollowWorkflow(WorkflowFeeds* workflows, WorkflowSubscription subscription) {
    workflows_ = workflows;
    workflow_ = std::move(subscription);
    started_ = absl::Now();
  }

  void Start(http::request<http::string_body> request) {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().set_option(
        asio::socket_base::send_buffer_size(options_.send_buffer_bytes), ignored);
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = std::chrono::seconds(30);
    timeout.idle_timeout = std::chrono::seconds(options_.idle_timeout_seconds);
    timeout.keep_alive_pings = true;
    ws_.set_option(timeout);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
      response.set(http::field::server, "gyre-gateway");
    }));
    ws_.read_message_max(kMaxClientMessageBytes);
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code error) {
      if (error) return;
      self->OnAccepted();
    });
  }

 private:
  // One followed execution.
  struct Source {
    std::shared_ptr<ExecutionFeed> feed;
    int64_t cursor = 0;        // frames written: the next is frames[cursor]
    int64_t queued = 0;        // frames in pending_
    int64_t head = 0;          // frames the feed had at the last read
    int64_t allowed_lag = -1;  // set at the first read
    int64_t subscription = 0;
    bool ended = false;
    int close_code = 1000;
    std::string close_reason;
  };

  void OnAccepted() {
    if (first_feed_ != nullptr) {
      AddSource(std::move(first_feed_), first_since_);
    } else if (workflows_ != nullptr) {
      auto strand = ws_.get_executor();
      std::weak_ptr<EventSubscriber> weak = weak_from_this();
      // Listening first, then listing: an execution that starts in between
      // is announced, one that started before is listed.
      listener_ = workflows_->Listen(
          workflow_.workflow, workflow_.tenant, [weak, strand](const std::string& execution) {
            if (auto self = weak.lock()) {
              asio::post(strand, [self, execution] { self->Announced(execution); });
            }
          });
      listening_ = true;
      StartListing();
    }
    Read();
    Pump();
  }

  void AddSource(std::shared_ptr<ExecutionFeed> feed, int64_t since) {
    auto source = std::make_shared<Source>();
    source->feed = std::move(feed);
    source->cursor = std::max<int64_t>(0, since);
    auto strand = ws_.get_executor();
    std::weak_ptr<EventSubscriber> weak = weak_from_this();
    source->subscription = source->feed->Subscribe([weak, strand] {
      if (auto self = weak.lock()) asio::post(strand, [self] { self->Pump(); });
    });
    sources_.push_back(std::move(source));
  }

  // An execution of the workflow changed state (or, with an empty name,
  // announcements may have been missed: list again).
  void Announced(const std::string& execution) {
    if (finished_ || closing_) return;
    if (execution.empty()) return StartListing();
    auto since = workflow_.since.find(IdOf(execution));
    Follow(execution, since == workflow_.since.end() ? 0 : since->second);
    Pump();
  }

  void Follow(const std::string& execution, int64_t since) {
    if (closing_ || !followed_.insert(execution).second) return;
    if (static_cast<int>(sources_.size()) >= options_.max_workflow_executions) {
      return CloseWith(websocket::close_code::policy_error,
                       absl::StrCat("more than ", options_.max_workflow_executions,
                                    " executions of the workflow at once (max_workflow_executions)"
                                    "; follow them at /ws/executions/{id}"));
    }
    AddSource(workflows_->Feed(execution, workflow_.workflow_id), since);
  }

  void StartListing() {
    if (listing_) {
      relist_ = true;
      return;
    }
    listing_ = true;
    auto strand = ws_.get_executor();
    std::weak_ptr<EventSubscriber> weak = weak_from_this();
    workflows_->List(workflow_.workflow, workflow_.tenant,
                     static_cast<size_t>(options_.max_workflow_executions) * 10,
                     [weak, strand](absl::StatusOr<std::vector<v1::Execution>> executions) {
                       if (auto self = weak.lock()) {
                         asio::post(strand, [self, executions = std::move(executions)]() mutable {
                           self->OnListed(std::move(executions));
                         });
                       }
                     });
  }

  void OnListed(absl::StatusOr<std::vector<v1::Execution>> executions) {
    listing_ = false;
    if (finished_ || closing_) return;
    if (!executions.ok()) {
      return CloseWith(websocket::close_code::internal_error,
                       absl::StrCat("listing the workflow's executions failed: ",
                                    executions.status().message(), "; reconnect with since"));
    }
    // Executions created from the cutoff on may have started and finished
    // unseen: the client gets them whole. Without since it is this
    // subscriber's start; with since, the oldest named execution's creation.
    absl::Time cutoff = started_;
    for (const v1::Execution& execution : *executions) {
      if (workflow_.since.contains(IdOf(execution.name()))) {
        cutoff = std::min(cutoff, TimeOf(execution.create_time()));
      }
    }
    for (const v1::Execution& execution : *executions) {
      auto since = workflow_.since.find(IdOf(execution.name()));
      if (since != workflow_.since.end()) {
        Follow(execution.name(), since->second);
      } else if (!Final(execution.state()) || TimeOf(execution.create_time()) >= cutoff) {
        Follow(execution.name(), 0);
      }
    }
    if (relist_) {
      relist_ = false;
      StartListing();
    }
    Pump();
  }

  // Reads (and drops) client messages: keeps pings, pongs and the close
  // handshake going, and learns when the client leaves.
  void Read() {
    ws_.async_read(incoming_, [self = shared_from_this()](beast::error_code error, size_t) {
      if (error) return self->Finish();
      self->incoming_.consume(self->incoming_.size());
      self->Read();
    });
  }

  void Pump() {
    if (finished_ || closing_) return;
    // Always asks every feed for its head, so a subscriber stuck in a write
    // still sees how far behind it is.
    size_t room = pending_.size() < kFramesPerRead ? kFramesPerRead - pending_.size() : 0;
    bool lagging = false;
    const size_t n = sources_.size();
    for (size_t i = 0; i < n; ++i) {
      // Round robin: a busy execution does not starve the others.
      const std::shared_ptr<Source>& source = sources_[(next_source_ + i) % n];
      ExecutionFeed::Chunk chunk = source->feed->Read(source->cursor + source->queued, room);
      if (source->allowed_lag < 0) {
        // The backlog at subscription (history since `since`) is caught up
        // on at the client's pace; only falling behind beyond it is slow.
        source->allowed_lag =
            options_.max_lag_events + std::max<int64_t>(0, chunk.head - source->cursor);
      }
      room -= chunk.frames.size();
      source->queued += static_cast<int64_t>(chunk.frames.size());
      for (Frame& frame : chunk.frames) pending_.emplace_back(source, std::move(frame));
      source->head = chunk.head;
      if (chunk.ended && !source->ended) {
        source->ended = true;
        source->close_code = chunk.close_code;
        source->close_reason = std::move(chunk.close_reason);
      }
      if (chunk.head - source->cursor > source->allowed_lag) lagging = true;
    }
    if (n > 0) next_source_ = (next_source_ + 1) % n;
    if (!DropDrainedSources()) return;
    // Watched whenever it is behind with a write in flight, not only when a
    // write starts: a write stuck while the lag grows must still trip it.
    if (lagging && writing_) WatchForStall();
    if (writing_ || pending_.empty()) return;
    writing_ = true;
    ++writes_started_;
    std::shared_ptr<Source> source = pending_.front().first;
    Frame frame = pending_.front().second;
    ws_.text(true);
    ws_.async_write(asio::buffer(*frame),
                    [self = shared_from_this(), source, frame](beast::error_code error, size_t) {
                      self->writing_ = false;
                      if (error) return self->Finish();
                      self->pending_.pop_front();
                      ++source->cursor;
                      --source->queued;
                      if (self->close_after_write_) return self->SendClose();
                      self->Pump();
                    });
    if (lagging) WatchForStall();
  }

  // Handles the feeds that ended and whose frames are all written. Returns
  // false when the subscriber is closing.
  bool DropDrainedSources() {
    for (auto it = sources_.begin(); it != sources_.end();) {
      Source& source = **it;
      if (!source.ended || source.cursor < source.head || source.queued > 0) {
        ++it;
        continue;
      }
      if (workflows_ == nullptr || source.close_code != 1000) {
        // One execution's end is the stream's end; a failed upstream ends
        // a workflow's stream too (the client resumes with since).
        if (writing_ || !pending_.empty()) return true;  // the others' frames first
        CloseWith(static_cast<websocket::close_code>(source.close_code), source.close_reason);
        return false;
      }
      source.feed->Unsubscribe(source.subscription);
      it = sources_.erase(it);
    }
    return true;
  }

  int64_t WorstLag() const {
    int64_t worst = 0;
    for (const auto& source : sources_) {
      worst = std::max(worst, source->feed->Read(0, 0).head - source->cursor - source->allowed_lag);
    }
    return worst;
  }

  // Behind, with a write in flight: the subscriber is slow if that write
  // is still stuck (the client reads nothing) when the timer fires. A
  // burst that a reading client is working through never trips it.
  void WatchForStall() {
    if (stall_timer_armed_) return;
    stall_timer_armed_ = true;
    stall_timer_.expires_after(std::chrono::milliseconds(options_.stall_timeout_ms));
    stall_timer_.async_wait([self = shared_from_this(),
                             writes = writes_started_](beast::error_code error) {
      self->stall_timer_armed_ = false;
      if (error || self->finished_ || self->closing_ || !self->writing_) return;
      const int64_t over = self->WorstLag();
      if (over <= 0) return;
      if (self->writes_started_ != writes) return self->WatchForStall();  // progress
      std::string resume;
      for (const auto& source : self->sources_) {
        absl::StrAppend(&resume, resume.empty() ? "" : ",", IdOf(source->feed->execution()), ":",
                        source->cursor);
      }
      self->CloseWith(
          websocket::close_code::try_again_later,
          absl::StrCat(
              "too slow: ", over + self->options_.max_lag_events,
              " events behind; reconnect with since=",
              self->workflows_ == nullptr ? absl::StrCat(self->sources_.front()->cursor) : resume));
    });
  }

  // Closes with `code` and `reason` once the write in flight (if any) is
  // done; a write stuck behind a client that reads nothing is cut off by
  // the connection's timer.
  void CloseWith(websocket::close_code code, std::string reason) {
    closing_ = true;
    // A close frame's reason is at most 123 bytes.
    close_reason_ = websocket::close_reason(code, reason.substr(0, 120));
    if (writing_) {
      close_after_write_ = true;
      beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
      return;
    }
    SendClose();
  }

  void SendClose() {
    close_after_write_ = false;
    ws_.async_close(close_reason_,
                    [self = shared_from_this()](beast::error_code) { self->Finish(); });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    stall_timer_.cancel();
    for (const auto& source : sources_) source->feed->Unsubscribe(source->subscription);
    if (listening_) workflows_->Unlisten(listener_);
    listening_ = false;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  websocket::stream<HttpStream> ws_;
  SubscriberOptions options_;
  std::shared_ptr<SubscriberCount> count_;
  beast::flat_buffer incoming_;
  std::vector<std::shared_ptr<Source>> sources_;
  size_t next_source_ = 0;
  // Taken from the feeds, not yet written, with the execution of each.
  std::deque<std::pair<std::shared_ptr<Source>, Frame>> pending_;
  // One execution: its feed until the handshake is done.
  std::shared_ptr<ExecutionFeed> first_feed_;
  int64_t first_since_ = 0;
  // A workflow: null for one execution.
  WorkflowFeeds* workflows_ = nullptr;
  WorkflowSubscription workflow_;
  absl::Time started_;
  absl::flat_hash_set<std::string> followed_;  // every execution ever followed
  int64_t listener_ = 0;
  bool listening_ = false;
  bool listing_ = false;
  bool relist_ = false;
  boost::asio::steady_timer stall_timer_{ws_.get_executor()};
  bool stall_timer_armed_ = false;
  uint64_t writes_started_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  bool finished_ = false;
  websocket::close_reason close_reason_;
};

}  // namespace

void StartEventSubscriber(HttpStream stream, http::request<http::string_body> request,
                          std::shared_ptr<ExecutionFeed> feed, int64_t since,
                          const SubscriberOptions& options,
                          std::shared_ptr<SubscriberCount> count) {
  auto subscriber = std::make_shared<EventSubscriber>(std::move(stream), options, std::move(count));
  subscriber->FollowExecution(std::move(feed), std::max<int64_t>(0, since));
  subscriber->Start(std::move(request));
}

void StartWorkflowSubscriber(HttpStream stream, http::request<http::string_body> request,
                             WorkflowFeeds* workflows, WorkflowSubscription subscription,
                             const SubscriberOptions& options,
                             std::shared_ptr<SubscriberCount> count) {
  auto subscriber = std::make_shared<EventSubscriber>(std::move(stream), options, std::move(count));
  subscriber->FollowWorkflow(workflows, std::move(subscription));
  subscriber->Start(std::move(request));
}

}  // namespace gyre::gateway
