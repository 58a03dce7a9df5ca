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
#include "libs/common/limits.h"
#include "libs/logging/logger.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/proto_time.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/testing/fake_state_stores.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Credit;
using ::gyre::orchestrator::testing::Declaring;
using ::gyre::orchestrator::testing::FailingStore;
using ::gyre::orchestrator::testing::MessageSizeChannel;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ReplaceableChannel;
using ::gyre::orchestrator::testing::ResultMessage;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::Writes;

class WorkflowEngineTest : public ::testing::Test {
 protected:
  WorkflowEngineTest() : engine_(Options()) {}

  static WorkflowEngine::Options Options() {
    WorkflowEngine::Options options;
    options.lease_timeout = absl::Seconds(30);
    return options;
  }

  std::shared_ptr<RecordingChannel> Connect(const std::string& id, int slots = 8) {
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine_.RegisterAgent(Registration(id, slots), channel).ok());
    return channel;
  }

  std::string Start(v1::WorkflowDefinition def,
                    const std::map<std::string, std::string>& context = {}) {
    absl::StatusOr<v1::Execution> execution =
        engine_.StartExecution(StartRequest(std::move(def), context));
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

  void Report(const std::string& agent, const v1::TaskAssignment& task,
              v1::AttemptOutcome outcome = v1::ATTEMPT_SUCCEEDED, std::string output = "",
              std::string error = "") {
    ASSERT_TRUE(engine_
                    .HandleAgentMessage(agent, ResultMessage(task.ref(), ++next_sequence_, outcome,
                                                             std::move(output), std::move(error)))
                    .ok());
    ASSERT_TRUE(engine_.HandleAgentMessage(agent, Credit(1)).ok());
  }

  v1::TaskState StateOf(const std::string& execution, const std::string& task) {
    return engine_.GetTaskRun(execution + "/tasks/" + task)->state();
  }

  WorkflowEngine engine_;
  uint64_t next_sequence_ = 0;  // results are numbered, as an agent does
};

TEST_F(WorkflowEngineTest, ResultsInOneMessageAreAppliedInOrderAndAcknowledgedTogether) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b"), Task("c", {"a"})}));
  auto first = agent->Take(2);
  ASSERT_EQ(first.size(), 2u);
  v1::AgentMessage message;
  uint64_t sequence = 0;
  for (const v1::TaskAssignment& task : first) {
    v1::TaskResult* result = message.mutable_task_results()->add_results();
    *result->mutable_ref() = task.ref();
    result->set_outcome(v1::ATTEMPT_SUCCEEDED);
    result->set_sequence(++sequence);
  }
  // A stale attempt in the same batch is acknowledged (to be forgotten), not applied.
  v1::TaskResult* stale = message.mutable_task_results()->add_results();
  *stale->mutable_ref() = first[0].ref();
  stale->mutable_ref()->set_attempt(first[0].ref().attempt() + 7);
  stale->set_outcome(v1::ATTEMPT_FAILED);
  stale->set_sequence(++sequence);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", message).ok());

  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(agent->acks(), (std::vector<uint64_t>{3})) << "one acknowledgement through the last";
  ASSERT_EQ(agent->Take(1).size(), 1u) << "c became ready once a succeeded";

  // Alone, a stale result is acknowledged at once (nothing is pending).
  v1::AgentMessage late;
  *late.mutable_task_result() = *stale;
  late.mutable_task_result()->set_sequence(++sequence);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", late).ok());
  EXPECT_EQ(agent->acks(), (std::vector<uint64_t>{3, 4}));
}

TEST_F(WorkflowEngineTest, AnUnnumberedResultIsAProtocolError) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto task = agent->Take(1);
  ASSERT_EQ(task.size(), 1u);
  v1::AgentMessage message;
  *message.mutable_task_result()->mutable_ref() = task[0].ref();
  message.mutable_task_result()->set_outcome(v1::ATTEMPT_SUCCEEDED);
  absl::Status status = engine_.HandleAgentMessage("a1", message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "task_result: sequence must be set (the agent numbers its results 1, 2, 3...)");

  v1::AgentMessage batch;
  *batch.mutable_task_results()->add_results() = message.task_result();
  batch.mutable_task_results()->mutable_results(0)->set_sequence(1);
  *batch.mutable_task_results()->add_results() = message.task_result();  // unnumbered
  status = engine_.HandleAgentMessage("a1", batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_LEASED) << "nothing of the message was applied";
  EXPECT_TRUE(agent->acks().empty());
}

TEST_F(WorkflowEngineTest, TooManyResultsInOneMessageAreAProtocolError) {
  Connect("a1");
  v1::AgentMessage message;
  for (int i = 0; i <= WorkflowEngine::kMaxResultsPerMessage; ++i) {
    message.mutable_task_results()->add_results();
  }
  const absl::Status status = engine_.HandleAgentMessage("a1", message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "task_results: 4097 results in one message; at most 4096");
}

