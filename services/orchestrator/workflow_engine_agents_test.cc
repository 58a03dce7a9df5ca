// Agents through the engine: registration and one live stream per id, heartbeats and leases,
// queues, placement and why a task waits.

#include "services/orchestrator/workflow_engine.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "libs/common/limits.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_fixture.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/testing/fake_state_stores.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ReplaceableChannel;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;

TEST_F(WorkflowEngineTest, StaleQueueEntriesNeverHoldBackADispatch) {
  // A cancelled execution leaves its READY tasks' entries in the queue,
  // stale: many more than one dispatch pass looks at.
  auto agent = Connect("a1", 1);
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 2000; ++i) tasks.push_back(Task(absl::StrCat("t", i)));
  const std::string big = Start(Workflow(std::move(tasks)));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(engine_.CancelExecution(big, "").ok());
  Report("a1", first[0], v1::ATTEMPT_CANCELLED);
  EXPECT_EQ(engine_.DispatchStallForTest(), "");
  const std::string small = Start(Workflow({Task("only")}));
  auto only = agent->Take(1, absl::Seconds(2));
  ASSERT_EQ(only.size(), 1u) << "the new task waits behind stale entries";
  EXPECT_EQ(only[0].ref().execution(), small);
  EXPECT_EQ(engine_.DispatchStallForTest(), "");
}

TEST_F(WorkflowEngineTest, AReadyTaskNoAgentCanTakeSaysWhy) {
  auto channel = std::make_shared<RecordingChannel>();
  v1::Register small;
  small.set_agent_id("small");
  small.set_slots(4);
  small.add_queues("default");
  small.mutable_resources()->set_cpu(2);
  ASSERT_TRUE(engine_.RegisterAgent(small, channel).ok());
  v1::TaskSpec big = Task("big");
  big.mutable_resources()->set_cpu(4);
  v1::TaskSpec gpu = Task("gpu");
  gpu.set_queue("gpu");
  const std::string exec = Start(Workflow({big, gpu, Task("fits")}));
  ASSERT_EQ(channel->Take(1).size(), 1u) << "the task that fits runs";

  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/big")->waiting_reason(),
            "no agent serving queue \"default\" offers the labels and resources it needs (cpu 4, "
            "memory 0 bytes, gpus 0)");
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/gpu")->waiting_reason(),
            "waiting for an agent serving queue \"gpu\"");
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/fits")->waiting_reason(), "")
      << "leased: nothing to explain";

  // Its agent lost, the task is ready again: why it is (its reason) and why
  // it still waits are two different things, and both are told.
  engine_.DisconnectAgent("small", channel.get());
  engine_.ExpireLeases(absl::Now() + absl::Minutes(1));
  const v1::TaskRun requeued = *engine_.GetTaskRun(exec + "/tasks/fits");
  EXPECT_EQ(requeued.state(), v1::TASK_READY);
  EXPECT_TRUE(
      absl::StartsWith(requeued.reason(), "re-queued: its agent was lost (attempt 1: agent "))
      << requeued.reason();
  EXPECT_EQ(requeued.waiting_reason(), "waiting for an agent serving queue \"default\"");
}

TEST_F(WorkflowEngineTest, AnAgentWhoseStreamClosedIsListedDisconnected) {
  auto channel = Connect("a1");
  ASSERT_EQ(engine_.ListAgents().size(), 1u);
  EXPECT_EQ(engine_.ListAgents()[0].state(), v1::AgentInfo::CONNECTED);
  engine_.DisconnectAgent("a1", channel.get());
  ASSERT_EQ(engine_.ListAgents().size(), 1u) << "kept until the lease timeout";
  EXPECT_EQ(engine_.ListAgents()[0].state(), v1::AgentInfo::DISCONNECTED);
}

