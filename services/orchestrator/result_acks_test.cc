#include "services/orchestrator/result_acks.h"

#include <vector>

#include "gtest/gtest.h"
#include "services/orchestrator/testing/fake_agent_channel.h"

namespace gyre::orchestrator {
namespace {

using ::gyre::orchestrator::testing::RecordingChannel;

TEST(ResultAcksTest, ABatchIsAcknowledgedWhenDurableNotBefore) {
  auto channel = std::make_shared<RecordingChannel>();
  ResultAcks acks(channel);
  acks.Appended();  // results 1-3
  acks.Appended();  // results 4-5
  EXPECT_TRUE(channel->acks().empty());
  acks.Durable(3, absl::OkStatus());
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{3}));
  acks.Durable(5, absl::OkStatus());
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{3, 5}));
  EXPECT_EQ(channel->sent(), channel->acks().size()) << "ResultAcks sends acknowledgements only";
}

TEST(ResultAcksTest, AStaleBatchNeverOvertakesAPendingAppend) {
  auto channel = std::make_shared<RecordingChannel>();
  ResultAcks acks(channel);
  acks.NothingToRecord(2);  // nothing pending: at once
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{2}));

  acks.Appended();          // results 3-4, not yet durable
  acks.NothingToRecord(5);  // acknowledging 5 would cover 3 and 4
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{2}));
  acks.Appended();  // results 6-7
  acks.Durable(4, absl::OkStatus());
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{2, 4})) << "6-7 may come before 5 or after";
  acks.Durable(7, absl::OkStatus());
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{2, 4, 7}));

  acks.Appended();          // 8
  acks.NothingToRecord(9);  // waits for 8
  acks.Durable(8, absl::OkStatus());
  EXPECT_EQ(channel->acks(), (std::vector<uint64_t>{2, 4, 7, 9})) << "8 done: 9 goes too";
  EXPECT_EQ(channel->sent(), channel->acks().size()) << "ResultAcks sends acknowledgements only";
}

TEST(ResultAcksTest, NothingIsAcknowledgedAfterAFailedAppend) {
  auto channel = std::make_shared<RecordingChannel>();
  ResultAcks acks(channel);
  acks.Appended();
  acks.Appended();
  acks.Durable(3, absl::DataLossError("disk full"));
  acks.Durable(6, absl::OkStatus());
  acks.NothingToRecord(7);
  EXPECT_TRUE(channel->acks().empty()) << "the agent sends them all again";
  EXPECT_EQ(channel->sent(), channel->acks().size()) << "ResultAcks sends acknowledgements only";
}

}  // namespace
}  // namespace gyre::orchestrator
