#include "services/orchestrator/dispatcher.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_components.h"
#include "services/orchestrator/testing/fake_agent_channel.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::EngineComponents;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

// The in-memory store, counting the Append calls and the records each held.
class CountingStore : public StateStore {
 public:
  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override {
    return inner_->Load(restore, apply);
  }
  void Append(absl::Span<const v1::StateRecord> records, Completion done) override {
    {
      absl::MutexLock lock(&mutex_);
      appends_.push_back(records.size());
    }
    inner_->Append(records, std::move(done));
  }
  uint64_t last_position() override { return inner_->last_position(); }
  absl::Status AwaitDurable(uint64_t position) override { return inner_->AwaitDurable(position); }
  absl::Status WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) override {
    return inner_->WriteSnapshot(position, snapshot);
  }
  std::vector<size_t> appends() {
    absl::MutexLock lock(&mutex_);
    return appends_;
  }

 private:
  std::unique_ptr<StateStore> inner_ = NewMemoryStateStore(NewMemoryStateStoreData());
  absl::Mutex mutex_;
  std::vector<size_t> appends_ ABSL_GUARDED_BY(mutex_);
};

class DispatcherTest : public ::testing::Test {
 protected:
  struct Agent {
    AgentEntry* entry = nullptr;
    std::shared_ptr<RecordingChannel> channel;
  };
  // Connects `registration` with no credit yet (Dispatch gives it).
  Agent Connect(v1::Register registration) {
    registration.set_initial_credit(0);
    Agent agent{nullptr, std::make_shared<RecordingChannel>()};
    agent.entry = c_.Connect(registration, agent.channel);
    if (agent.entry != nullptr) agent.entry->credit = 0;
    return agent;
  }
  std::vector<v1::TaskAssignment> Dispatch(Agent& agent, int credit) {
    return c_.Dispatch(*agent.entry, *agent.channel, credit);
  }

  EngineComponents c_;
};

TEST_F(DispatcherTest, HigherPriorityIsLeasedFirst) {
  ExecutionEntry& low = c_.Start(Workflow({Task("low")}), {}, /*priority=*/10);
  v1::TaskSpec urgent = Task("urgent");
  urgent.set_priority(95);
  ExecutionEntry& mid = c_.Start(Workflow({Task("mid"), urgent}), {}, /*priority=*/60);
  Agent agent = Connect(Registration("a1", 8));
  ASSERT_NE(agent.entry, nullptr);

  std::vector<v1::TaskAssignment> first = Dispatch(agent, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "urgent");
  std::vector<v1::TaskAssignment> second = Dispatch(agent, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].ref().task_id(), "mid");
  EXPECT_EQ(second[0].ref().execution(), mid.name());
  std::vector<v1::TaskAssignment> third = Dispatch(agent, 1);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].ref().execution(), low.name());
  EXPECT_TRUE(Dispatch(agent, 1).empty());
}

TEST_F(DispatcherTest, CreditAndFreeSlotsBoundWhatAnAgentGets) {
  ExecutionEntry& exec =
      c_.Start(Workflow({Task("t1"), Task("t2"), Task("t3"), Task("t4"), Task("t5")}));
  Agent agent = Connect(Registration("a1", 2));
  // Credit 5 but 2 slots: 2 leases, 3 credit left.
  EXPECT_EQ(Dispatch(agent, 5).size(), 2u);
  EXPECT_EQ(agent.entry->credit, 3);
  EXPECT_EQ(agent.entry->leases.size(), 2u);
  EXPECT_EQ(agent.entry->free_slots(), 0);
  EXPECT_EQ(exec.ready, 3);
  EXPECT_EQ(c_.queues.at(exec.tasks[0].queue).running, 2);
  EXPECT_EQ(c_.queues.at(exec.tasks[0].queue).queued, 3);

  // A slot frees: one more, though it has credit for three.
  std::vector<v1::TaskAssignment> none = Dispatch(agent, 0);
  EXPECT_TRUE(none.empty());
  Agent wide = Connect(Registration("a2", 8));
  // Slots to spare but credit for one.
  EXPECT_EQ(Dispatch(wide, 1).size(), 1u);
  EXPECT_EQ(wide.entry->credit, 0);
  EXPECT_EQ(exec.ready, 2);
}

