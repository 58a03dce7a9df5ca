#include "services/gateway/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "libs/common/json_escape.h"
#include "libs/logging/logger.h"

namespace gyre::gateway {

absl::string_view AuditResult(int status) {
  if (status < 400) return "success";
  if (status == 401 || status == 403) return "denied";
  if (status < 500) return "rejected";
  return "failed";
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path,
                                                         GatewayMetrics* metrics) {
  int fd = -1;
  if (!path.empty()) {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("audit_log_file: cannot open \"", path, "\": ", std::strerror(errno)));
    }
  }
  return std::unique_ptr<AuditLog>(new AuditLog(fd, path, metrics));
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::string AuditLog::JsonLine(const AuditRecord& record) {
  std::string line = "{\"time\":";
  AppendJsonString(absl::FormatTime(absl::RFC3339_full, record.time, absl::UTCTimeZone()), &line);
  line.append(",\"principal\":");
  AppendJsonString(record.principal, &line);
  line.append(",\"tenant\":");
  AppendJsonString(record.tenant, &line);
  line.append(",\"action\":");
  AppendJsonString(record.action, &line);
  line.append(",\"target\":");
  AppendJsonString(record.target, &line);
  absl::StrAppend(&line, ",\"result\":\"", AuditResult(record.status),
                  "\",\"status\":", record.status, ",\"request_id\":");
  AppendJsonString(record.request_id, &line);
  line.append("}\n");
  return line;
}

void AuditLog::Record(const AuditRecord& record) {
  if (metrics_ != nullptr) metrics_->AuditEvent(record.action, AuditResult(record.status));
  if (fd_ < 0) {
    logging::Info("audit", {{"principal", record.principal},
                            {"tenant", record.tenant},
                            {"action", record.action},
                            {"target", record.target},
                            {"result", std::string(AuditResult(record.status))},
                            {"status", record.status},
                            {"request_id", record.request_id}});
    return;
  }
  const std::string line = JsonLine(record);
  const ssize_t written = ::write(fd_, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size()) && !warned_.exchange(true)) {
    logging::Error("cannot append to the audit log; records are being lost",
                   {{"path", path_}, {"error", std::strerror(errno)}});
  }
}

}  // namespace gyre::gateway
