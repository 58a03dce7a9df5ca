#include "services/orchestrator/attempt_record.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gyre::orchestrator {
namespace {

using google::protobuf::util::TimeUtil;

// Straight into the message's own fields: TimeUtil returns a temporary
// that is then copied and destroyed, a quarter of `gyre status`'s server CPU
// on a 10,000-task execution (three timestamps and two durations per
// attempt).
void SetNanos(int64_t nanos, google::protobuf::Timestamp* out) {
  int64_t seconds = nanos / 1'000'000'000;
  int64_t rest = nanos % 1'000'000'000;
  if (rest < 0) {
    seconds -= 1;
    rest += 1'000'000'000;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest));
}

void SetNanos(int64_t nanos, google::protobuf::Duration* out) {
  // A Duration's nanos carry the sign of its seconds (truncation).
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

}  // namespace

void FillProto(const AttemptRecord& record, gyre::v1::TaskAttempt* out) {
  gyre::v1::TaskAttempt& attempt = *out;
  attempt.set_attempt(record.attempt);
  if (!record.agent.empty()) attempt.set_agent(absl::StrCat("agents/", record.agent));
  if (record.lease_time != 0) {
    SetNanos(record.lease_time, attempt.mutable_lease_time());
  }
  if (record.start_time != 0) {
    SetNanos(record.start_time, attempt.mutable_start_time());
  }
  if (record.end_time != 0) {
    SetNanos(record.end_time, attempt.mutable_end_time());
  }
  attempt.set_outcome(record.outcome);
  attempt.set_exit_code(record.exit_code);
  attempt.set_signal(record.signal);
  if (record.wall_time != 0) {
    SetNanos(record.wall_time, attempt.mutable_wall_time());
  }
  if (record.cpu_time != 0) {
    SetNanos(record.cpu_time, attempt.mutable_cpu_time());
  }
  attempt.set_peak_rss_bytes(record.peak_rss_bytes);
  if (!record.error.empty()) attempt.set_error(record.error);  // even "" takes a string
  attempt.set_stdout_bytes(record.stdout_bytes);
  attempt.set_stderr_bytes(record.stderr_bytes);
}

gyre::v1::TaskAttempt ToProto(const AttemptRecord& record) {
  gyre::v1::TaskAttempt attempt;
  FillProto(record, &attempt);
  return attempt;
}

AttemptRecord FromProto(const gyre::v1::TaskAttempt& attempt) {
  AttemptRecord record;
  record.attempt = attempt.attempt();
  absl::string_view agent = attempt.agent();
  absl::ConsumePrefix(&agent, "agents/");
  record.agent = std::string(agent);
  if (attempt.has_lease_time()) {
    record.lease_time = TimeUtil::TimestampToNanoseconds(attempt.lease_time());
  }
  if (attempt.has_start_time()) {
    record.start_time = TimeUtil::TimestampToNanoseconds(attempt.start_time());
  }
  if (attempt.has_end_time()) {
    record.end_time = TimeUtil::TimestampToNanoseconds(attempt.end_time());
  }
  record.outcome = attempt.outcome();
  record.exit_code = attempt.exit_code();
  record.signal = attempt.signal();
  if (attempt.has_wall_time()) {
    record.wall_time = TimeUtil::DurationToNanoseconds(attempt.wall_time());
  }
  if (attempt.has_cpu_time()) record.cpu_time = TimeUtil::DurationToNanoseconds(attempt.cpu_time());
  record.peak_rss_bytes = attempt.peak_rss_bytes();
  record.error = attempt.error();
  record.stdout_bytes = attempt.stdout_bytes();
  record.stderr_bytes = attempt.stderr_bytes();
  return record;
}

}  // namespace gyre::orchestrator
