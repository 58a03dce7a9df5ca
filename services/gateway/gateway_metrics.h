#ifndef GYRE_SERVICES_GATEWAY_GATEWAY_METRICS_H_
#define GYRE_SERVICES_GATEWAY_GATEWAY_METRICS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace gyre::gateway {

// The gateway's Prometheus metrics (docs/metrics.md). Label values are
// bounded: route templates, methods of the route table, status codes, a
// fixed set of auth failure reasons. Thread-safe (prometheus-cpp's own
// locking); the registry must outlive it.
class GatewayMetrics {
 public:
  explicit GatewayMetrics(prometheus::Registry& registry);

  // One answered request: `route` is its template ("unmatched" when none).
  void Request(absl::string_view route, absl::string_view method, int status,
               absl::Duration elapsed);
  // "missing", "invalid" or "unsupported_scheme".
  void AuthFailure(absl::string_view reason);
  void RateLimited();
  // One audited (mutating) call: `action` is "METHOD /route/template",
  // `result` one of AuditResult's four.
  void AuditEvent(absl::string_view action, absl::string_view result);
  prometheus::Gauge& websocket_subscribers() { return websocket_subscribers_; }
  // Orchestrator event streams opened to feed /ws/executions subscribers
  // (one per followed execution, however many subscribers share it).
  prometheus::Counter& execution_streams() { return execution_streams_; }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  prometheus::Family<prometheus::Counter>& auth_failures_;
  prometheus::Counter& rate_limited_;
  prometheus::Family<prometheus::Counter>& audit_events_;
  prometheus::Gauge& websocket_subscribers_;
  prometheus::Counter& execution_streams_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_GATEWAY_METRICS_H_