TEST_F(WorkflowEngineTest, AnAgentAwayWhenItsExecutionWasCancelledIsToldToStopOnReturn) {
  auto channel = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto a = channel->Take(1);
  ASSERT_EQ(a.size(), 1u);
  engine_.DisconnectAgent("a1", channel.get());
  ASSERT_TRUE(engine_.CancelExecution(exec, "").ok());
  EXPECT_TRUE(channel->cancels().empty()) << "no stream to send it on";
  auto back = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 8, {a[0].ref()}), back).ok());
  ASSERT_EQ(back->cancels().size(), 1u);
  EXPECT_EQ(back->cancels()[0].ref().task_id(), "a");
  EXPECT_EQ(back->pending(), 0u);
}

TEST(WorkflowEngineHeartbeatTest, ALeaseTheAgentStoppedReportingIsRequeued) {
  FakeClock clock;
  WorkflowEngine::Options options;
  options.heartbeat_interval = absl::Milliseconds(20);
  options.clock = &clock;
  WorkflowEngine engine(options);
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 2), channel).ok());
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a"), Task("b")});
  const std::string exec = engine.StartExecution(request)->name();
  auto leased = channel->Take(2);
  ASSERT_EQ(leased.size(), 2u);
  const v1::AttemptRef& kept = leased[0].ref();
  const v1::AttemptRef& dropped = leased[1].ref();
  v1::AgentMessage heartbeat;
  *heartbeat.mutable_heartbeat()->add_running() = kept;
  // Too young to judge: the assignment may not have reached the agent.
  ASSERT_TRUE(engine.HandleAgentMessage("a1", heartbeat).ok());
  EXPECT_EQ(engine.GetTaskRun(exec + "/tasks/" + dropped.task_id())->attempts_size(), 1);

  clock.Advance(absl::Milliseconds(60));  // three heartbeat intervals
  ASSERT_TRUE(engine.HandleAgentMessage("a1", heartbeat).ok());
  const v1::TaskRun lost = *engine.GetTaskRun(exec + "/tasks/" + dropped.task_id());
  EXPECT_EQ(lost.state(), v1::TASK_READY) << "re-queued";
  ASSERT_EQ(lost.attempts_size(), 1);
  EXPECT_EQ(lost.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(lost.attempts(0).error(), "agent a1 no longer reports it running");
  v1::AgentMessage credit;  // the slot it held is free again
  credit.mutable_credit()->set_tasks(1);
  ASSERT_TRUE(engine.HandleAgentMessage("a1", credit).ok());
  auto again = channel->Take(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].ref().task_id(), dropped.task_id());
  EXPECT_EQ(again[0].ref().attempt(), 2);
  EXPECT_EQ(engine.GetTaskRun(exec + "/tasks/" + kept.task_id())->attempts_size(), 1)
      << "the reported one is untouched";
}

TEST_F(WorkflowEngineTest, AgentOnlyGetsTasksOfItsQueuesThatFitItsResources) {
  auto agent = Connect("small", 4);
  v1::TaskSpec gpu = Task("train");
  gpu.set_queue("gpu");
  v1::TaskSpec big = Task("big");
  big.mutable_resources()->set_gpus(1);
  Start(Workflow({gpu, big, Task("small")}));
  auto tasks = agent->Take(1);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].ref().task_id(), "small");
  EXPECT_EQ(agent->pending(), 0u);
}

// Agents, queues and watchers: an agent id belongs to one live stream, an
// agent touches only what was leased to it, memory follows what is live.
class AgentStreamTest : public ::testing::Test {
 protected:
  WorkflowEngine::Options Options() {
    WorkflowEngine::Options options;
    options.lease_timeout = absl::Seconds(30);
    options.heartbeat_interval = absl::Milliseconds(200);
    options.clock = &clock_;
    return options;
  }