TEST_F(DispatcherTest, LabelsAndResourcesAreRespectedAndTheWaitingReasonSaysWhy) {
  v1::TaskSpec big = Task("big");
  (*big.mutable_agent_selector())["zone"] = "eu";
  big.mutable_resources()->set_cpu(4);
  big.mutable_resources()->set_memory_bytes(1000);
  ExecutionEntry& exec = c_.Start(Workflow({big}));
  const TaskEntry& task = exec.tasks[0];
  EXPECT_EQ(c_.dispatcher.WaitingReason(exec, task),
            "waiting for an agent serving queue \"default\"");

  v1::Register us = Registration("us", 4);
  (*us.mutable_labels())["zone"] = "us";
  us.mutable_resources()->set_cpu(16);
  Agent wrong_zone = Connect(us);
  v1::Register small = Registration("small", 4);
  (*small.mutable_labels())["zone"] = "eu";
  small.mutable_resources()->set_cpu(2);
  Agent too_small = Connect(small);
  EXPECT_TRUE(Dispatch(wrong_zone, 4).empty());
  EXPECT_TRUE(Dispatch(too_small, 4).empty());
  const std::string reason = c_.dispatcher.WaitingReason(exec, task);
  EXPECT_TRUE(absl::StrContains(reason, "offers the labels and resources it needs (cpu 4"))
      << reason;

  v1::Register fits = Registration("fits", 4);
  (*fits.mutable_labels())["zone"] = "eu";
  fits.mutable_resources()->set_cpu(6);
  fits.mutable_resources()->set_memory_bytes(4000);
  Agent right = Connect(fits);
  EXPECT_EQ(c_.dispatcher.WaitingReason(exec, task), "");  // it waits its turn
  std::vector<v1::TaskAssignment> got = Dispatch(right, 4);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].resources().cpu(), 4);
  // Reserved until the lease ends.
  EXPECT_DOUBLE_EQ(right.entry->free_cpu, 2);
  EXPECT_EQ(right.entry->free_memory, 3000);
  EXPECT_EQ(task.state, v1::TASK_LEASED);
  EXPECT_EQ(task.agent, "fits");
}

TEST_F(DispatcherTest, TheLeasesOfADispatchAreRecordedInOneAppend) {
  CountingStore store;
  EngineComponents::Options options;
  options.store = &store;
  EngineComponents c(options);
  ExecutionEntry& exec = c.Start(Workflow({Task("t1"), Task("t2"), Task("t3")}));
  const size_t before = store.appends().size();
  auto channel = std::make_shared<RecordingChannel>();
  v1::Register registration = Registration("a1", 8);
  AgentEntry* agent = c.Connect(registration, channel);
  ASSERT_NE(agent, nullptr);
  agent->credit = 0;
  ASSERT_EQ(c.Dispatch(*agent, *channel, 3).size(), 3u);
  std::vector<size_t> appends = store.appends();
  ASSERT_EQ(appends.size(), before + 1);
  EXPECT_EQ(appends.back(), 3u);
  EXPECT_EQ(exec.running, 3);
  // One assignment message carried all three.
  EXPECT_EQ(channel->sent(), 1u);
}

// The scheduler placed t1 on a2 (RankAndPlace's Placement.agent). a1's walk
// leaves t1 to a2, which can take it now, and a2 gets its turn at once.
TEST_F(DispatcherTest, APlacementHintLeavesTheTaskToTheNamedAgentWhenItHasRoom) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1"), Task("t2")}));
  Agent a1 = Connect(Registration("a1", 1));
  Agent a2 = Connect(Registration("a2", 1));
  ASSERT_NE(a1.entry, nullptr);
  ASSERT_NE(a2.entry, nullptr);
  const uint32_t t1 = EngineComponents::TaskIndex(exec, "t1");
  c_.dispatcher.SetPlacementHints({{exec.index, t1, exec.tasks[t1].generation, "a2"}});
  a2.entry->credit = 1;  // a2 can take a task, but has not walked the queue yet

  std::vector<v1::TaskAssignment> to_a1 = Dispatch(a1, 1);
  ASSERT_EQ(to_a1.size(), 1u);
  EXPECT_EQ(to_a1[0].ref().task_id(), "t2") << "t1 is left to a2";
  std::vector<v1::TaskAssignment> to_a2 = a2.channel->Take(1);
  ASSERT_EQ(to_a2.size(), 1u);
  EXPECT_EQ(to_a2[0].ref().task_id(), "t1") << "a2 got its turn in the same dispatch";
}

// The named agent has no free slot: the hint is moot and the local order
// decides (a1 takes t1, the first in the queue).
TEST_F(DispatcherTest, APlacementHintIsIgnoredWhenTheNamedAgentCannotTakeTheTask) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1"), Task("t2")}));
  Agent a1 = Connect(Registration("a1", 1));
  Agent a2 = Connect(Registration("a2", 1));
  const uint32_t t1 = EngineComponents::TaskIndex(exec, "t1");
  c_.dispatcher.SetPlacementHints({{exec.index, t1, exec.tasks[t1].generation, "a2"}});
  // a2 has no credit: it cannot take anything now.
  std::vector<v1::TaskAssignment> to_a1 = Dispatch(a1, 1);
  ASSERT_EQ(to_a1.size(), 1u);
  EXPECT_EQ(to_a1[0].ref().task_id(), "t1");
  // A hint for another generation of the entry (re-queued since) is stale.
  const uint32_t t2 = EngineComponents::TaskIndex(exec, "t2");
  c_.dispatcher.SetPlacementHints(
      {{exec.index, t2, static_cast<uint16_t>(exec.tasks[t2].generation + 1), "a2"}});
  a2.entry->credit = 1;
  Agent a3 = Connect(Registration("a3", 1));
  std::vector<v1::TaskAssignment> to_a3 = Dispatch(a3, 1);
  ASSERT_EQ(to_a3.size(), 1u);
  EXPECT_EQ(to_a3[0].ref().task_id(), "t2");
}

}  // namespace
}  // namespace gyre::orchestrator
