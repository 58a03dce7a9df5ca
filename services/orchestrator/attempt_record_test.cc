#include "services/orchestrator/attempt_record.h"

#include <google/protobuf/util/time_util.h>

#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using google::protobuf::util::TimeUtil;

// The proto holds what protobuf's own conversions would give (FillProto
// sets the fields itself, for speed), and reads back to the same record.
TEST(AttemptRecordTest, TimesConvertAsTimeUtilDoesAndReadBack) {
  for (const int64_t nanos :
       {int64_t{1}, int64_t{999'999'999}, int64_t{1'000'000'000},
        int64_t{1'764'825'600'123'456'789}, int64_t{-1}, int64_t{-1'500'000'000}}) {
    AttemptRecord record;
    record.attempt = 2;
    record.agent = "a1";
    record.lease_time = nanos;
    record.start_time = nanos + 7;
    record.end_time = nanos + 11;
    record.wall_time = nanos;
    record.cpu_time = -nanos;
    const v1::TaskAttempt proto = ToProto(record);
    EXPECT_EQ(proto.lease_time(), TimeUtil::NanosecondsToTimestamp(nanos)) << nanos;
    EXPECT_EQ(proto.start_time(), TimeUtil::NanosecondsToTimestamp(nanos + 7)) << nanos;
    EXPECT_EQ(proto.end_time(), TimeUtil::NanosecondsToTimestamp(nanos + 11)) << nanos;
    EXPECT_EQ(proto.wall_time(), TimeUtil::NanosecondsToDuration(nanos)) << nanos;
    EXPECT_EQ(proto.cpu_time(), TimeUtil::NanosecondsToDuration(-nanos)) << nanos;
    EXPECT_EQ(proto.agent(), "agents/a1");
    const AttemptRecord back = FromProto(proto);
    EXPECT_EQ(back.lease_time, record.lease_time);
    EXPECT_EQ(back.start_time, record.start_time);
    EXPECT_EQ(back.end_time, record.end_time);
    EXPECT_EQ(back.wall_time, record.wall_time);
    EXPECT_EQ(back.cpu_time, record.cpu_time);
    EXPECT_EQ(back.agent, "a1");
  }
}

// Unset times stay unset (a lease not yet started has no start_time).
TEST(AttemptRecordTest, ZeroTimesAreLeftUnset) {
  AttemptRecord record;
  record.lease_time = 5;
  const v1::TaskAttempt proto = ToProto(record);
  EXPECT_TRUE(proto.has_lease_time());
  EXPECT_FALSE(proto.has_start_time());
  EXPECT_FALSE(proto.has_end_time());
  EXPECT_FALSE(proto.has_wall_time());
  EXPECT_FALSE(proto.has_cpu_time());
}

}  // namespace
}  // namespace gyre::orchestrator