  std::string Start(v1::WorkflowDefinition def) {
    absl::StatusOr<v1::Execution> execution = engine_.StartExecution(StartRequest(std::move(def)));
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

  FakeClock clock_;  // before the engine, which reads it
  WorkflowEngine engine_{Options()};
};

TEST_F(AgentStreamTest, ALiveIdIsRefusedAndASilentStreamIsToldAndReplaced) {
  auto real = std::make_shared<ReplaceableChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 2), real).ok());
  const std::string exec = Start(Workflow({Task("a")}));
  auto leased = real->Take(1);
  ASSERT_EQ(leased.size(), 1u);

  // The real agent is heard from (a heartbeat), then the impostor comes.
  v1::AgentMessage heartbeat;
  *heartbeat.mutable_heartbeat()->add_running() = leased[0].ref();
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", heartbeat, real.get()).ok());
  auto impostor = std::make_shared<ReplaceableChannel>();
  absl::StatusOr<v1::Registered> refused = engine_.RegisterAgent(Registration("a1", 2), impostor);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "connected on another stream"));
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/a")->state(), v1::TASK_LEASED) << "untouched";
  EXPECT_EQ(real->replaced(), "");

  // Silent for over two heartbeat intervals (and 500 ms): a half-open stream.
  clock_.Advance(absl::Milliseconds(800));
  auto back = std::make_shared<ReplaceableChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 2, {leased[0].ref()}), back).ok());
  EXPECT_TRUE(absl::StrContains(real->replaced(), "registered again")) << real->replaced();
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/a")->attempts_size(), 1) << "the lease is kept";
  // What still comes on the old stream is refused; the new one is heard.
  EXPECT_TRUE(absl::IsFailedPrecondition(engine_.HandleAgentMessage("a1", heartbeat, real.get())));
  EXPECT_TRUE(engine_.HandleAgentMessage("a1", heartbeat, back.get()).ok());
}

TEST_F(AgentStreamTest, AttemptNumbersFromAnAgentAreBounded) {
  const std::string exec = Start(Workflow({Task("a")}));
  v1::AttemptRef huge;
  huge.set_execution(exec);
  huge.set_task_id("a");
  huge.set_attempt(std::numeric_limits<int64_t>::max());
  auto channel = std::make_shared<RecordingChannel>();
  EXPECT_TRUE(absl::IsInvalidArgument(
      engine_.RegisterAgent(Registration("a1", 1, {huge}), channel).status()));
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 1), channel).ok());
  v1::AgentMessage heartbeat;
  *heartbeat.mutable_heartbeat()->add_running() = huge;
  EXPECT_TRUE(absl::IsInvalidArgument(engine_.HandleAgentMessage("a1", heartbeat)));
  auto leased = channel->Take(1);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0].ref().attempt(), 1);
}

TEST_F(AgentStreamTest, RunningRefsOfTasksNeverLeasedToTheAgentAreOnlyCancelled) {
  // Outside a restart, no attempt number is taken from what an agent says.
  v1::TaskSpec elsewhere = Task("a");
  elsewhere.set_queue("elsewhere");
  const std::string exec = Start(Workflow({elsewhere}));
  v1::AttemptRef next;
  next.set_execution(exec);
  next.set_task_id("a");
  next.set_attempt(1);
  auto rogue = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("rogue", 1, {next}), rogue).ok());
  EXPECT_EQ(rogue->cancels().size(), 1u);
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/a")->attempts_size(), 0);
  v1::Register served = Registration("served", 1);
  served.set_queues(0, "elsewhere");
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(served, channel).ok());
  auto leased = channel->Take(1);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0].ref().attempt(), 1);
}

TEST_F(AgentStreamTest, ALogChunkIsOnlyForAnAttemptLeasedToThatAgent) {
  auto owner = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("owner", 1), owner).ok());
  auto rogue = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("rogue", 1), rogue).ok());
  const std::string exec = Start(Workflow({Task("a")}));
  std::vector<v1::TaskAssignment> leased = owner->Take(1, absl::Milliseconds(100));
  std::string holder = "owner";
  if (leased.empty()) {
    leased = rogue->Take(1);
    holder = "rogue";
  }
  ASSERT_EQ(leased.size(), 1u);
  const std::string other = holder == "owner" ? "rogue" : "owner";
  auto watch = engine_.Watch(exec, 1, /*include_logs=*/true);
  ASSERT_TRUE(watch.ok());
  watch.value()->Next(absl::ZeroDuration());  // the history so far
  v1::AgentMessage chunk;
  *chunk.mutable_log_chunk()->mutable_ref() = leased[0].ref();
  chunk.mutable_log_chunk()->mutable_chunk()->set_data("injected");
  ASSERT_TRUE(engine_.HandleAgentMessage(other, chunk).ok());
  EXPECT_TRUE(watch.value()->Next(absl::Milliseconds(50)).events.empty());
  chunk.mutable_log_chunk()->mutable_chunk()->set_data("genuine");
  ASSERT_TRUE(engine_.HandleAgentMessage(holder, chunk).ok());
  EventChunk got = watch.value()->Next(absl::Seconds(1));
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0]->log().chunk().data(), "genuine");
  engine_.Unwatch(*watch);
}

