#ifndef GYRE_SERVICES_ORCHESTRATOR_PROTO_TIME_H_
#define GYRE_SERVICES_ORCHESTRATOR_PROTO_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include "absl/time/time.h"

// Conversions between absl time types and their protobuf well-known types.
namespace gyre::orchestrator {

inline google::protobuf::Timestamp ToProto(absl::Time time) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
}

inline google::protobuf::Duration ToProto(absl::Duration duration) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(
      absl::ToInt64Nanoseconds(duration));
}

inline absl::Time FromProto(const google::protobuf::Timestamp& time) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(time));
}

inline absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Nanoseconds(google::protobuf::util::TimeUtil::DurationToNanoseconds(duration));
}

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_PROTO_TIME_H_
