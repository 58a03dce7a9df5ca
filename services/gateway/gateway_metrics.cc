#include "services/gateway/gateway_metrics.h"

#include "absl/strings/str_cat.h"

namespace gyre::gateway {

GatewayMetrics::GatewayMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("gyre_gateway_requests_total")
                    .Help("HTTP requests answered, by route template, method and status code")
                    .Register(registry)),
      seconds_(prometheus::BuildHistogram()
                   .Name("gyre_gateway_request_seconds")
                   .Help("Time from a request's arrival to its reply, by route template")
                   .Register(registry)),
      auth_failures_(prometheus::BuildCounter()
                         .Name("gyre_gateway_auth_failures_total")
                         .Help("Requests refused for their credentials, by reason")
                         .Register(registry)),
      rate_limited_(prometheus::BuildCounter()
                        .Name("gyre_gateway_rate_limited_total")
                        .Help("Requests refused with 429 by the per-principal rate limit")
                        .Register(registry)
                        .Add({})),
      audit_events_(prometheus::BuildCounter()
                        .Name("gyre_gateway_audit_events_total")
                        .Help("Mutating calls written to the audit log, by action "
                              "(method and route template) and result")
                        .Register(registry)),
      websocket_subscribers_(prometheus::BuildGauge()
                                 .Name("gyre_gateway_websocket_subscribers")
                                 .Help("Open WebSocket subscribers")
                                 .Register(registry)
                                 .Add({})),
      execution_streams_(prometheus::BuildCounter()
                             .Name("gyre_gateway_execution_streams_total")
                             .Help("Orchestrator event streams opened to feed /ws/executions "
                                   "subscribers (shared by all subscribers of an execution)")
                             .Register(registry)
                             .Add({})) {}

void GatewayMetrics::Request(absl::string_view route, absl::string_view method, int status,
                             absl::Duration elapsed) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10};
  requests_
      .Add({{"route", std::string(route)},
            {"method", std::string(method)},
            {"code", absl::StrCat(status)}})
      .Increment();
  seconds_.Add({{"route", std::string(route)}}, kBuckets).Observe(absl::ToDoubleSeconds(elapsed));
}

void GatewayMetrics::AuthFailure(absl::string_view reason) {
  auth_failures_.Add({{"reason", std::string(reason)}}).Increment();
}

void GatewayMetrics::RateLimited() { rate_limited_.Increment(); }

void GatewayMetrics::AuditEvent(absl::string_view action, absl::string_view result) {
  audit_events_.Add({{"action", std::string(action)}, {"result", std::string(result)}}).Increment();
}

}  // namespace gyre::gateway
