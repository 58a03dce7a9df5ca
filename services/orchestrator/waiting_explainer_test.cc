#include "services/orchestrator/waiting_explainer.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "services/orchestrator/proto_time.h"
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

class WaitingExplainerTest : public ::testing::Test {
 protected:
  WaitingExplainerTest() = default;
  explicit WaitingExplainerTest(EngineComponents::Options options) : c_(std::move(options)) {}

  struct Agent {
    AgentEntry* entry = nullptr;
    std::shared_ptr<RecordingChannel> channel;
  };
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
  std::optional<v1::WaitingExplanation> Explain(const ExecutionEntry& exec,
                                                const std::string& task_id) {
    WaitingExplainer explainer(c_.executions, c_.queues, c_.agents, c_.dispatcher.pools(),
                               c_.clock.Now());
    return explainer.Explain(exec, EngineComponents::TaskIndex(exec, task_id));
  }
  // The task's current attempt, as its agent would name it in a result.
  static v1::AttemptRef Ref(const ExecutionEntry& exec, const std::string& task_id) {
    v1::AttemptRef ref;
    ref.set_execution(exec.name());
    ref.set_task_id(task_id);
    ref.set_attempt(exec.tasks[EngineComponents::TaskIndex(exec, task_id)].attempt);
    return ref;
  }

  EngineComponents c_;
};

TEST_F(WaitingExplainerTest, NamesTheDependenciesNotYetSucceededAndTheirStates) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("a"), Task("b"), Task("c", {"a", "b"})}));
  Agent agent = Connect(Registration("a1", 1));
  ASSERT_EQ(Dispatch(agent, 1).size(), 1u);  // a runs, b stays ready

  std::optional<v1::WaitingExplanation> why = Explain(exec, "c");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::WAITING_ON_DEPENDENCIES);
  ASSERT_EQ(why->waiting_on_size(), 2);
  EXPECT_EQ(why->waiting_on(0).task_id(), "a");
  EXPECT_EQ(why->waiting_on(0).state(), v1::TASK_LEASED);
  EXPECT_EQ(why->waiting_on(1).task_id(), "b");
  EXPECT_EQ(why->waiting_on(1).state(), v1::TASK_READY);
  EXPECT_EQ(why->message(), "waiting on 2 dependencies: a (LEASED), b (READY)");

  ASSERT_TRUE(c_.Report("a1", Ref(exec, "a")));
  why = Explain(exec, "c");
  ASSERT_TRUE(why.has_value());
  ASSERT_EQ(why->waiting_on_size(), 1);
  EXPECT_EQ(why->waiting_on(0).task_id(), "b");
  EXPECT_FALSE(Explain(exec, "a").has_value());  // succeeded
}

TEST_F(WaitingExplainerTest, NoAgentServesTheQueue) {
  v1::TaskSpec gpu = Task("train");
  gpu.set_queue("gpu");
  ExecutionEntry& exec = c_.Start(Workflow({gpu}));
  Connect(Registration("cpu-1", 4));  // serves "default" only

  std::optional<v1::WaitingExplanation> why = Explain(exec, "train");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::NO_MATCHING_AGENT);
  EXPECT_EQ(why->failing_requirement(), "queue \"gpu\"");
  EXPECT_EQ(why->message(), "no connected agent serves queue \"gpu\"");
}

TEST_F(WaitingExplainerTest, NamesTheLabelNoAgentMatchesAndTheClosestAgent) {
  v1::TaskSpec task = Task("train");
  (*task.mutable_agent_selector())["gpu"] = "a100";
  ExecutionEntry& exec = c_.Start(Workflow({task}));
  v1::Register t4 = Registration("t4-box", 2);
  (*t4.mutable_labels())["gpu"] = "t4";
  Connect(t4);
  v1::Register plain = Registration("plain", 2);
  plain.mutable_resources()->set_gpus(0);
  Connect(plain);

  std::optional<v1::WaitingExplanation> why = Explain(exec, "train");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::NO_MATCHING_AGENT);
  EXPECT_EQ(why->failing_requirement(), "label gpu=a100");
  EXPECT_TRUE(absl::StrContains(why->message(), "label gpu=a100")) << why->message();
  // Both fail one requirement; the first found (ids in order) is named
  // with what it offers.
  EXPECT_EQ(why->best_candidate().agent(), "agents/plain");
  EXPECT_TRUE(absl::StrContains(why->message(), "it has no label gpu")) << why->message();
}

TEST_F(WaitingExplainerTest, NamesTheResourceNoAgentOffers) {
  v1::TaskSpec task = Task("big");
  task.mutable_resources()->set_cpu(8);
  ExecutionEntry& exec = c_.Start(Workflow({task}));
  v1::Register small = Registration("small", 2);
  small.mutable_resources()->set_cpu(4);
  Connect(small);

  std::optional<v1::WaitingExplanation> why = Explain(exec, "big");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::NO_MATCHING_AGENT);
  EXPECT_EQ(why->failing_requirement(), "cpu 8");
  EXPECT_EQ(why->best_candidate().agent(), "agents/small");
  EXPECT_EQ(why->best_candidate().cpu(), 4);
  EXPECT_TRUE(absl::StrContains(why->message(), "cpu 8 (it offers 4)")) << why->message();
}