TEST_F(AgentStreamTest, AgentIdsLabelsAndQueuesAreValidated) {
  auto channel = std::make_shared<RecordingChannel>();
  for (const std::string& id :
       std::vector<std::string>{"a/b", "agents/a", "A1", "", std::string(64, 'a')}) {
    EXPECT_TRUE(
        absl::IsInvalidArgument(engine_.RegisterAgent(Registration(id, 1), channel).status()))
        << id;
  }
  v1::Register labelled = Registration("a1", 1);
  (*labelled.mutable_labels())["zone"] = std::string(64, 'v');
  EXPECT_TRUE(absl::IsInvalidArgument(engine_.RegisterAgent(labelled, channel).status()));
  v1::Register many = Registration("a1", 1);
  for (int i = 0; i < 65; ++i) many.add_queues(absl::StrCat("q", i));
  EXPECT_TRUE(absl::IsInvalidArgument(engine_.RegisterAgent(many, channel).status()));
  EXPECT_TRUE(engine_.ListAgents().empty());
  EXPECT_EQ(engine_.QueueCount(), 0u);
  EXPECT_TRUE(engine_.RegisterAgent(Registration(std::string(63, 'a'), 1), channel).ok());
}

TEST_F(AgentStreamTest, QueueNamesAreCappedAndForgottenWhenNobodyUsesThem) {
  std::vector<std::shared_ptr<RecordingChannel>> channels;
  int accepted = 0;
  absl::Status refused;
  for (int agent = 0; agent < 70; ++agent) {
    v1::Register registration = Registration(absl::StrCat("a", agent), 1);
    registration.clear_queues();
    for (int i = 0; i < WorkflowEngine::kMaxQueuesPerAgent; ++i) {
      registration.add_queues(absl::StrCat("a", agent, "-q", i));
    }
    channels.push_back(std::make_shared<RecordingChannel>());
    absl::StatusOr<v1::Registered> registered =
        engine_.RegisterAgent(registration, channels.back());
    if (!registered.ok()) {
      refused = registered.status();
      break;
    }
    ++accepted;
  }
  EXPECT_EQ(accepted, 64);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_EQ(engine_.QueueCount(), WorkflowEngine::kMaxQueues);
  // A workflow naming a new queue is refused too, with why.
  absl::StatusOr<v1::Execution> start = [&] {
    v1::StartExecutionRequest request;
    *request.mutable_definition() = Workflow({Task("a")});
    return engine_.StartExecution(request);
  }();
  EXPECT_TRUE(absl::IsResourceExhausted(start.status())) << start.status();
  // The agents go (declared dead): their names are forgotten.
  for (int agent = 0; agent < accepted; ++agent) {
    engine_.DisconnectAgent(absl::StrCat("a", agent), channels[agent].get());
  }
  engine_.ExpireLeases(clock_.Now() + absl::Minutes(1));
  EXPECT_EQ(engine_.QueueCount(), 0u);
  EXPECT_TRUE(engine_.ListQueues().empty());
  EXPECT_EQ(Start(Workflow({Task("a")})).empty(), false);
  EXPECT_EQ(engine_.QueueCount(), 1u) << "\"default\", named by a task, stays";
}

