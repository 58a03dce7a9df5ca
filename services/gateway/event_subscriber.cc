#include "services/gateway/event_subscriber.h"

#include <deque>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/strings/str_cat.h"

namespace gyre::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace asio = boost::asio;

namespace {

// Frames taken from the feed per read; small, so the lag check stays fresh.
constexpr size_t kFramesPerRead = 256;
// Longest message a client may send (they are ignored: the stream is
// one-way; control frames and a close are what matter).
constexpr size_t kMaxClientMessageBytes = 4096;

// One WebSocket client following one execution. Everything runs on the
// connection's strand; the feed's wake-ups are posted onto it.
class EventSubscriber : public std::enable_shared_from_this<EventSubscriber> {
 public:
  EventSubscriber(beast::tcp_stream stream, std::shared_ptr<ExecutionFeed> feed, int64_t since,
                  const SubscriberOptions& options, std::shared_ptr<SubscriberCount> count)
      : ws_(std::move(stream)),
        feed_(std::move(feed)),
        cursor_(since),
        options_(options),
        count_(std::move(count)) {
    count_->open.fetch_add(1, std::memory_order_relaxed);
    if (count_->gauge != nullptr) count_->gauge->Increment();
  }
  ~EventSubscriber() {
    count_->open.fetch_sub(1, std::memory_order_relaxed);
    if (count_->gauge != nullptr) count_->gauge->Decrement();
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
  void OnAccepted() {
    auto strand = ws_.get_executor();
    std::weak_ptr<EventSubscriber> weak = weak_from_this();
    subscription_ = feed_->Subscribe([weak, strand] {
      if (auto self = weak.lock()) asio::post(strand, [self] { self->Pump(); });
    });
    subscribed_ = true;
    Read();
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
    // Always asks for the head, so a subscriber stuck in a write still sees
    // how far behind it is.
    const size_t room = pending_.size() < kFramesPerRead ? kFramesPerRead - pending_.size() : 0;
    ExecutionFeed::Chunk chunk = feed_->Read(cursor_ + static_cast<int64_t>(pending_.size()), room);
    if (allowed_lag_ < 0) {
      // The backlog at subscription (history since `since`) is caught up
      // on at the client's pace; only falling behind beyond it is slow.
      allowed_lag_ = options_.max_lag_events + std::max<int64_t>(0, chunk.head - cursor_);
    }
    for (Frame& frame : chunk.frames) pending_.push_back(std::move(frame));
    if (pending_.empty() && chunk.ended && !writing_) {
      return CloseWith(static_cast<websocket::close_code>(chunk.close_code), chunk.close_reason);
    }
    if (writing_ || pending_.empty()) return;
    writing_ = true;
    ++writes_started_;
    Frame frame = pending_.front();
    ws_.text(true);
    ws_.async_write(asio::buffer(*frame),
                    [self = shared_from_this(), frame](beast::error_code error, size_t) {
                      self->writing_ = false;
                      if (error) return self->Finish();
                      self->pending_.pop_front();
                      ++self->cursor_;
                      if (self->close_after_write_) return self->SendClose();
                      self->Pump();
                    });
    if (chunk.head - cursor_ > allowed_lag_) WatchForStall();
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
      const int64_t lag = self->feed_->Read(0, 0).head - self->cursor_;
      if (lag <= self->allowed_lag_) return;
      if (self->writes_started_ != writes) return self->WatchForStall();  // progress
      self->CloseWith(
          websocket::close_code::try_again_later,
          absl::StrCat("too slow: ", lag, " events behind; reconnect with since=", self->cursor_));
    });
  }

  // Closes with `code` and `reason` once the write in flight (if any) is
  // done; a write stuck behind a client that reads nothing is cut off by
  // the connection's timer.
  void CloseWith(websocket::close_code code, std::string reason) {
    closing_ = true;
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
    if (subscribed_) feed_->Unsubscribe(subscription_);
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  websocket::stream<beast::tcp_stream> ws_;
  std::shared_ptr<ExecutionFeed> feed_;
  int64_t cursor_;  // frames sent: the next one to send is frames[cursor_]
  SubscriberOptions options_;
  std::shared_ptr<SubscriberCount> count_;
  beast::flat_buffer incoming_;
  std::deque<Frame> pending_;  // taken from the feed, not yet written
  int64_t allowed_lag_ = -1;   // set at the first read
  boost::asio::steady_timer stall_timer_{ws_.get_executor()};
  bool stall_timer_armed_ = false;
  uint64_t writes_started_ = 0;
  int64_t subscription_ = 0;
  bool subscribed_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  bool finished_ = false;
  websocket::close_reason close_reason_;
};

}  // namespace

void StartEventSubscriber(beast::tcp_stream stream, http::request<http::string_body> request,
                          std::shared_ptr<ExecutionFeed> feed, int64_t since,
                          const SubscriberOptions& options,
                          std::shared_ptr<SubscriberCount> count) {
  auto subscriber = std::make_shared<EventSubscriber>(
      std::move(stream), std::move(feed), std::max<int64_t>(0, since), options, std::move(count));
  subscriber->Start(std::move(request));
}

}  // namespace gyre::gateway