TEST_F(WorkflowEngineTest, DiamondRunsInDependencyOrder) {
  auto agent = Connect("a1");
  const std::string exec =
      Start(Workflow({Task("a"), Task("b", {"a"}), Task("c", {"a"}), Task("d", {"b", "c"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "a");
  EXPECT_EQ(agent->pending(), 0u) << "b and c must wait for a";
  Report("a1", first[0]);
  auto middle = agent->Take(2);
  ASSERT_EQ(middle.size(), 2u);
  EXPECT_EQ(agent->pending(), 0u) << "d must wait for b and c";
  Report("a1", middle[0]);
  EXPECT_EQ(agent->pending(), 0u);
  Report("a1", middle[1]);
  auto last = agent->Take(1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].ref().task_id(), "d");
  Report("a1", last[0]);
  const v1::Execution done = *engine_.GetExecution(exec);
  EXPECT_EQ(done.state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(done.task_counts().succeeded(), 4);
}

TEST_F(WorkflowEngineTest, FailedTaskSkipsDependantsAndFailsExecution) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"}), Task("c")}));
  auto tasks = agent->Take(2);
  ASSERT_EQ(tasks.size(), 2u);
  for (const auto& task : tasks) {
    Report("a1", task, task.ref().task_id() == "a" ? v1::ATTEMPT_FAILED : v1::ATTEMPT_SUCCEEDED);
  }
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_FAILED);
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_SKIPPED);
  EXPECT_EQ(StateOf(exec, "c"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_FAILED);
}

TEST_F(WorkflowEngineTest, RetryRunsANewAttemptAfterBackoff) {
  auto agent = Connect("a1");
  v1::TaskSpec flaky = Task("flaky");
  flaky.mutable_retry()->set_max_retries(2);
  flaky.mutable_retry()->mutable_initial_backoff()->set_nanos(20'000'000);
  const std::string exec = Start(Workflow({flaky}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().attempt(), 1);
  Report("a1", first[0], v1::ATTEMPT_FAILED, "", "exit code 7");
  const v1::TaskRun waiting = *engine_.GetTaskRun(exec + "/tasks/flaky");
  EXPECT_EQ(waiting.state(), v1::TASK_PENDING) << "waiting out the backoff";
  EXPECT_TRUE(absl::StartsWith(waiting.reason(), "exit code 7; retry 1 of 2 in "))
      << waiting.reason();
  auto second = agent->Take(1);
  ASSERT_EQ(second.size(), 1u) << "the retry was never dispatched";
  EXPECT_EQ(second[0].ref().attempt(), 2);
  EXPECT_EQ(second[0].env().at("GYRE_ATTEMPT"), "2");
  Report("a1", second[0]);
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/flaky");
  EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_FAILED);
  EXPECT_EQ(run.attempts(1).outcome(), v1::ATTEMPT_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, OutputsReachDownstreamTasksAsEnvironment) {
  auto agent = Connect("a1");
  const std::string exec = Start(
      Declaring(Workflow({Writes(Task("extract"), {"ROWS", "STATS"}), Task("load", {"extract"})}),
                {"REGION"}),
      {{"REGION", "eu"}});
  auto extract = agent->Take(1);
  ASSERT_EQ(extract.size(), 1u);
  EXPECT_EQ(extract[0].env().at("REGION"), "eu");
  Report("a1", extract[0], v1::ATTEMPT_SUCCEEDED, R"({"ROWS": "42", "STATS": {"n": 1}})");
  auto load = agent->Take(1);
  ASSERT_EQ(load.size(), 1u);
  EXPECT_EQ(load[0].env().at("ROWS"), "42");
  EXPECT_EQ(load[0].env().at("STATS"), "{\"n\":1}");
  EXPECT_EQ(load[0].env().at("REGION"), "eu");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/extract");
  EXPECT_EQ(run.outputs().fields().at("ROWS").string_value(), "42");
}

TEST_F(WorkflowEngineTest, ABuiltinTaskGetsNeitherCommandNorEnvironment) {
  auto agent = Connect("a1");
  v1::TaskSpec noop = Task("noop");
  noop.clear_command();
  noop.mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  (*noop.mutable_env())["LEVEL"] = "${REGION}";
  Start(Declaring(Workflow({noop, Task("process")}), {"REGION"}), {{"REGION", "eu"}});
  auto tasks = agent->Take(2);
  ASSERT_EQ(tasks.size(), 2u);
  for (const v1::TaskAssignment& task : tasks) {
    if (task.ref().task_id() == "noop") {
      // It runs no process: nothing to build, copy or send.
      EXPECT_EQ(task.builtin().kind(), v1::BuiltinExecutor::NOOP);
      EXPECT_TRUE(task.env().empty());
      EXPECT_TRUE(task.command().empty());
    } else {
      EXPECT_FALSE(task.has_builtin());
      EXPECT_EQ(task.env().at("REGION"), "eu");
      EXPECT_EQ(task.env().at("GYRE_TASK_ID"), "process");
      EXPECT_EQ(task.command(0), "true");
    }
  }
}

TEST_F(WorkflowEngineTest, OutputThatIsNotAJsonObjectFailsTheTask) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto task = agent->Take(1);
  ASSERT_EQ(task.size(), 1u);
  Report("a1", task[0], v1::ATTEMPT_SUCCEEDED, "[1, 2]");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_NE(run.attempts(0).error().find("$GYRE_OUTPUT is not a JSON object"), std::string::npos)
      << run.attempts(0).error();
}

TEST_F(WorkflowEngineTest, EvaluatorDecisionSkipsABranch) {
  auto agent = Connect("a1");
  v1::TaskSpec judge = Writes(Task("judge"), {"VERDICT"});
  judge.set_evaluator(true);
  const std::string exec =
      Start(Workflow({judge, Task("deploy", {"judge"}), Task("rollback", {"judge"}),
                      Task("notify", {"rollback"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED,
         R"({"run": ["deploy"], "skip": ["rollback"], "context": {"VERDICT": "good"}})");
  auto next = agent->Take(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].ref().task_id(), "deploy");
  EXPECT_EQ(next[0].env().at("VERDICT"), "good");
  Report("a1", next[0]);
  EXPECT_EQ(StateOf(exec, "rollback"), v1::TASK_SKIPPED);
  EXPECT_EQ(StateOf(exec, "notify"), v1::TASK_SKIPPED);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, MalformedEvaluatorDecisionFailsWithClearMessage) {
  auto agent = Connect("a1");
  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string exec = Start(Workflow({judge, Task("deploy", {"judge"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED, R"({"run": ["deplyo"]})");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/judge");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_EQ(run.attempts(0).error(),
            "evaluator output: task \"deplyo\" is not downstream of evaluator \"judge\" (did you "
            "mean \"deploy\"?)");
}

// Outputs and decisions become the environment of the tasks downstream:
// they cannot set what makes those tasks run other code.
TEST_F(WorkflowEngineTest, ContextThatWouldChangeWhatTasksRunIsRefusedFromEverySource) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  (*request.mutable_context())["LD_PRELOAD"] = "/tmp/evil.so";
  EXPECT_EQ(engine_.StartExecution(request).status().message(),
            "context key \"LD_PRELOAD\" is refused: it changes what code programs load or run; "
            "set it in a task's env if the workflow needs it");

  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0], v1::ATTEMPT_SUCCEEDED, R"({"ROWS": "7", "PATH": "/tmp/evil"})");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_EQ(run.attempts(0).error(),
            "$GYRE_OUTPUT: context key \"PATH\" is refused: it changes what code programs load "
            "or run; set it in a task's env if the workflow needs it");
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_SKIPPED);

  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string judged = Start(Workflow({judge, Task("deploy", {"judge"})}));
  auto decision = agent->Take(1);
  ASSERT_EQ(decision.size(), 1u);
  Report("a1", decision[0], v1::ATTEMPT_SUCCEEDED,
         R"({"run": ["deploy"], "start": [{"workflow": "x", "context": {"GYRE_TASK_ID": "y"}}]})");
  const v1::TaskRun judge_run = *engine_.GetTaskRun(judged + "/tasks/judge");
  EXPECT_EQ(judge_run.state(), v1::TASK_FAILED);
  EXPECT_EQ(judge_run.attempts(0).error(),
            "evaluator output: context key \"GYRE_TASK_ID\" is reserved: Gyre sets GYRE_* "
            "variables itself");
}

TEST_F(WorkflowEngineTest, StaleAttemptResultIsRejectedAfterRelease) {
  auto dead = Connect("dead", 1);
  const std::string exec = Start(Workflow({Task("a")}));
  auto lost = dead->Take(1);
  ASSERT_EQ(lost.size(), 1u);
  engine_.ExpireLeases(absl::Now() + absl::Minutes(1));  // "dead" missed every heartbeat
  auto alive = Connect("alive", 1);
  auto retry = alive->Take(1);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].ref().attempt(), 2);
  // The old attempt's result arrives late from a reconnected "dead": rejected.
  Connect("dead", 1);
  Report("dead", lost[0], v1::ATTEMPT_FAILED);
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_LEASED);
  Report("alive", retry[0]);
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::ATTEMPT_LOST);
}

TEST_F(WorkflowEngineTest, PauseHoldsNewLeasesAndResumeReleasesThem) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_TRUE(engine_.PauseExecution(exec).ok());
  Report("a1", a[0]);  // running tasks finish while paused
  EXPECT_EQ(StateOf(exec, "a"), v1::TASK_SUCCEEDED);
  EXPECT_EQ(agent->pending(), 0u) << "no lease while paused";
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_PAUSED);
  ASSERT_TRUE(engine_.ResumeExecution(exec).ok());
  auto b = agent->Take(1);
  ASSERT_EQ(b.size(), 1u);
  Report("a1", b[0]);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, CancelStopsRunningTasksAndSkipsTheRest) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  ASSERT_EQ(agent->Take(1).size(), 1u);
  ASSERT_TRUE(engine_.CancelExecution(exec, "operator request").ok());
  ASSERT_EQ(agent->cancels().size(), 1u);
  EXPECT_EQ(agent->cancels()[0].ref().task_id(), "a");
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_CANCELLED);
  EXPECT_EQ(StateOf(exec, "b"), v1::TASK_CANCELLED);
  EXPECT_EQ(engine_.CancelExecution(exec, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

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

TEST_F(WorkflowEngineTest, WatchReplaysFromASequenceNumberAndEndsWhenFinal) {
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0]);
  auto all = *engine_.Watch(exec, 0);
  const EventChunk events = all->Next(absl::Seconds(1));
  ASSERT_GE(events.events.size(), 4u);
  for (size_t i = 0; i < events.events.size(); ++i) {
    EXPECT_EQ(events.events[i]->sequence(), int64_t(i + 1));
  }
  EXPECT_TRUE(all->closed());
  auto tail = *engine_.Watch(exec, 3);
  const EventChunk from_third = tail->Next(absl::Seconds(1));
  ASSERT_FALSE(from_third.events.empty());
  EXPECT_EQ(from_third.events.front()->sequence(), 3);
}

TEST_F(WorkflowEngineTest, ALongHistoryIsReplayedABatchAtATime) {
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 5000; ++i) tasks.push_back(Task(absl::StrCat("t", i)));
  const std::string exec = Start(Workflow(std::move(tasks)));  // one READY event each
  auto watch = *engine_.Watch(exec, 2);
  // Built as they are asked for, never the whole history at once.
  const EventChunk first = watch->Next(absl::Seconds(1));
  ASSERT_EQ(first.events.size(), 4096u);
  const EventChunk second = watch->Next(absl::Seconds(1));
  ASSERT_FALSE(second.events.empty());
  int64_t expected = 2;
  for (const EventChunk* chunk : {&first, &second}) {
    for (const v1::Event* event : chunk->events) ASSERT_EQ(event->sequence(), expected++);
  }
  EXPECT_GE(expected, 5001);
  // Live events follow the backlog, in order.
  auto agent = Connect("a1", 1);
  auto leased = agent->Take(1);
  ASSERT_EQ(leased.size(), 1u);
  bool found_lease = false;
  for (EventChunk live; !(live = watch->Next(absl::Seconds(1))).events.empty();) {
    for (const v1::Event* event : live.events) {
      ASSERT_EQ(event->sequence(), expected++);
      found_lease |= event->task_run().state() == v1::TASK_LEASED;
    }
    if (found_lease) break;
  }
  EXPECT_TRUE(found_lease);
  engine_.Unwatch(watch);
}

