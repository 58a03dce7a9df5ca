#ifndef GYRE_LIBS_LOGGING_LOGGER_H_
#define GYRE_LIBS_LOGGING_LOGGER_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

#include "absl/status/statusor.h"

namespace gyre::logging {

// Structured JSON logging: one object per line on stderr, e.g.
//   {"time":"2026-11-22T15:31:30.123Z","level":"info","service":"orchestrator",
//    "msg":"serving","grpc_port":50051}
// Fields such as execution_id / task_id / trace_id let one task be followed
// across services. Thread-safe: each line is written with a single write(2),
// so lines from concurrent threads never interleave.

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn"/"warning" or "error".
absl::StatusOr<Level> ParseLevel(absl::string_view name);
absl::string_view LevelName(Level level);

// One key/value pair of a log line. Values are stored pre-rendered as JSON.
class Field {
 public:
  Field(absl::string_view key, absl::string_view value);
  Field(absl::string_view key, const char* value);
  Field(absl::string_view key, const std::string& value);
  Field(absl::string_view key, int64_t value);
  Field(absl::string_view key, int value);
  Field(absl::string_view key, uint64_t value);
  Field(absl::string_view key, double value);
  Field(absl::string_view key, bool value);

  absl::string_view key() const { return key_; }
  const std::string& json_value() const { return json_value_; }

 private:
  absl::string_view key_;
  std::string json_value_;
};

// How lines are written: one JSON object per line (for collectors), or a
// line a person reads ("12:00:01.250 INFO  orchestrator  serving
// grpc_port=50051"). kAuto picks text when the output is a terminal and
// JSON otherwise (a pipe, a file, a container's log).
enum class Format { kAuto, kJson, kText };

// Parses "auto", "json" or "text".
absl::StatusOr<Format> ParseFormat(absl::string_view name);
// Sets the format of the lines written from now on (kAuto looks at the
// output now); JSON until called.
void SetFormat(Format format);

// Sets the service name and minimum level for the process. Call once at
// start; before it, lines are logged at info level with service "gyre".
void Init(absl::string_view service, Level min_level);
void SetLevel(Level min_level);
bool Enabled(Level level);

// Redirects output to `fd` (tests capture logs through a pipe).
void SetOutputFd(int fd);

// Renders one line as text (without the trailing newline); `color` adds
// the terminal's colours (level, and bold for an announcement).
std::string FormatTextLine(Level level, absl::string_view msg, absl::Span<const Field> fields,
                           bool color, bool announce = false);

// Renders one log line (without the trailing newline); exposed for tests.
std::string FormatLine(Level level, absl::string_view msg, std::initializer_list<Field> fields);
std::string FormatLine(Level level, absl::string_view msg, absl::Span<const Field> fields);

void Log(Level level, absl::string_view msg, std::initializer_list<Field> fields = {});
// Log with fields kept from before (a line composed under a lock and
// written after it). A Field's key must outlive it: keys are literals.
void LogFields(Level level, absl::string_view msg, absl::Span<const Field> fields);
inline void Debug(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Log(Level::kDebug, msg, fields);
}
inline void Info(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Log(Level::kInfo, msg, fields);
}
// An info line that must stand out for a person (gyre dev is up, with its
// addresses): in text, on a line of its own, bold on a terminal, with its
// fields below it; in JSON, an ordinary info line.
void Announce(absl::string_view msg, std::initializer_list<Field> fields = {});
inline void Warn(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Log(Level::kWarn, msg, fields);
}
inline void Error(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Log(Level::kError, msg, fields);
}

// Routes gRPC's internal gpr_log output through this logger so a service's
// stderr is JSON only.
void CaptureGrpcLogs();

}  // namespace gyre::logging

#endif  // GYRE_LIBS_LOGGING_LOGGER_H_
