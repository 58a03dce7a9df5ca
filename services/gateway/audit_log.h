#ifndef GYRE_SERVICES_GATEWAY_AUDIT_LOG_H_
#define GYRE_SERVICES_GATEWAY_AUDIT_LOG_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/gateway/gateway_metrics.h"

namespace gyre::gateway {

// One mutating call as the audit log keeps it. Never a credential or a body.
struct AuditRecord {
  absl::Time time;
  std::string principal;  // empty when the call failed authentication
  std::string tenant;
  std::string action;  // "POST /api/v1/workflows/{id}/execute": method and route template
  std::string target;  // the request path, e.g. "/api/v1/executions/abc/pause"
  int status = 0;      // the HTTP status answered
  std::string request_id;
};

// "success" (< 400), "denied" (401, 403), "rejected" (other 4xx) or
// "failed" (5xx): the bounded `result` of the metric and the record.
absl::string_view AuditResult(int status);

// The audit trail of the gateway: a JSON line per mutating call (POST, PUT,
// PATCH, DELETE) — who, tenant, action, target, result, request id, time —
// appended to a file or, without one, written to the service log as
// {"msg":"audit",...}; and gyre_gateway_audit_events_total{action,result}.
//
// Each record is one write(2) of a whole line to an O_APPEND descriptor, so
// concurrent records never interleave and no lock is needed; the kernel
// keeps the order of the writes.
//
// Thread-safety: Record() from any number of threads.
class AuditLog {
 public:
  // `path` empty: records go to the service log. `metrics` may be null and
  // must outlive this.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                        GatewayMetrics* metrics);
  ~AuditLog();

  void Record(const AuditRecord& record);

  // The record as its JSON line (with the trailing newline).
  static std::string JsonLine(const AuditRecord& record);

 private:
  AuditLog(int fd, std::string path, GatewayMetrics* metrics)
      : fd_(fd), path_(std::move(path)), metrics_(metrics) {}

  const int fd_;  // -1: the service log
  const std::string path_;
  GatewayMetrics* const metrics_;
  std::atomic<bool> warned_{false};  // a failing file is reported once
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_AUDIT_LOG_H_