TEST_F(WorkflowEngineTest, LiveEventsBuiltLaterShowEachChangeAsItWas) {
  auto agent = Connect("a1");
  v1::TaskSpec flaky = Task("a");
  flaky.mutable_retry()->set_max_retries(1);
  flaky.mutable_retry()->mutable_initial_backoff()->set_nanos(1'000'000);
  const std::string exec = Start(Workflow({flaky}));
  auto watch = *engine_.Watch(exec, 0);
  // The whole run happens before the watcher reads anything: its events are
  // built from the history afterwards, on the watcher's thread.
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_FAILED);
  auto second = agent->Take(1);
  ASSERT_EQ(second.size(), 1u);
  Report("a1", second[0], v1::ATTEMPT_SUCCEEDED);

  std::vector<std::pair<v1::TaskState, int>> changes;  // state, attempts shown
  int64_t expected = 1;
  bool last = false;
  while (!last) {
    const EventChunk chunk = watch->Next(absl::Seconds(5), &last);
    ASSERT_TRUE(last || !chunk.events.empty()) << "timed out";
    for (const v1::Event* event : chunk.events) {
      EXPECT_EQ(event->sequence(), expected++);
      EXPECT_EQ(event->execution(), exec);
      if (!event->has_task_run()) continue;
      EXPECT_EQ(event->task_run().name(), exec + "/tasks/a");
      changes.emplace_back(event->task_run().state(), event->task_run().attempts_size());
      if (event->task_run().attempts_size() > 0) {
        EXPECT_EQ(event->task_run().attempts(0).outcome(), v1::ATTEMPT_SUCCEEDED);
        EXPECT_EQ(event->task_run().attempts(0).attempt(), 2);
      }
    }
  }
  // Not the task's final state six times over: each change as it happened.
  EXPECT_EQ(changes, (std::vector<std::pair<v1::TaskState, int>>{{v1::TASK_READY, 0},
                                                                 {v1::TASK_LEASED, 0},
                                                                 {v1::TASK_PENDING, 0},  // backoff
                                                                 {v1::TASK_READY, 0},
                                                                 {v1::TASK_LEASED, 0},
                                                                 {v1::TASK_SUCCEEDED, 1}}));
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
  EXPECT_EQ(requeued.reason(), "re-queued: its agent was lost");
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

TEST_F(WorkflowEngineTest, AResultSentAgainIsIgnoredQuietlyAndAStaleOneIsWarnedAbout) {
  char path[] = "/tmp/gyre_engine_log_XXXXXX";
  const int log_fd = mkstemp(path);
  ASSERT_GE(log_fd, 0);
  logging::SetOutputFd(log_fd);
  auto agent = Connect("a1");
  const std::string exec = Start(Workflow({Task("a")}));
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0]);
  // Its acknowledgement lost, a1 sends the same result again (a new
  // session, a new number): recorded once, and not called stale.
  Report("a1", a[0]);
  EXPECT_EQ(engine_.GetTaskRun(exec + "/tasks/a")->attempts_size(), 1);
  // A result for an attempt a1 never held is stale.
  v1::TaskAssignment other = a[0];
  other.mutable_ref()->set_attempt(7);
  Report("a1", other);
  logging::SetOutputFd(STDERR_FILENO);
  close(log_fd);
  std::stringstream log;
  log << std::ifstream(path).rdbuf();
  std::remove(path);
  EXPECT_EQ(log.str().find("\"attempt\":1,"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("stale result rejected"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("\"attempt\":7,"), std::string::npos) << log.str();
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
  WorkflowEngine::Options options;
  options.heartbeat_interval = absl::Milliseconds(20);
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

  absl::SleepFor(absl::Milliseconds(60));  // three heartbeat intervals
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

TEST_F(WorkflowEngineTest, TargetsPullInOnlyTheirDependencies) {
  auto agent = Connect("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() =
      Workflow({Task("a"), Task("b", {"a"}), Task("unrelated"), Task("c", {"b"})});
  request.add_targets("b");
  const v1::Execution exec = *engine_.StartExecution(request);
  EXPECT_EQ(exec.task_counts().total(), 2);
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].ref().task_id(), "a");
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

TEST_F(WorkflowEngineTest, BadRequestsAreRejectedWithNothingStored) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a", {"ghost"})});
  EXPECT_EQ(engine_.StartExecution(request).status().message(),
            "task \"a\": unknown dependency \"ghost\"");
  *request.mutable_definition() = Workflow({Task("a")});
  (*request.mutable_context())["BAD KEY"] = "x";
  EXPECT_EQ(engine_.StartExecution(request).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
}

TEST_F(WorkflowEngineTest, ListsArePagedWithTokens) {
  std::vector<std::string> started;
  for (int i = 0; i < 5; ++i) started.push_back(Start(Workflow({Task("a"), Task("b"), Task("c")})));
  // Executions, newest first, two at a time.
  v1::ListExecutionsRequest list;
  list.set_page_size(2);
  std::vector<std::string> seen;
  do {
    absl::StatusOr<v1::ListExecutionsResponse> page = engine_.ListExecutions(list);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->executions_size(), 2);
    for (const v1::Execution& execution : page->executions()) seen.push_back(execution.name());
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty() && seen.size() < 10);
  EXPECT_EQ(seen,
            (std::vector<std::string>{started[4], started[3], started[2], started[1], started[0]}));
  // Task runs, in workflow order.
  v1::ListTaskRunsRequest runs;
  runs.set_parent(started[0]);
  runs.set_page_size(2);
  absl::StatusOr<v1::ListTaskRunsResponse> first = engine_.ListTaskRuns(runs);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->task_runs_size(), 2);
  EXPECT_EQ(first->task_runs(1).task_id(), "b");
  runs.set_page_token(first->next_page_token());
  absl::StatusOr<v1::ListTaskRunsResponse> second = engine_.ListTaskRuns(runs);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->task_runs_size(), 1);
  EXPECT_EQ(second->task_runs(0).task_id(), "c");
  EXPECT_EQ(second->next_page_token(), "");
  // What the engine never handed out is refused, as is a size out of range.
  runs.set_page_token("p99");
  EXPECT_EQ(engine_.ListTaskRuns(runs).status().message(),
            "invalid page_token (pass the next_page_token of a page)");
  list.set_page_token("");
  list.set_page_size(1001);
  EXPECT_EQ(engine_.ListExecutions(list).status().message(),
            "page_size 1001 is out of range [1, 1000] (0: 100)");
}

TEST_F(WorkflowEngineTest, AFilteredListLooksAtABoundedNumberOfExecutionsPerPage) {
  v1::WorkflowDefinition rare = Workflow({Task("a")});
  rare.set_name("workflows/rare");
  const std::string oldest = Start(rare);
  logging::SetLevel(logging::Level::kWarn);  // not 10,050 "execution started" lines
  for (int i = 0; i < 10'050; ++i) Start(Workflow({Task("a")}));
  logging::SetLevel(logging::Level::kInfo);
  v1::ListExecutionsRequest list;
  list.set_workflow("workflows/rare");
  absl::StatusOr<v1::ListExecutionsResponse> first = engine_.ListExecutions(list);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->executions_size(), 0) << "10,000 looked at, none of them rare";
  ASSERT_NE(first->next_page_token(), "");
  list.set_page_token(first->next_page_token());
  absl::StatusOr<v1::ListExecutionsResponse> second = engine_.ListExecutions(list);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->executions_size(), 1);
  EXPECT_EQ(second->executions(0).name(), oldest);
  EXPECT_EQ(second->next_page_token(), "");
}

TEST_F(WorkflowEngineTest, RequestIdMakesStartIdempotent) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  request.set_request_id("once");
  const std::string first = engine_.StartExecution(request)->name();
  EXPECT_EQ(engine_.StartExecution(request)->name(), first);
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 1);
}

}  // namespace
}  // namespace gyre::orchestrator

namespace gyre::orchestrator {
namespace {

// An engine over one in-memory store that can be "killed" and started
// again: an orchestrator restart with agent "a1" (4 slots) connected at
// first.
class WorkflowEngineRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override { Restart(); }

  // Drops the engine (a crash: nothing is flushed that was not already)
  // and recovers a new one from the store.
  void Restart() {
    engine_.reset();
    store_ = NewMemoryStateStore(data_);
    WorkflowEngine::Options options;
    options.store = store_.get();
    options.lease_timeout = absl::Seconds(30);
    engine_ = std::make_unique<WorkflowEngine>(options);
    ASSERT_TRUE(engine_->Recover().ok());
  }

  std::shared_ptr<RecordingChannel> Register(const std::string& id,
                                             const std::vector<v1::AttemptRef>& running = {}) {
    auto channel = std::make_shared<RecordingChannel>();
    EXPECT_TRUE(engine_->RegisterAgent(Registration(id, 4, running), channel).ok());
    return channel;
  }

  void Report(const std::string& agent, const v1::AttemptRef& ref, uint64_t sequence,
              const std::string& output = "") {
    ASSERT_TRUE(
        engine_
            ->HandleAgentMessage(agent, ResultMessage(ref, sequence, v1::ATTEMPT_SUCCEEDED, output))
            .ok());
  }

  // a -> b -> c; a succeeds (output K=v) and b is leased to a1 when the
  // orchestrator dies. Returns b's assignment.
  v1::TaskAssignment RunUntilBIsInFlight() {
    auto channel = Register("a1");
    v1::StartExecutionRequest request;
    *request.mutable_definition() =
        Workflow({Writes(Task("a"), {"K"}), Task("b", {"a"}), Task("c", {"b"})});
    exec_ = engine_->StartExecution(request)->name();
    auto a = channel->Take(1);
    EXPECT_EQ(a.size(), 1u);
    if (a.empty()) return {};
    Report("a1", a[0].ref(), 1, R"({"K": "v"})");
    auto b = channel->Take(1);
    EXPECT_EQ(b.size(), 1u);
    return b.empty() ? v1::TaskAssignment() : b[0];
  }

