#include "libs/logging/logger.h"

#include <grpc/support/log.h>
#include <unistd.h>

#include <atomic>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/common/json_escape.h"

namespace gyre::logging {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_output_fd{STDERR_FILENO};

absl::Mutex g_service_mutex;
std::string& ServiceName() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_service_mutex) {
  static auto* name = new std::string("gyre");
  return *name;
}

std::string JsonString(absl::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

void WriteFully(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written <= 0) return;  // nowhere to report a failing log sink
    data.remove_prefix(static_cast<size_t>(written));
  }
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warn" || lower == "warning") return Level::kWarn;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid log level \"", name, "\" (expected debug, info, warn or error)"));
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

Field::Field(absl::string_view key, absl::string_view value)
    : key_(key), json_value_(JsonString(value)) {}
Field::Field(absl::string_view key, const char* value) : Field(key, absl::string_view(value)) {}
Field::Field(absl::string_view key, const std::string& value)
    : Field(key, absl::string_view(value)) {}
Field::Field(absl::string_view key, int64_t value) : key_(key), json_value_(absl::StrCat(value)) {}
Field::Field(absl::string_view key, int value) : key_(key), json_value_(absl::StrCat(value)) {}
Field::Field(absl::string_view key, uint64_t value) : key_(key), json_value_(absl::StrCat(value)) {}
Field::Field(absl::string_view key, double value)
    : key_(key), json_value_(std::isfinite(value) ? absl::StrCat(value) : "null") {}
Field::Field(absl::string_view key, bool value)
    : key_(key), json_value_(value ? "true" : "false") {}

void Init(absl::string_view service, Level min_level) {
  {
    absl::MutexLock lock(&g_service_mutex);
    ServiceName() = std::string(service);
  }
  SetLevel(min_level);
}

void SetLevel(Level min_level) { g_min_level.store(static_cast<int>(min_level)); }

bool Enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

void SetOutputFd(int fd) { g_output_fd.store(fd); }

std::string FormatLine(Level level, absl::string_view msg, std::initializer_list<Field> fields) {
  return FormatLine(level, msg, absl::MakeConstSpan(fields.begin(), fields.size()));
}

std::string FormatLine(Level level, absl::string_view msg, absl::Span<const Field> fields) {
  std::string line = absl::StrCat(
      "{\"time\":\"", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
      "\",\"level\":\"", LevelName(level), "\",\"service\":");
  {
    absl::MutexLock lock(&g_service_mutex);
    AppendJsonString(ServiceName(), &line);
  }
  line.append(",\"msg\":");
  AppendJsonString(msg, &line);
  for (const Field& field : fields) {
    line.push_back(',');
    AppendJsonString(field.key(), &line);
    line.push_back(':');
    line.append(field.json_value());
  }
  line.push_back('}');
  return line;
}

void Log(Level level, absl::string_view msg, std::initializer_list<Field> fields) {
  LogFields(level, msg, absl::MakeConstSpan(fields.begin(), fields.size()));
}

void LogFields(Level level, absl::string_view msg, absl::Span<const Field> fields) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(level, msg, fields);
  line.push_back('\n');
  WriteFully(g_output_fd.load(), line);
}

void CaptureGrpcLogs() {
  gpr_set_log_function([](gpr_log_func_args* args) {
    Level level = Level::kInfo;
    if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = Level::kDebug;
    if (args->severity == GPR_LOG_SEVERITY_ERROR) level = Level::kError;
    Log(level, args->message, {{"component", "grpc"}, {"file", args->file}, {"line", args->line}});
  });
}

}  // namespace gyre::logging