TEST_F(WaitingExplainerTest, SlotsBusyGivesPositionAndAnEstimatedStartFromRecordedDurations) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1"), Task("t2"), Task("t3"), Task("t4")}));
  Agent agent = Connect(Registration("a1", 1));
  ASSERT_EQ(Dispatch(agent, 1).size(), 1u);  // t1
  c_.Advance(absl::Seconds(10));
  ASSERT_TRUE(c_.Report("a1", Ref(exec, "t1")));
  // The run took 10 s (the agent reports it; set here as it would be).
  exec.tasks[EngineComponents::TaskIndex(exec, "t1")].attempts.back().wall_time =
      absl::ToInt64Nanoseconds(absl::Seconds(10));
  ASSERT_EQ(Dispatch(agent, 1).size(), 1u);  // t2
  const absl::Time t2_leased = c_.clock.Now();
  c_.Advance(absl::Seconds(4));

  std::optional<v1::WaitingExplanation> t3 = Explain(exec, "t3");
  ASSERT_TRUE(t3.has_value());
  EXPECT_EQ(t3->kind(), v1::WaitingExplanation::SLOTS_BUSY);
  EXPECT_EQ(t3->queue_position(), 1);
  EXPECT_EQ(t3->matching_agents(), 1);
  EXPECT_EQ(t3->matching_slots(), 1);
  EXPECT_EQ(t3->best_candidate().agent(), "agents/a1");
  // t2 leased at t2_leased takes 10 s like t1: the slot frees then.
  EXPECT_EQ(FromProto(t3->estimated_start()), t2_leased + absl::Seconds(10));
  EXPECT_TRUE(absl::StrContains(t3->message(), "position 1 in queue \"default\"")) << t3->message();

  std::optional<v1::WaitingExplanation> t4 = Explain(exec, "t4");
  ASSERT_TRUE(t4.has_value());
  EXPECT_EQ(t4->queue_position(), 2);
  // t3 runs first, for 10 s too.
  EXPECT_EQ(FromProto(t4->estimated_start()), t2_leased + absl::Seconds(20));
}

TEST_F(WaitingExplainerTest, WithoutRecordedDurationsThereIsNoEstimate) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1"), Task("t2")}));
  Agent agent = Connect(Registration("a1", 1));
  ASSERT_EQ(Dispatch(agent, 1).size(), 1u);
  std::optional<v1::WaitingExplanation> why = Explain(exec, "t2");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::SLOTS_BUSY);
  EXPECT_EQ(why->queue_position(), 1);
  EXPECT_FALSE(why->has_estimated_start());
}

TEST_F(WaitingExplainerTest, AMatchingAgentWithRoomMeansItIsAboutToBeLeased) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1")}));
  Connect(Registration("a1", 2));  // no credit yet: nothing dispatched
  std::optional<v1::WaitingExplanation> why = Explain(exec, "t1");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::DISPATCHING);
  EXPECT_EQ(why->queue_position(), 1);
  EXPECT_EQ(why->best_candidate().agent(), "agents/a1");
}

TEST_F(WaitingExplainerTest, APausedExecutionsTasksSayPaused) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1"), Task("t2", {"t1"})}));
  exec.state = v1::EXECUTION_PAUSED;
  for (const char* id : {"t1", "t2"}) {
    std::optional<v1::WaitingExplanation> why = Explain(exec, id);
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->kind(), v1::WaitingExplanation::PAUSED) << id;
  }
}

TEST_F(WaitingExplainerTest, ARetrySaysWhenItsBackoffEnds) {
  v1::TaskSpec flaky = Task("flaky");
  flaky.mutable_retry()->set_max_retries(3);
  flaky.mutable_retry()->mutable_initial_backoff()->set_seconds(30);
  flaky.mutable_retry()->set_jitter(0.0001);
  ExecutionEntry& exec = c_.Start(Workflow({flaky}));
  Agent agent = Connect(Registration("a1", 1));
  ASSERT_EQ(Dispatch(agent, 1).size(), 1u);
  ASSERT_TRUE(c_.Report("a1", Ref(exec, "flaky"), v1::ATTEMPT_FAILED, "", "exit 1"));
  ASSERT_EQ(EngineComponents::StateOf(exec, "flaky"), v1::TASK_PENDING);

  std::optional<v1::WaitingExplanation> why = Explain(exec, "flaky");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::RETRY_BACKOFF);
  const absl::Duration wait = FromProto(why->retry_at()) - c_.clock.Now();
  EXPECT_GT(wait, absl::Seconds(29));
  EXPECT_LE(wait, absl::Seconds(30));
  EXPECT_TRUE(absl::StrContains(why->message(), "retry 1 of 3")) << why->message();
}

class PoolAtMaxTest : public WaitingExplainerTest {
 protected:
  static EngineComponents::Options Pools() {
    EngineComponents::Options options;
    options.pools.pools["default"].max_workers = 1;
    return options;
  }
  PoolAtMaxTest() : WaitingExplainerTest(Pools()) {}
};

TEST_F(PoolAtMaxTest, BusySlotsOfAPoolAtItsMaxSaySo) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t1"), Task("t2")}));
  Agent agent = Connect(Registration("a1", 1));
  ASSERT_EQ(Dispatch(agent, 1).size(), 1u);
  std::optional<v1::WaitingExplanation> why = Explain(exec, "t2");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->kind(), v1::WaitingExplanation::POOL_AT_MAX);
  EXPECT_EQ(why->pool_max_workers(), 1);
  EXPECT_EQ(why->queue_position(), 1);
  EXPECT_FALSE(Explain(exec, "t1").has_value());  // leased
}

}  // namespace
}  // namespace gyre::orchestrator