  v1::TaskRun Run(const std::string& task) {
    return *engine_->GetTaskRun(exec_ + "/tasks/" + task);
  }

  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<WorkflowEngine> engine_;
  std::string exec_;
};

// Every event of `exec` from the start, as a watcher reads them (the
// execution must be final).
std::vector<v1::Event> History(WorkflowEngine& engine, const std::string& exec) {
  std::vector<v1::Event> events;
  auto watch = engine.Watch(exec, 0);
  EXPECT_TRUE(watch.ok()) << watch.status();
  if (!watch.ok()) return events;
  bool last = false;
  while (!last) {
    EventChunk chunk = (*watch)->Next(absl::Seconds(5), &last);
    if (chunk.events.empty() && !last) break;
    for (const v1::Event* event : chunk.events) events.push_back(*event);
  }
  return events;
}

void ExpectSameHistory(const std::vector<v1::Event>& live, const std::vector<v1::Event>& replayed) {
  ASSERT_EQ(live.size(), replayed.size());
  for (size_t i = 0; i < live.size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(live[i], replayed[i]))
        << "event " << i + 1 << ":\n"
        << diff << live[i].DebugString() << "replayed:\n"
        << replayed[i].DebugString();
  }
}

TEST_F(WorkflowEngineRecoveryTest, ReplayRebuildsTheHistoryWatchersSaw) {
  // a fails once (retried after a backoff), runs again on a1, which is
  // then declared dead (attempt lost, re-queued), and succeeds on a2; b
  // follows. Every kind of change, each with its RUNNING event.
  auto a1 = Register("a1");
  v1::TaskSpec a = Task("a");
  a.mutable_retry()->set_max_retries(1);
  *a.mutable_retry()->mutable_initial_backoff() = ToProto(absl::Milliseconds(1));
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({a, Task("b", {"a"})});
  exec_ = engine_->StartExecution(request)->name();
  auto started = [&](const std::string& agent, const v1::TaskAssignment& task) {
    v1::AgentMessage message;
    *message.mutable_task_started()->mutable_ref() = task.ref();
    ASSERT_TRUE(engine_->HandleAgentMessage(agent, message).ok());
  };
  auto first = a1->Take(1);
  ASSERT_EQ(first.size(), 1u);
  started("a1", first[0]);
  v1::AgentMessage failed;
  *failed.mutable_task_result()->mutable_ref() = first[0].ref();
  failed.mutable_task_result()->set_outcome(v1::ATTEMPT_FAILED);
  failed.mutable_task_result()->set_error("exit code 3");
  failed.mutable_task_result()->set_sequence(1);
  ASSERT_TRUE(engine_->HandleAgentMessage("a1", failed).ok());
  auto second = a1->Take(1);  // after the backoff
  ASSERT_EQ(second.size(), 1u);
  started("a1", second[0]);
  engine_->ExpireLeases(absl::Now() + absl::Minutes(1));  // a1 falls silent
  auto a2 = Register("a2");
  auto third = a2->Take(1);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].ref().attempt(), 3);
  started("a2", third[0]);
  Report("a2", third[0].ref(), 1);
  auto b = a2->Take(1);
  ASSERT_EQ(b.size(), 1u);
  started("a2", b[0]);
  Report("a2", b[0].ref(), 2);
  ASSERT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_SUCCEEDED);
  const std::vector<v1::Event> live = History(*engine_, exec_);
  const v1::TaskRun live_a = Run("a");
  ASSERT_EQ(live_a.attempts_size(), 3);
  EXPECT_EQ(live_a.attempts(1).outcome(), v1::ATTEMPT_LOST);

  Restart();  // from the log
  ExpectSameHistory(live, History(*engine_, exec_));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(live_a, Run("a")))
      << live_a.DebugString() << "after the restart:\n"
      << Run("a").DebugString();
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot
  ExpectSameHistory(live, History(*engine_, exec_));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(live_a, Run("a")));
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptLostBeforeARestartStaysLostAndIsNotLeasedAgain) {
  RunUntilBIsInFlight();
  engine_->ExpireLeases(absl::Now() + absl::Minutes(1));  // a1 is declared dead
  ASSERT_EQ(Run("b").state(), v1::TASK_READY);
  const v1::TaskRun before = Run("b");
  Restart();
  const v1::TaskRun after = Run("b");
  EXPECT_EQ(after.state(), v1::TASK_READY) << "not leased to the dead a1 again";
  ASSERT_EQ(after.attempts_size(), 1);
  EXPECT_EQ(after.attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(after.attempts(0).error(), "agent a1 missed heartbeats");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
      << before.DebugString() << "after the restart:\n"
      << after.DebugString();
}

TEST_F(WorkflowEngineRecoveryTest, DispatchGoesOnAfterReplayingALongLog) {
  // Replay queues every task it makes ready and leases most of them again:
  // the queue holds far more stale entries than one pass looks at.
  auto agent = Register("a1");
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 1500; ++i) tasks.push_back(Task(absl::StrCat("t", i)));
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow(std::move(tasks));
  exec_ = engine_->StartExecution(request)->name();
  uint64_t sequence = 0;
  for (int i = 0; i < 1500; ++i) {
    auto lease = agent->Take(1);
    ASSERT_EQ(lease.size(), 1u);
    Report("a1", lease[0].ref(), ++sequence);
    v1::AgentMessage credit;
    credit.mutable_credit()->set_tasks(1);
    ASSERT_TRUE(engine_->HandleAgentMessage("a1", credit).ok());
  }
  ASSERT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_SUCCEEDED);
  Restart();
  agent = Register("a2");
  v1::StartExecutionRequest next;
  *next.mutable_definition() = Workflow({Task("only")});
  const std::string small = engine_->StartExecution(next)->name();
  auto only = agent->Take(1, absl::Seconds(2));
  ASSERT_EQ(only.size(), 1u) << "dispatch stalled after the restart";
  EXPECT_EQ(only[0].ref().execution(), small);
  EXPECT_EQ(engine_->DispatchStallForTest(), "");
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptThatRanOnThroughARestartIsRecordedOnce) {
  const v1::TaskAssignment b = RunUntilBIsInFlight();
  Restart();
  EXPECT_EQ(Run("a").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Run("a").outputs().fields().at("K").string_value(), "v");
  EXPECT_EQ(Run("b").state(), v1::TASK_LEASED) << "kept for its agent, not run again at once";

  // a1 comes back still holding b (running, or finished with the result
  // unacknowledged) and reports it: its result counts, no second attempt.
  auto channel = Register("a1", {b.ref()});
  EXPECT_EQ(channel->pending(), 0u) << "b is not handed out again";
  EXPECT_TRUE(channel->cancels().empty());
  Report("a1", b.ref(), 1);
  EXPECT_EQ(Run("b").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Run("b").attempts_size(), 1);
  auto c = channel->Take(1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].ref().task_id(), "c");
  EXPECT_EQ(c[0].env().at("K"), "v") << "outputs survive the restart";
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptItsAgentNoLongerHasRunsAgain) {
  const v1::TaskAssignment b = RunUntilBIsInFlight();
  Restart();
  // a1 comes back without b (it was restarted too, say).
  auto channel = Register("a1");
  auto rerun = channel->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().task_id(), "b");
  EXPECT_EQ(rerun[0].ref().attempt(), 2);
  EXPECT_EQ(rerun[0].env().at("K"), "v") << "outputs survive the restart";
  EXPECT_EQ(Run("b").attempts(0).outcome(), v1::ATTEMPT_LOST);
  EXPECT_EQ(Run("b").attempts(0).error(), "agent a1 came back without it");
  EXPECT_EQ(Run("b").reason(), "") << "re-queued, then leased: the reason went with the wait";
  // The old attempt's late result is fenced off.
  Report("a1", b.ref(), 1);
  EXPECT_EQ(Run("b").state(), v1::TASK_LEASED);
  EXPECT_EQ(Run("b").attempts_size(), 2);
}

TEST_F(WorkflowEngineRecoveryTest, AnAgentThatNeverComesBackLosesItsLeasesAfterTheTimeout) {
  RunUntilBIsInFlight();
  Restart();
  engine_->ExpireLeases(absl::Now() + absl::Seconds(10));
  EXPECT_EQ(Run("b").state(), v1::TASK_LEASED) << "b waits for a1 within the lease timeout";
  engine_->ExpireLeases(absl::Now() + absl::Minutes(1));
  EXPECT_EQ(Run("b").state(), v1::TASK_READY);
  auto other = Register("a2");
  auto rerun = other->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().task_id(), "b");
  EXPECT_EQ(rerun[0].ref().attempt(), 2);
  // a1 turns up after all, still running attempt 1: it is told to stop.
  v1::AttemptRef old_b = rerun[0].ref();
  old_b.set_attempt(1);
  auto late = Register("a1", {old_b});
  ASSERT_EQ(late->cancels().size(), 1u);
  EXPECT_EQ(late->cancels()[0].ref().task_id(), "b");
  EXPECT_EQ(late->cancels()[0].ref().attempt(), 1);
  EXPECT_EQ(late->pending(), 0u);
}