TEST_F(AgentStreamTest, AWatcherOfAllExecutionsThatFallsBehindIsCutOff) {
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 4096), channel).ok());
  auto watch = engine_.Watch("", 0);
  ASSERT_TRUE(watch.ok());
  bool cut = false;
  (*watch)->OnCutOff([&cut] { cut = true; });
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 5000; ++i) tasks.push_back(Task(absl::StrCat("t", i)));
  Start(Workflow(tasks));  // 5000 READY events at least, none read
  EXPECT_TRUE(cut);
  bool last = false;
  EventChunk chunk = (*watch)->Next(absl::ZeroDuration(), &last);
  EXPECT_TRUE(chunk.events.empty()) << "what it held was freed";
  EXPECT_TRUE(last);
  EXPECT_TRUE(absl::IsResourceExhausted((*watch)->error())) << (*watch)->error();
  EXPECT_TRUE(absl::StrContains((*watch)->error().message(), "fell behind"));
  engine_.Unwatch(*watch);
}

}  // namespace
}  // namespace gyre::orchestrator

namespace gyre::orchestrator {
namespace {

using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::WorkflowEngineTest;

TEST_F(WorkflowEngineTest, TasksDeclaringNoResourcesArePlacedWithTheirPredictionCappedAtTheOffer) {
  auto channel = std::make_shared<RecordingChannel>();
  gyre::v1::Register agent;
  agent.set_agent_id("a1");
  agent.set_slots(4);
  agent.add_queues("default");
  agent.mutable_resources()->set_cpu(4);
  agent.mutable_resources()->set_memory_bytes(int64_t{1} << 30);
  ASSERT_TRUE(engine_.RegisterAgent(agent, channel).ok());
  gyre::v1::TaskSpec declared = Task("declared");
  declared.add_depends_on("gate");
  declared.mutable_resources()->set_cpu(1);
  gyre::v1::TaskSpec x = Task("x"), y = Task("y");
  x.add_depends_on("gate");
  y.add_depends_on("gate");
  const std::string exec = Start(Workflow({Task("gate"), x, y, declared}));
  auto gate = channel->Take(1);
  ASSERT_EQ(gate.size(), 1u);

  // Each predicted at 10 GiB (p90): more than the agent has, so each takes
  // its whole memory (capped), and they run one at a time.
  TaskPrediction big;
  big.duration_seconds = 2;
  big.cpu = 0.5;
  big.memory_bytes = int64_t{10} << 30;
  engine_.ApplyPredictions(exec, {{"x", big}, {"y", big}, {"declared", big}, {"ghost", big}});
  Report("a1", gate[0]);
  const gyre::v1::TaskState xs = StateOf(exec, "x"), ys = StateOf(exec, "y");
  EXPECT_TRUE((xs == gyre::v1::TASK_LEASED) != (ys == gyre::v1::TASK_LEASED))
      << "exactly one of x and y fits: " << xs << " " << ys;
  // A task that declares resources keeps them (and gets no prediction).
  EXPECT_EQ(StateOf(exec, "declared"), gyre::v1::TASK_LEASED);
  EXPECT_FALSE(engine_.GetTaskRun(exec + "/tasks/declared")->has_predicted_duration());
  EXPECT_EQ(engine_.DispatchStallForTest(), "");

  const gyre::v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/x");
  EXPECT_EQ(run.predicted_duration().seconds(), 2);
  EXPECT_EQ(run.predicted_memory_bytes(), int64_t{10} << 30);
  EXPECT_DOUBLE_EQ(run.predicted_cpu(), 0.5);

  // The first gives back exactly what it took: the second runs, then all end.
  auto leased = channel->Take(2);
  ASSERT_EQ(leased.size(), 2u);  // the first of x/y and "declared"
  for (const auto& task : leased) Report("a1", task);
  auto second = channel->Take(1);
  ASSERT_EQ(second.size(), 1u);
  Report("a1", second[0]);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), gyre::v1::EXECUTION_SUCCEEDED);
}

}  // namespace
}  // namespace gyre::orchestrator
