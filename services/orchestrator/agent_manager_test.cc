#include "services/orchestrator/agent_manager.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/orchestrator/engine_metrics.h"
#include "services/orchestrator/queue_table.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ReplaceableChannel;

class AgentManagerTest : public ::testing::Test {
 protected:
  absl::StatusOr<AgentEntry*> Register(const v1::Register& registration,
                                       std::shared_ptr<AgentChannel> channel) {
    reconnected_ = false;
    took_over_.clear();
    return agents_.Register(registration, std::move(channel), now_, &reconnected_, &took_over_);
  }

  EngineMetrics metrics_{nullptr};
  QueueTable queues_{metrics_};
  AgentManager agents_{queues_, absl::Seconds(5)};
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  bool reconnected_ = false;
  std::string took_over_;
};

TEST_F(AgentManagerTest, RegistrationChecksRejectWhatAnAgentMayNotRegister) {
  EXPECT_TRUE(AgentManager::CheckRegistration(Registration("a1", 4)).ok());

  v1::Register no_slots = Registration("a1", 0);
  EXPECT_EQ(AgentManager::CheckRegistration(no_slots).code(), absl::StatusCode::kInvalidArgument);
  v1::Register long_id = Registration(std::string(AgentManager::kMaxAgentIdLength + 1, 'a'), 4);
  EXPECT_EQ(AgentManager::CheckRegistration(long_id).code(), absl::StatusCode::kInvalidArgument);
  v1::Register empty_queue = Registration("a1", 4);
  empty_queue.add_queues("");
  EXPECT_EQ(AgentManager::CheckRegistration(empty_queue).code(),
            absl::StatusCode::kInvalidArgument);
  v1::Register long_label = Registration("a1", 4);
  (*long_label.mutable_labels())["zone"] = std::string(AgentManager::kMaxLabelLength + 1, 'z');
  EXPECT_EQ(AgentManager::CheckRegistration(long_label).code(), absl::StatusCode::kInvalidArgument);
  v1::Register negative_credit = Registration("a1", 4);
  negative_credit.set_initial_credit(-1);
  EXPECT_EQ(AgentManager::CheckRegistration(negative_credit).code(),
            absl::StatusCode::kInvalidArgument);

  v1::AttemptRef ref;
  ref.set_execution("executions/e");
  ref.set_task_id("t");
  ref.set_attempt(0);
  EXPECT_EQ(AgentManager::CheckAttemptRef(ref, "heartbeat").code(),
            absl::StatusCode::kInvalidArgument);
  ref.set_attempt(AgentManager::kMaxAttempt + 1);
  absl::Status too_big = AgentManager::CheckAttemptRef(ref, "heartbeat");
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(too_big.message(), "heartbeat")) << too_big;
  ref.set_attempt(AgentManager::kMaxAttempt);
  EXPECT_TRUE(AgentManager::CheckAttemptRef(ref, "heartbeat").ok());
}

TEST_F(AgentManagerTest, AnIdHasOneLiveStreamAndASilentOneIsTakenOver) {
  auto first = std::make_shared<ReplaceableChannel>();
  absl::StatusOr<AgentEntry*> agent = Register(Registration("a1", 4), first);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_FALSE(reconnected_);
  EXPECT_EQ((*agent)->credit, 4);  // credit defaults to the slots
  EXPECT_EQ(queues_.at(queues_.IndexOf("default")).agents, 1);

  // Heard from within two heartbeat intervals: a second stream is refused.
  now_ += absl::Seconds(9);
  auto second = std::make_shared<ReplaceableChannel>();
  absl::StatusOr<AgentEntry*> refused = Register(Registration("a1", 4), second);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(first->replaced(), "");
  EXPECT_EQ(agents_.Find("a1")->channel, first);

  // Silent past two intervals: the old stream is told and the new one takes over.
  now_ += absl::Seconds(2);
  absl::StatusOr<AgentEntry*> taken = Register(Registration("a1", 4), second);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_TRUE(reconnected_);
  EXPECT_TRUE(absl::StrContains(took_over_, "silent")) << took_over_;
  EXPECT_TRUE(absl::StrContains(first->replaced(), "silent")) << first->replaced();
  EXPECT_EQ((*taken)->channel, second);
  EXPECT_EQ(*taken, *agent);  // the same entry, not a second agent
  EXPECT_EQ(agents_.all().size(), 1u);
  EXPECT_EQ(queues_.at(queues_.IndexOf("default")).agents, 1);

  // A disconnected agent's id may register again at once.
  agents_.Disconnect(**taken);
  EXPECT_EQ((*taken)->credit, 0);
  EXPECT_TRUE(Register(Registration("a1", 4), std::make_shared<ReplaceableChannel>()).ok());
}