TEST_F(WorkflowEngineRecoveryTest, AResultRefusedForAnUndeclaredOutputIsRefusedAgainOnReplay) {
  auto channel = Register("a1");
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Writes(Task("a"), {"ROWS"}), Task("b", {"a"})});
  exec_ = engine_->StartExecution(request)->name();
  auto a = channel->Take(1);
  ASSERT_EQ(a.size(), 1u);
  Report("a1", a[0].ref(), 1, R"({"ROWS": "1", "HOME": "/tmp/evil"})");
  ASSERT_EQ(Run("a").state(), v1::TASK_FAILED);
  const std::string error = Run("a").attempts(0).error();
  Restart();
  EXPECT_EQ(Run("a").state(), v1::TASK_FAILED) << "the recorded result is judged as it was live";
  EXPECT_EQ(Run("a").attempts(0).error(), error);
  EXPECT_EQ(Run("a").outputs().fields_size(), 0);
  EXPECT_EQ(Run("b").state(), v1::TASK_SKIPPED);
  EXPECT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_FAILED);
}

TEST_F(WorkflowEngineRecoveryTest, AnExecutionPausedBeforeItStartedResumesPendingAfterARestart) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  exec_ = engine_->StartExecution(request)->name();
  ASSERT_EQ(engine_->PauseExecution(exec_)->state(), v1::EXECUTION_PAUSED);
  Restart();
  EXPECT_EQ(engine_->GetExecution(exec_)->state(), v1::EXECUTION_PAUSED);
  EXPECT_FALSE(engine_->GetExecution(exec_)->has_start_time());
  EXPECT_EQ(engine_->ResumeExecution(exec_)->state(), v1::EXECUTION_PENDING);
  ASSERT_TRUE(engine_->PauseExecution(exec_).ok());
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();
  EXPECT_EQ(engine_->ResumeExecution(exec_)->state(), v1::EXECUTION_PENDING);
}

TEST_F(WorkflowEngineRecoveryTest, AReusedRequestIdIsToldApartFromARetryAcrossARestart) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  request.set_request_id("r1");
  const std::string first = engine_->StartExecution(request)->name();
  v1::StartExecutionRequest other = request;
  (*other.mutable_definition()->mutable_default_context())["X"] = "1";
  for (int restart = 0; restart < 2; ++restart) {
    EXPECT_EQ(engine_->StartExecution(request)->name(), first) << "a retry, restart " << restart;
    const absl::Status refused = engine_->StartExecution(other).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(refused.message(), absl::StrCat("request_id r1 was used for a different request (",
                                              first, "); use a new request_id for a new request"));
    Restart();
  }
  ASSERT_TRUE(engine_->WriteSnapshot().ok());
  Restart();  // from the snapshot too
  EXPECT_EQ(engine_->StartExecution(other).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(engine_->StartExecution(request)->name(), first);
}

TEST_F(WorkflowEngineRecoveryTest, AnAttemptLeasedJustBeforeACrashIsNeverLeasedTwice) {
  // No agent yet: "a" is ready, no attempt recorded.
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("a")});
  exec_ = engine_->StartExecution(request)->name();
  Restart();
  // a1 reports attempt 1 of "a": leased to it just before the crash, the
  // lease record lost with it.
  v1::AttemptRef unrecorded;
  unrecorded.set_execution(exec_);
  unrecorded.set_task_id("a");
  unrecorded.set_attempt(1);
  auto channel = Register("a1", {unrecorded});
  ASSERT_EQ(channel->cancels().size(), 1u) << "the unrecorded attempt is stopped";
  EXPECT_EQ(channel->cancels()[0].ref().attempt(), 1);
  auto lease = channel->Take(1);
  ASSERT_EQ(lease.size(), 1u);
  EXPECT_EQ(lease[0].ref().attempt(), 2) << "attempt 1 exists on the agent: never again";
  // The stopped attempt's result, when it comes, is fenced off.
  Report("a1", unrecorded, 1);
  EXPECT_EQ(Run("a").state(), v1::TASK_LEASED);
  ASSERT_EQ(Run("a").attempts_size(), 2);
  EXPECT_EQ(Run("a").attempts(0).outcome(), v1::ATTEMPT_LOST);
  Report("a1", lease[0].ref(), 2);
  EXPECT_EQ(Run("a").state(), v1::TASK_SUCCEEDED);
}

}  // namespace
}  // namespace gyre::orchestrator

namespace gyre::orchestrator {
namespace {

TEST_F(WorkflowEngineTest, GlobalTaskRunsOnceForTwoGraphs) {
  auto agent = Connect("a1");
  v1::TaskSpec shared = Writes(Task("load-reference-data"), {"TABLE"});
  shared.set_global(true);
  const std::string first =
      Start(Declaring(Workflow({shared, Task("report-a", {"load-reference-data"})}), {"DAY"}),
            {{"DAY", "monday"}});
  const std::string second =
      Start(Declaring(Workflow({shared, Task("report-b", {"load-reference-data"})}), {"DAY"}),
            {{"DAY", "monday"}});
  auto runs = agent->Take(1);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].ref().execution(), first);
  EXPECT_EQ(agent->pending(), 0u) << "the second graph must wait, not run it again";
  EXPECT_EQ(StateOf(second, "load-reference-data"), v1::TASK_PENDING);
  Report("a1", runs[0], v1::ATTEMPT_SUCCEEDED, R"({"TABLE": "ref_v7"})");
  auto reports = agent->Take(2);
  ASSERT_EQ(reports.size(), 2u);
  for (const auto& report : reports) {
    EXPECT_EQ(report.env().at("TABLE"), "ref_v7");
    Report("a1", report);
  }
  const v1::TaskRun reused = *engine_.GetTaskRun(second + "/tasks/load-reference-data");
  EXPECT_EQ(reused.state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(reused.satisfied_by(), first + "/tasks/load-reference-data");
  EXPECT_EQ(reused.attempts_size(), 0);
  EXPECT_EQ(engine_.GetExecution(first)->state(), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(engine_.GetExecution(second)->state(), v1::EXECUTION_SUCCEEDED);

  // A third graph later is satisfied at once; a different context runs anew.
  const std::string third = Start(Declaring(Workflow({shared}), {"DAY"}), {{"DAY", "monday"}});
  EXPECT_EQ(engine_.GetExecution(third)->state(), v1::EXECUTION_SUCCEEDED);
  Start(Declaring(Workflow({shared}), {"DAY"}), {{"DAY", "tuesday"}});
  EXPECT_EQ(agent->Take(1).size(), 1u);
}

TEST_F(WorkflowEngineTest, PauseThenResumeOfAPendingExecutionLeavesItPendingAndItRuns) {
  const std::string exec = Start(Workflow({Task("a"), Task("b", {"a"})}));
  ASSERT_EQ(engine_.PauseExecution(exec)->state(), v1::EXECUTION_PAUSED);
  const v1::Execution resumed = *engine_.ResumeExecution(exec);
  EXPECT_EQ(resumed.state(), v1::EXECUTION_PENDING) << "no task ever ran";
  EXPECT_FALSE(resumed.has_start_time());
  auto agent = Connect("a1");
  auto a = agent->Take(1);
  ASSERT_EQ(a.size(), 1u) << "the resumed execution's task dispatches";
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_RUNNING);
  Report("a1", a[0]);
  auto b = agent->Take(1);
  ASSERT_EQ(b.size(), 1u);
  // Paused and resumed once running, it is RUNNING again.
  ASSERT_EQ(engine_.PauseExecution(exec)->state(), v1::EXECUTION_PAUSED);
  EXPECT_EQ(engine_.ResumeExecution(exec)->state(), v1::EXECUTION_RUNNING);
  Report("a1", b[0]);
  EXPECT_EQ(engine_.GetExecution(exec)->state(), v1::EXECUTION_SUCCEEDED);
}

TEST_F(WorkflowEngineTest, OnlyDeclaredContextEntersFromStartsOutputsAndDecisions) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Declaring(Workflow({Task("a")}), {"REGION"});
  (*request.mutable_context())["HOME"] = "/tmp/evil";
  EXPECT_EQ(engine_.StartExecution(request).status().message(),
            "context key HOME is not declared by workflow test; declare it under `context:` (or "
            "as a task's `outputs:`)");

  auto agent = Connect("a1");
  v1::TaskSpec judge = Writes(Task("judge"), {"VERDICT"});
  judge.set_evaluator(true);
  const std::string exec = Start(
      Workflow({Writes(Task("a"), {"ROWS"}), Task("b", {"a"}), judge, Task("deploy", {"judge"})}));
  auto first = agent->Take(2);
  ASSERT_EQ(first.size(), 2u);
  for (const auto& task : first) {
    if (task.ref().task_id() == "a") {
      Report("a1", task, v1::ATTEMPT_SUCCEEDED, R"({"ROWS": "1", "PAGER": "sh -c evil"})");
    } else {
      Report("a1", task, v1::ATTEMPT_SUCCEEDED, R"({"context": {"EDITOR": "evil"}})");
    }
  }
  const v1::TaskRun a = *engine_.GetTaskRun(exec + "/tasks/a");
  EXPECT_EQ(a.state(), v1::TASK_FAILED);
  EXPECT_EQ(a.attempts(0).error(),
            "$GYRE_OUTPUT: key \"PAGER\" is not among the outputs task \"a\" declares (outputs: "
            "[ROWS]); list it under the task's `outputs:` to pass it on");
  const v1::TaskRun decided = *engine_.GetTaskRun(exec + "/tasks/judge");
  EXPECT_EQ(decided.state(), v1::TASK_FAILED);
  EXPECT_EQ(decided.attempts(0).error(),
            "evaluator output: key \"EDITOR\" is not among the outputs task \"judge\" declares "
            "(outputs: [VERDICT]); list it under the task's `outputs:` to pass it on");
  EXPECT_EQ(agent->pending(), 0u) << "nothing downstream ran";
}

