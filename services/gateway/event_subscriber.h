#ifndef GYRE_SERVICES_GATEWAY_EVENT_SUBSCRIBER_H_
#define GYRE_SERVICES_GATEWAY_EVENT_SUBSCRIBER_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "absl/container/flat_hash_map.h"
#include "prometheus/gauge.h"
#include "services/gateway/execution_feed.h"
#include "services/gateway/http_stream.h"
#include "services/gateway/workflow_feed.h"

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
  // Executions a /ws/workflows/{id} subscriber follows at once (each is an
  // orchestrator stream, shared with other subscribers of that execution);
  // past it the subscriber is closed with 1008.
  int max_workflow_executions = 100;
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
void StartEventSubscriber(HttpStream stream,
                          boost::beast::http::request<boost::beast::http::string_body> request,
                          std::shared_ptr<ExecutionFeed> feed, int64_t since,
                          const SubscriberOptions& options, std::shared_ptr<SubscriberCount> count);

// What a /ws/workflows/{id} subscriber follows.
struct WorkflowSubscription {
  std::string workflow;     // "workflows/{w}"
  std::string workflow_id;  // "{w}"
  std::string tenant;       // the principal's; empty: any
  // ?since=ID:N,...: the executions the client has seen, by id, with the
  // last sequence it received of each.
  absl::flat_hash_map<std::string, int64_t> since;
};

// Completes the WebSocket handshake and sends the events of every execution
// of a workflow, each execution's in order (per-execution `sequence`): the
// executions named in `since` after their sequence, the unfinished ones
// and those created since the subscriber's start (or, with `since`, since
// the oldest named one was created) from their first event, and every
// execution started later. Stays open when an execution finishes; closes
// with 1011 when the orchestrator's stream fails (reconnect with since).
// `workflows` outlives the subscriber (the gateway's HTTP server is
// stopped first).
void StartWorkflowSubscriber(HttpStream stream,
                             boost::beast::http::request<boost::beast::http::string_body> request,
                             WorkflowFeeds* workflows, WorkflowSubscription subscription,
                             const SubscriberOptions& options,
                             std::shared_ptr<SubscriberCount> count);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_EVENT_SUBSCRIBER_H_