TEST_F(AgentManagerTest, ReserveAndUnreserveMoveTheFreeResources) {
  v1::Register registration = Registration("a1", 2);
  registration.mutable_resources()->set_cpu(4);
  registration.mutable_resources()->set_memory_bytes(1000);
  registration.mutable_resources()->set_gpus(1);
  absl::StatusOr<AgentEntry*> found = Register(registration, nullptr);
  ASSERT_TRUE(found.ok()) << found.status();
  AgentEntry& agent = **found;

  v1::Resources need;
  need.set_cpu(3);
  need.set_memory_bytes(600);
  need.set_gpus(1);
  EXPECT_TRUE(agent.offers(need));
  EXPECT_TRUE(agent.has_room_for(need));
  AgentManager::Reserve(agent, need);
  EXPECT_DOUBLE_EQ(agent.free_cpu, 1);
  EXPECT_EQ(agent.free_memory, 400);
  EXPECT_EQ(agent.free_gpus, 0);
  // It still offers that much, but has no room for it now.
  EXPECT_TRUE(agent.offers(need));
  EXPECT_FALSE(agent.has_room_for(need));
  AgentManager::Unreserve(agent, need);
  EXPECT_TRUE(agent.has_room_for(need));
  EXPECT_DOUBLE_EQ(agent.free_cpu, 4);
  EXPECT_EQ(agent.free_memory, 1000);

  // Beyond its whole offer, it never fits.
  v1::Resources too_much = need;
  too_much.set_gpus(2);
  EXPECT_FALSE(agent.offers(too_much));
}

TEST_F(AgentManagerTest, AnOfferOfZeroMeansAsMuchAsAskedAndLabelsMatchExactly) {
  v1::Register registration = Registration("a1", 2);
  (*registration.mutable_labels())["zone"] = "eu";
  (*registration.mutable_labels())["disk"] = "ssd";
  absl::StatusOr<AgentEntry*> found = Register(registration, nullptr);
  ASSERT_TRUE(found.ok()) << found.status();
  const AgentEntry& agent = **found;

  v1::Resources need;
  need.set_cpu(64);
  need.set_memory_bytes(int64_t{1} << 40);
  EXPECT_TRUE(agent.offers(need));  // no cpu or memory offer: unbounded
  need.set_gpus(1);
  EXPECT_FALSE(agent.offers(need));  // but no GPU unless offered

  google::protobuf::Map<std::string, std::string> selector;
  EXPECT_TRUE(agent.matches(selector));
  selector["zone"] = "eu";
  EXPECT_TRUE(agent.matches(selector));
  selector["zone"] = "us";
  EXPECT_FALSE(agent.matches(selector));
  selector["zone"] = "eu";
  selector["gpu"] = "a100";
  EXPECT_FALSE(agent.matches(selector));
}

TEST_F(AgentManagerTest, FreeSlotsFollowLeasesAndRemoveForgetsTheQueues) {
  v1::Register registration = Registration("a1", 2);
  registration.add_queues("gpu");
  registration.add_queues("gpu");  // listed twice, counted once
  absl::StatusOr<AgentEntry*> found =
      Register(registration, std::make_shared<ReplaceableChannel>());
  ASSERT_TRUE(found.ok()) << found.status();
  AgentEntry& agent = **found;
  EXPECT_EQ(agent.queues.size(), 2u);
  EXPECT_EQ(queues_.at(queues_.IndexOf("gpu")).agents, 1);
  EXPECT_TRUE(agent.serves(queues_.IndexOf("gpu")));

  EXPECT_EQ(agent.free_slots(), 2);
  agent.leases.insert({0, 1});
  EXPECT_EQ(agent.free_slots(), 1);
  EXPECT_EQ(agents_.ConnectedAndFreeSlots(), std::make_pair(int64_t{1}, int64_t{1}));
  agent.leases.insert({0, 2});
  agent.leases.insert({0, 3});
  EXPECT_EQ(agent.free_slots(), 0);  // never negative

  ASSERT_EQ(agents_.List().size(), 1u);
  EXPECT_EQ(agents_.List()[0].state(), v1::AgentInfo::CONNECTED);
  agents_.Disconnect(agent);
  EXPECT_EQ(agents_.List()[0].state(), v1::AgentInfo::DISCONNECTED);

  agents_.Remove("a1");
  EXPECT_EQ(agents_.Find("a1"), nullptr);
  EXPECT_EQ(queues_.size(), 0u);  // nobody uses "default" or "gpu" any more
}

}  // namespace
}  // namespace gyre::orchestrator