TEST_F(WorkflowEngineTest, GlobalTaskFailureHandsTheWorkToAWaiter) {
  auto agent = Connect("a1");
  v1::TaskSpec shared = Task("g");
  shared.set_global(true);
  const std::string first = Start(Workflow({shared}));
  const std::string second = Start(Workflow({shared}));
  auto run = agent->Take(1);
  ASSERT_EQ(run.size(), 1u);
  Report("a1", run[0], v1::ATTEMPT_FAILED);
  EXPECT_EQ(engine_.GetExecution(first)->state(), v1::EXECUTION_FAILED);
  auto rerun = agent->Take(1);
  ASSERT_EQ(rerun.size(), 1u);
  EXPECT_EQ(rerun[0].ref().execution(), second);
}

TEST_F(WorkflowEngineTest, EvaluatorStartsAChildThatInheritsTheContext) {
  auto agent = Connect("a1");
  // The child declares what its task reads; the parent what it is given.
  v1::WorkflowDefinition child = Declaring(Workflow({Task("child-task")}), {"REGION", "OWNER"});
  child.set_name("report");
  ASSERT_TRUE(engine_.CreateWorkflow(child).ok());
  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string parent = Start(Declaring(Workflow({judge}), {"REGION", "OWNER"}),
                                   {{"REGION", "eu"}, {"OWNER", "ops"}});
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED,
         R"({"start": [{"workflow": "report", "context": {"OWNER": "data"}}]})");
  auto child_task = agent->Take(1);
  ASSERT_EQ(child_task.size(), 1u);
  EXPECT_EQ(child_task[0].ref().task_id(), "child-task");
  EXPECT_EQ(child_task[0].env().at("REGION"), "eu") << "inherited from the parent";
  EXPECT_EQ(child_task[0].env().at("OWNER"), "data") << "the decision's context wins";
  const v1::Execution started = *engine_.GetExecution(child_task[0].ref().execution());
  EXPECT_EQ(started.parent(), parent);
  EXPECT_EQ(started.workflow(), "workflows/report");
}

TEST_F(WorkflowEngineTest, ChildStartsAreLimitedPerExecutionAndMustNameAStoredWorkflow) {
  auto agent = Connect("a1", 256);
  v1::WorkflowDefinition leaf = Workflow({Task("leaf-task")});
  leaf.set_name("leaf");
  ASSERT_TRUE(engine_.CreateWorkflow(leaf).ok());
  v1::TaskSpec first = Task("first");
  first.set_evaluator(true);
  v1::TaskSpec second = Task("second", {"first"});
  second.set_evaluator(true);
  const std::string exec = Start(Workflow({first, second}));
  std::string sixty = R"({"start": [)";
  for (int i = 0; i < 60; ++i) absl::StrAppend(&sixty, i > 0 ? "," : "", R"({"workflow": "leaf"})");
  sixty += "]}";
  auto judge = agent->Take(1);
  ASSERT_EQ(judge.size(), 1u);
  Report("a1", judge[0], v1::ATTEMPT_SUCCEEDED, sixty);
  EXPECT_EQ(StateOf(exec, "first"), v1::TASK_SUCCEEDED);
  // 60 children and the second evaluator.
  auto next = agent->Take(61);
  ASSERT_EQ(next.size(), 61u);
  auto second_judge = std::find_if(next.begin(), next.end(), [](const v1::TaskAssignment& t) {
    return t.ref().task_id() == "second";
  });
  ASSERT_NE(second_judge, next.end());
  Report("a1", *second_judge, v1::ATTEMPT_SUCCEEDED, sixty);
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/second");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_EQ(run.attempts(0).error(),
            absl::StrCat("evaluator output: starting 60 more child workflows from ", exec,
                         " would make 120; one execution starts at most 100"));

  const std::string unknown = Start(Workflow({first}));
  auto unknown_judge = agent->Take(1);
  ASSERT_EQ(unknown_judge.size(), 1u);
  Report("a1", unknown_judge[0], v1::ATTEMPT_SUCCEEDED, R"({"start": [{"workflow": "lef"}]})");
  EXPECT_EQ(engine_.GetTaskRun(unknown + "/tasks/first")->attempts(0).error(),
            "evaluator output: start[0]: \"workflows/lef\" not found (did you mean "
            "\"workflows/leaf\"?)");
}

TEST_F(WorkflowEngineTest, UnknownNamesAreQuotedCutAndSuggestedCheaply) {
  v1::WorkflowDefinition report = Workflow({Task("t")});
  report.set_name("report");
  ASSERT_TRUE(engine_.CreateWorkflow(report).ok());
  EXPECT_EQ(engine_.GetWorkflow("workflows/reprot").status().message(),
            "\"workflows/reprot\" not found (did you mean \"workflows/report\"?)");
  // A huge name: cut in the message, and no suggestion work.
  const absl::Status huge = engine_.GetWorkflow("workflows/" + std::string(1 << 20, 'z')).status();
  EXPECT_EQ(huge.code(), absl::StatusCode::kNotFound);
  EXPECT_LT(huge.message().size(), 200u) << huge.message();
  EXPECT_TRUE(absl::StrContains(huge.message(), "(1048586 bytes)")) << huge.message();
  const absl::Status execution =
      engine_.GetExecution("executions/\x1b]0;owned\x07" + std::string(500, 'x')).status();
  EXPECT_TRUE(absl::StartsWith(execution.message(), "execution \"executions/\\x1b]0;owned\\x07xx"))
      << execution.message();
}

TEST_F(WorkflowEngineTest, ADecisionOfAnotherShapeFailsTheEvaluator) {
  auto agent = Connect("a1");
  v1::TaskSpec judge = Task("judge");
  judge.set_evaluator(true);
  const std::string exec = Start(Workflow({judge, Task("deploy", {"judge"})}));
  auto first = agent->Take(1);
  ASSERT_EQ(first.size(), 1u);
  Report("a1", first[0], v1::ATTEMPT_SUCCEEDED, R"({"run": [["deploy"]]})");
  const v1::TaskRun run = *engine_.GetTaskRun(exec + "/tasks/judge");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_TRUE(absl::StartsWith(run.attempts(0).error(),
                               "evaluator output: \"run\" entry 0 is a list, not a task id string"))
      << run.attempts(0).error();
}

}  // namespace
}  // namespace gyre::orchestrator

namespace gyre::orchestrator {
namespace {

// Options of an engine whose task library holds `tasks`.
WorkflowEngine::Options WithLibrary(std::vector<v1::TaskSpec> tasks) {
  WorkflowEngine::Options options;
  v1::WorkflowDefinition library = Declaring(Workflow(std::move(tasks)), {"DAY"});
  library.set_name("workflows/task-library");
  options.task_library = std::make_shared<const v1::WorkflowDefinition>(std::move(library));
  return options;
}

TEST(WorkflowEngineOutcomeTest, ScheduleOutcomePullsInDependenciesFromTheLibrary) {
  WorkflowEngine engine(
      WithLibrary({Task("raw"), Task("clean", {"raw"}), Task("report", {"clean"}), Task("other")}));
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 4), channel).ok());
  v1::ScheduleOutcomeRequest request;
  request.add_targets("report");
  (*request.mutable_context())["DAY"] = "monday";
  absl::StatusOr<v1::Execution> execution = engine.ScheduleOutcome(request);
  ASSERT_TRUE(execution.ok()) << execution.status();
  EXPECT_EQ(execution->task_counts().total(), 3);
  auto first = channel->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "raw");
  EXPECT_EQ(first[0].env().at("DAY"), "monday");
  request.set_targets(0, "reprot");
  EXPECT_EQ(engine.ScheduleOutcome(request).status().message(),
            "unknown target task \"reprot\" (did you mean \"report\"?)");
}

TEST(WorkflowEngineOutcomeTest, AWorkflowDependingOnLibraryTasksRunsThemFirst) {
  WorkflowEngine engine(WithLibrary({Task("raw"), Task("clean", {"raw"}), Task("other")}));
  absl::StatusOr<v1::WorkflowDefinition> served = engine.GetTaskLibrary();
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->tasks_size(), 3);
  auto channel = std::make_shared<RecordingChannel>();
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 4), channel).ok());

  // Inline: the execution holds the workflow's task and the two it needs.
  v1::StartExecutionRequest request;
  *request.mutable_definition() = Workflow({Task("summary", {"clean"})});
  absl::StatusOr<v1::Execution> execution = engine.StartExecution(request);
  ASSERT_TRUE(execution.ok()) << execution.status();
  EXPECT_EQ(execution->task_counts().total(), 3);
  auto first = channel->Take(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].ref().task_id(), "raw");

  // Stored: the version holds them too, so every execution of it does.
  v1::WorkflowDefinition stored = Workflow({Task("summary", {"clean"})});
  stored.set_name("workflows/stored");
  absl::StatusOr<v1::WorkflowDefinition> created = engine.CreateWorkflow(stored);
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<v1::WorkflowDefinition> fetched = engine.GetWorkflow("workflows/stored");
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  std::vector<std::string> ids;
  for (const v1::TaskSpec& task : fetched->tasks()) ids.push_back(task.id());
  EXPECT_EQ(ids, (std::vector<std::string>{"summary", "raw", "clean"}));

  // A dependency in neither is refused whole, naming both places.
  *request.mutable_definition() = Workflow({Task("summary", {"claen"})});
  EXPECT_EQ(engine.StartExecution(request).status().message(),
            "task \"summary\": unknown dependency \"claen\": no task of this workflow or of "
            "the task library has that id (did you mean \"clean\"?)");
  EXPECT_EQ(engine.ListExecutions(v1::ListExecutionsRequest())->executions_size(), 1);
}

