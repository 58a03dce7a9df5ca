#ifndef GYRE_SERVICES_GATEWAY_EVENT_SUBSCRIBER_H_
#define GYRE_SERVICES_GATEWAY_EVENT_SUBSCRIBER_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "prometheus/gauge.h"
#include "services/gateway/execution_feed.h"

namespace gyre::gateway {

// Limits of one WebSocket subscriber.
struct SubscriberOptions {
  // A subscriber more than this many events behind the feed's head (beyond
  // the history it asked for when it subscribed) whose socket accepts no
  // frame for stall_timeout_ms is closed with 1013 ("try again later":
  // reconnect with since). A client that reads, however large the burst,
  // is never closed.
  int64_t max_lag_events = 4096;
  int stall_timeout_ms = 2000;
  // Kernel send buffer of the connection: with the lag above, all the
  // memory a slow subscriber can hold up (the frames are the feed's).
  int send_buffer_bytes = 256 << 10;
  // A ping is sent after half of this without traffic; the connection is
  // closed after all of it.
  int idle_timeout_seconds = 60;
};

// Counts open subscribers (and mirrors the count in a gauge, if given).
struct SubscriberCount {
  std::atomic<int> open{0};
  prometheus::Gauge* gauge = nullptr;  // outlives every subscriber
};

// Completes the WebSocket handshake of `request` on `stream` and sends the
// feed's frames after sequence `since`, one message each, in order, then
// closes with the feed's end (1000 when the execution finished). Owns
// itself until the connection closes; counted in `count` while it lives.
void StartEventSubscriber(boost::beast::tcp_stream stream,
                          boost::beast::http::request<boost::beast::http::string_body> request,
                          std::shared_ptr<ExecutionFeed> feed, int64_t since,
                          const SubscriberOptions& options, std::shared_ptr<SubscriberCount> count);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_EVENT_SUBSCRIBER_H_
