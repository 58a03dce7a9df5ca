#include "libs/logging/logger.h"

#include <grpc/support/log.h>
#include <unistd.h>

#include <algorithm>
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
// kJson or kText (kAuto is resolved when set); colours only on a terminal.
std::atomic<int> g_format{static_cast<int>(Format::kJson)};
std::atomic<bool> g_color{false};

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

absl::StatusOr<Format> ParseFormat(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "auto") return Format::kAuto;
  if (lower == "json") return Format::kJson;
  if (lower == "text") return Format::kText;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid log format \"", name, "\" (expected auto, json or text)"));
}

void SetFormat(Format format) {
  const bool terminal = isatty(g_output_fd.load()) != 0;
  if (format == Format::kAuto) format = terminal ? Format::kText : Format::kJson;
  g_format.store(static_cast<int>(format));
  g_color.store(terminal && format == Format::kText);
}

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

namespace {

// A JSON value as a person reads it: a string without its quotes when
// nothing in it could be taken for another field.
std::string TextValue(const std::string& json) {
  if (json.size() < 2 || json.front() != '"') return json;
  const absl::string_view inner = absl::string_view(json).substr(1, json.size() - 2);
  if (inner.empty() || inner.find_first_of(" =\\\"") != absl::string_view::npos) return json;
  return std::string(inner);
}

absl::string_view LevelColor(Level level) {
  switch (level) {
    case Level::kDebug:
      return "\033[2m";  // dim
    case Level::kWarn:
      return "\033[33m";  // yellow
    case Level::kError:
      return "\033[31m";  // red
    default:
      return "";
  }
}

void WriteLine(Level level, absl::string_view msg, absl::Span<const Field> fields, bool announce) {
  if (!Enabled(level)) return;
  std::string line = g_format.load() == static_cast<int>(Format::kText)
                         ? FormatTextLine(level, msg, fields, g_color.load(), announce)
                         : FormatLine(level, msg, fields);
  line.push_back('\n');
  WriteFully(g_output_fd.load(), line);
}

}  // namespace

std::string FormatTextLine(Level level, absl::string_view msg, absl::Span<const Field> fields,
                           bool color, bool announce) {
  std::string service;
  {
    absl::MutexLock lock(&g_service_mutex);
    service = ServiceName();
  }
  const absl::string_view paint = color ? LevelColor(level) : "";
  std::string line =
      absl::StrCat(absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()), " ", paint,
                   absl::AsciiStrToUpper(LevelName(level)), paint.empty() ? "" : "\033[0m",
                   std::string(6 - LevelName(level).size(), ' '), service, "  ");
  if (announce) {
    // The message alone on its line, each field below it, aligned.
    absl::StrAppend(&line, color ? "\033[1m" : "", "==> ", msg, " <==", color ? "\033[0m" : "");
    size_t width = 0;
    for (const Field& field : fields) width = std::max(width, field.key().size());
    for (const Field& field : fields) {
      absl::StrAppend(&line, "\n      ", field.key(),
                      std::string(width - field.key().size() + 2, ' '),
                      TextValue(field.json_value()));
    }
    return line;
  }
  // A message carrying a control character is shown escaped, as in JSON.
  if (std::any_of(msg.begin(), msg.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    const std::string escaped = JsonString(msg);
    line.append(escaped, 1, escaped.size() - 2);
  } else {
    line.append(msg.data(), msg.size());
  }
  for (const Field& field : fields) {
    absl::StrAppend(&line, "  ", field.key(), "=", TextValue(field.json_value()));
  }
  return line;
}

void Announce(absl::string_view msg, std::initializer_list<Field> fields) {
  WriteLine(Level::kInfo, msg, absl::MakeConstSpan(fields.begin(), fields.size()),
            /*announce=*/true);
}

void Log(Level level, absl::string_view msg, std::initializer_list<Field> fields) {
  LogFields(level, msg, absl::MakeConstSpan(fields.begin(), fields.size()));
}

void LogFields(Level level, absl::string_view msg, absl::Span<const Field> fields) {
  WriteLine(level, msg, fields, /*announce=*/false);
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