TEST(WorkflowEngineOutcomeTest, WithoutALibraryScheduleOutcomeSaysSo) {
  WorkflowEngine engine(WorkflowEngine::Options{});
  v1::ScheduleOutcomeRequest request;
  request.add_targets("report");
  EXPECT_EQ(engine.ScheduleOutcome(request).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine.GetTaskLibrary().status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gyre::orchestrator

namespace gyre::orchestrator {
namespace {

TEST(WorkflowEngineDefinitionsTest, VersionsAreAssignedAndRetrievable) {
  WorkflowEngine engine(WorkflowEngine::Options{});
  v1::WorkflowDefinition def = Workflow({Task("a")});
  def.set_name("etl");
  auto first = engine.CreateWorkflow(def);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->name(), "workflows/etl");
  EXPECT_EQ(first->version(), 1);
  EXPECT_EQ(engine.CreateWorkflow(def).status().code(), absl::StatusCode::kAlreadyExists);
  *def.add_tasks() = Task("b", {"a"});
  auto second = engine.UpdateWorkflow(def);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->version(), 2);
  EXPECT_EQ(engine.GetWorkflow("workflows/etl")->tasks_size(), 2);
  EXPECT_EQ(engine.GetWorkflow("workflows/etl/versions/1")->tasks_size(), 1);
  EXPECT_EQ(engine.GetWorkflow("workflows/etl/versions/3").status().code(),
            absl::StatusCode::kNotFound);
  v1::WorkflowDefinition unknown = def;
  unknown.set_name("nope");
  EXPECT_EQ(engine.UpdateWorkflow(unknown).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine.ListWorkflows({})->workflows_size(), 1);
  // A bad definition stores nothing.
  v1::WorkflowDefinition bad = Workflow({Task("x", {"ghost"})});
  bad.set_name("bad");
  EXPECT_EQ(engine.CreateWorkflow(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.ListWorkflows({})->workflows_size(), 1);
}

TEST(WorkflowEngineListTest, ListWorkflowsPagesByNameAndRefusesBadPages) {
  WorkflowEngine engine(WorkflowEngine::Options{});
  for (const char* name : {"c", "a", "e", "b", "d"}) {
    v1::WorkflowDefinition def = Workflow({Task("t")});
    def.set_name(name);
    ASSERT_TRUE(engine.CreateWorkflow(def).ok());
  }
  std::vector<std::string> seen;
  v1::ListWorkflowsRequest request;
  request.set_page_size(2);
  int pages = 0;
  do {
    absl::StatusOr<v1::ListWorkflowsResponse> page = engine.ListWorkflows(request);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->workflows_size(), 2);
    for (const auto& def : page->workflows()) seen.push_back(def.name());
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"workflows/a", "workflows/b", "workflows/c",
                                            "workflows/d", "workflows/e"}));
  request.set_page_token("");
  for (int bad : {-5, 1001}) {
    request.set_page_size(bad);
    EXPECT_EQ(engine.ListWorkflows(request).status().code(), absl::StatusCode::kInvalidArgument);
  }
  request.set_page_size(0);
  request.set_page_token("not-a-token");
  EXPECT_EQ(engine.ListWorkflows(request).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- Sizes: limits checked before anything is applied (libs/common/limits.h) ---

// `n` context entries of `bytes` each, named PREFIX0, PREFIX1...
std::map<std::string, std::string> BigContext(const std::string& prefix, int n, size_t bytes) {
  std::map<std::string, std::string> context;
  for (int i = 0; i < n; ++i) context[prefix + std::to_string(i)] = std::string(bytes, 'v');
  return context;
}

// Sizes tests pass context and outputs they do not declare: they are about
// sizes, so their workflows take the open context rule.
v1::WorkflowDefinition OpenContext(std::vector<v1::TaskSpec> tasks) {
  v1::WorkflowDefinition def = Workflow(std::move(tasks));
  def.set_context_passthrough(true);
  return def;
}

TEST_F(WorkflowEngineTest, SizesAContextOverItsTotalIsRefusedAndNothingStarts) {
  v1::StartExecutionRequest request;
  *request.mutable_definition() = OpenContext({Task("a")});
  // 70 values of 64 KiB: each within its limit, 4.4 MiB together.
  for (const auto& [key, value] : BigContext("V", 70, limits::kMaxContextValueBytes)) {
    (*request.mutable_context())[key] = value;
  }
  const absl::StatusOr<v1::Execution> started = engine_.StartExecution(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "at most 1048576")) << started.status();
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
}

TEST_F(WorkflowEngineTest, SizesTheMergedContextIsCheckedBeforeTheExecutionExists) {
  // Default context and request each under 1 MiB; together over it.
  v1::WorkflowDefinition def = OpenContext({Task("a")});
  for (const auto& [key, value] : BigContext("D", 10, limits::kMaxContextValueBytes)) {
    (*def.mutable_default_context())[key] = value;
  }
  v1::StartExecutionRequest request;
  *request.mutable_definition() = def;
  for (const auto& [key, value] : BigContext("R", 10, limits::kMaxContextValueBytes)) {
    (*request.mutable_context())[key] = value;
  }
  auto channel = Connect("a1");
  const absl::StatusOr<v1::Execution> started = engine_.StartExecution(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "together")) << started.status();
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
  EXPECT_EQ(channel->pending(), 0u) << "nothing was dispatched";
}

TEST_F(WorkflowEngineTest, SizesATaskFieldOverItsLimitIsRefused) {
  v1::TaskSpec task = Task("a");
  task.set_description(std::string(limits::kMaxTaskFieldBytes + 1, 'd'));
  v1::StartExecutionRequest request;
  *request.mutable_definition() = OpenContext({task});
  const absl::StatusOr<v1::Execution> started = engine_.StartExecution(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.status().message(), "task \"a\"")) << started.status();
  EXPECT_TRUE(absl::StrContains(started.status().message(), "description")) << started.status();
  v1::WorkflowDefinition stored = OpenContext({task});
  EXPECT_EQ(engine_.CreateWorkflow(stored).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_.ListExecutions({})->executions_size(), 0);
  EXPECT_EQ(engine_.ListWorkflows({})->workflows_size(), 0);
}

TEST_F(WorkflowEngineTest, SizesACancelReasonIsBounded) {
  const std::string execution = Start(OpenContext({Task("a")}));
  EXPECT_EQ(engine_.CancelExecution(execution, std::string(limits::kMaxMessageTextBytes + 1, 'r'))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_NE(engine_.GetExecution(execution)->state(), v1::EXECUTION_CANCELLED);
}

TEST_F(WorkflowEngineTest, SizesListsLeaveContextsOutUnlessAskedAndBoundAFullPage) {
  for (int i = 0; i < 4; ++i) {
    Start(OpenContext({Task("a")}), BigContext("V", 15, limits::kMaxContextValueBytes));
  }
  const absl::StatusOr<v1::ListExecutionsResponse> basic = engine_.ListExecutions({});
  ASSERT_TRUE(basic.ok()) << basic.status();
  ASSERT_EQ(basic->executions_size(), 4);
  for (const v1::Execution& execution : basic->executions()) {
    EXPECT_TRUE(execution.context().empty());
    // GetExecution keeps the whole execution.
    EXPECT_EQ(engine_.GetExecution(execution.name())->context_size(), 15);
  }
  v1::ListExecutionsRequest full;
  full.set_view(v1::EXECUTION_VIEW_FULL);
  const absl::StatusOr<v1::ListExecutionsResponse> page = engine_.ListExecutions(full);
  ASSERT_TRUE(page.ok()) << page.status();
  // 960 KiB of context each: two fit in 2 MiB, the rest follow.
  EXPECT_EQ(page->executions_size(), 2);
  EXPECT_EQ(page->executions(0).context_size(), 15);
  EXPECT_FALSE(page->next_page_token().empty());
  full.set_page_token(page->next_page_token());
  EXPECT_EQ(engine_.ListExecutions(full)->executions_size(), 2);
  v1::ListExecutionsRequest bad;
  bad.set_view(static_cast<v1::ExecutionView>(7));
  EXPECT_EQ(engine_.ListExecutions(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// 15 outputs of ~64 KiB (~960 KiB), as a task writes them to $GYRE_OUTPUT.
std::string BigOutputs(const std::string& prefix) {
  std::string json = "{";
  for (const auto& [key, value] : BigContext(prefix, 15, limits::kMaxContextValueBytes - 16)) {
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"", key, "\":\"", value, "\"");
  }
  return json + "}";
}

TEST_F(WorkflowEngineTest, SizesATaskRunsPageIsBoundedByItsOutputs) {
  auto channel = Connect("a1");
  const std::string execution =
      Start(OpenContext({Task("a"), Task("b"), Task("c"), Task("d"), Task("e")}));
  for (const v1::TaskAssignment& task : channel->Take(5)) {
    Report("a1", task, v1::ATTEMPT_SUCCEEDED, BigOutputs("O"));
  }
  v1::ListTaskRunsRequest request;
  request.set_parent(execution);
  std::vector<int> pages;
  do {
    const absl::StatusOr<v1::ListTaskRunsResponse> page = engine_.ListTaskRuns(request);
    ASSERT_TRUE(page.ok()) << page.status();
    pages.push_back(page->task_runs_size());
    EXPECT_LE(page->ByteSizeLong(), 4u << 20);
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, (std::vector<int>{2, 2, 1}));
}

TEST_F(WorkflowEngineTest, SizesResultTailsAreCutOnArrivalAndTheResultIsKept) {
  auto channel = Connect("a1");
  const std::string execution = Start(OpenContext({Task("a"), Task("b", {"a"})}));
  const v1::TaskAssignment a = channel->Take(1).at(0);
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = a.ref();
  result->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result->set_stdout_tail(std::string(3 * limits::kMaxResultTailBytes, 'o'));
  result->set_stdout_bytes(3 * limits::kMaxResultTailBytes);
  // A rogue agent's error: long, and cut in the middle of a 2-byte character.
  result->set_error(std::string(limits::kMaxMessageTextBytes - 1, 'e') + "\xc3\xa9" + "tail");
  result->set_sequence(1);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", message).ok());
  EXPECT_EQ(StateOf(execution, "a"), v1::TASK_SUCCEEDED);
  const absl::StatusOr<v1::GetTaskLogsResponse> logs =
      engine_.GetTaskLogs(execution + "/tasks/a", 0);
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(logs->stdout().size(), limits::kMaxResultTailBytes);
  EXPECT_TRUE(logs->truncated());
  const v1::TaskRun run = *engine_.GetTaskRun(execution + "/tasks/a");
  EXPECT_EQ(run.attempts(0).error().size(), limits::kMaxMessageTextBytes - 1);
  EXPECT_EQ(channel->Take(1).at(0).ref().task_id(), "b") << "the execution goes on";
}

TEST_F(WorkflowEngineTest, SizesAnOutputOverItsLimitFailsTheAttemptInsteadOfBeingStored) {
  auto channel = Connect("a1");
  const std::string execution = Start(OpenContext({Task("a")}));
  const v1::TaskAssignment a = channel->Take(1).at(0);
  v1::AgentMessage message;
  v1::TaskResult* result = message.mutable_task_result();
  *result->mutable_ref() = a.ref();
  result->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result->set_output_json("{\"K\": \"" + std::string(limits::kMaxOutputJsonBytes, 'x') + "\"}");
  result->set_sequence(1);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", message).ok());
  const v1::TaskRun run = *engine_.GetTaskRun(execution + "/tasks/a");
  EXPECT_EQ(run.state(), v1::TASK_FAILED);
  EXPECT_TRUE(absl::StrContains(run.attempts(0).error(), "$GYRE_OUTPUT holds"))
      << run.DebugString();
}

TEST_F(WorkflowEngineTest, SizesATaskWhoseEnvironmentOutgrowsExecFailsWithAReason) {
  auto channel = Connect("a1");
  // 960 KiB of context, and two upstream tasks passing on 960 KiB each:
  // "c" would get 2.8 MiB of environment, more than exec takes.
  const std::string execution =
      Start(OpenContext({Task("a"), Task("b"), Task("c", {"a", "b"}), Task("d", {"c"}), Task("e")}),
            BigContext("V", 15, limits::kMaxContextValueBytes));
  for (const v1::TaskAssignment& task : channel->Take(3)) {
    if (task.ref().task_id() == "e") continue;
    Report("a1", task, v1::ATTEMPT_SUCCEEDED, BigOutputs(task.ref().task_id() == "a" ? "A" : "B"));
  }
  const v1::TaskRun c = *engine_.GetTaskRun(execution + "/tasks/c");
  EXPECT_EQ(c.state(), v1::TASK_FAILED);
  ASSERT_EQ(c.attempts_size(), 1);
  EXPECT_TRUE(absl::StrContains(c.attempts(0).error(), "command line and environment"))
      << c.attempts(0).error();
  EXPECT_EQ(StateOf(execution, "d"), v1::TASK_SKIPPED);
  EXPECT_EQ(channel->pending(), 0u) << "c was never sent to the agent";
}

TEST_F(WorkflowEngineTest, SizesAnAssignmentBatchIsSplitUnderTheAgentsReceiveLimit) {
  std::vector<v1::TaskSpec> tasks;
  for (int i = 0; i < 24; ++i) tasks.push_back(Task("t" + std::to_string(i)));
  // 24 tasks with ~1 MiB of environment each: 24 MiB in one batch.
  Start(OpenContext(tasks), BigContext("V", 15, limits::kMaxContextValueBytes));
  auto channel = std::make_shared<MessageSizeChannel>();
  ASSERT_TRUE(engine_.RegisterAgent(Registration("a1", 32), channel).ok());
  v1::AgentMessage credit;
  credit.mutable_credit()->set_tasks(32);
  ASSERT_TRUE(engine_.HandleAgentMessage("a1", credit).ok());
  EXPECT_EQ(channel->tasks(), 24);
  EXPECT_GE(channel->sizes().size(), 3u);
  for (size_t size : channel->sizes()) EXPECT_LE(size, limits::kMaxAssignmentMessageBytes);
}

TEST(WorkflowEngineFailStopTest, AFailedAppendStopsTheEngineAndARestartHasOnlyWhatIsDurable) {
  auto data = NewMemoryStateStoreData();
  std::string durable_execution;
  {
    FailingStore store(data);
    absl::Mutex mutex;
    std::vector<std::string> reported;
    WorkflowEngine::Options options;
    options.store = &store;
    options.snapshot_every_records = 0;
    options.on_store_failure = [&](const absl::Status& status) {
      absl::MutexLock lock(&mutex);
      reported.push_back(std::string(status.message()));
    };
    WorkflowEngine engine(options);
    ASSERT_TRUE(engine.Recover().ok());
    v1::StartExecutionRequest request;
    *request.mutable_definition() = Workflow({Task("a")});
    durable_execution = engine.StartExecution(request)->name();

    store.Fail();
    const absl::StatusOr<v1::Execution> lost = engine.StartExecution(request);
    EXPECT_FALSE(lost.ok());
    EXPECT_TRUE(absl::StrContains(lost.status().message(), "disk full")) << lost.status();
    // Stopped: nothing more is served from memory that is not on disk.
    for (const absl::Status& status :
         {engine.GetExecution(durable_execution).status(), engine.ListExecutions({}).status(),
          engine.StartExecution(request).status(),
          engine.CreateWorkflow(Workflow({Task("x")})).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
      EXPECT_TRUE(absl::StrContains(status.message(), "disk full")) << status;
    }
    EXPECT_EQ(engine.RegisterAgent(Registration("a1", 1), std::make_shared<RecordingChannel>())
                  .status()
                  .code(),
              absl::StatusCode::kUnavailable);
    // Told once, off the engine lock (on the timer thread).
    absl::MutexLock lock(&mutex);
    mutex.AwaitWithTimeout(absl::Condition(
                               +[](std::vector<std::string>* r) { return !r->empty(); }, &reported),
                           absl::Seconds(10));
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_EQ(reported.size(), 1u);
  }
  // The restart: what was durable, and nothing else.
  auto store = NewMemoryStateStore(data);
  WorkflowEngine::Options options;
  options.store = store.get();
  options.snapshot_every_records = 0;
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  const absl::StatusOr<v1::ListExecutionsResponse> listed = engine.ListExecutions({});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->executions_size(), 1);
  EXPECT_EQ(listed->executions(0).name(), durable_execution);
}

}  // namespace
}  // namespace gyre::orchestrator

// Agents, queues and watchers: an agent id belongs to one live stream, an
// agent touches only what was leased to it, memory follows what is live.
namespace gyre::orchestrator {
namespace {

class AgentStreamTest : public ::testing::Test {
 protected:
  static WorkflowEngine::Options Options() {
    WorkflowEngine::Options options;
    options.lease_timeout = absl::Seconds(30);
    options.heartbeat_interval = absl::Milliseconds(200);
    return options;
  }

  std::string Start(v1::WorkflowDefinition def) {
    absl::StatusOr<v1::Execution> execution = engine_.StartExecution(StartRequest(std::move(def)));
    EXPECT_TRUE(execution.ok()) << execution.status();
    return execution.ok() ? execution->name() : "";
  }

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
  absl::SleepFor(absl::Milliseconds(800));
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
  engine_.ExpireLeases(absl::Now() + absl::Minutes(1));
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
