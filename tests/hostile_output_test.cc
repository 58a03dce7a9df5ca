// Hostile outputs, decisions and names: nothing a task writes, an evaluator
// decides or a client names may stall the engine; each gets a clear error
// and survives kill -9 and a restart.
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// Fails the test unless GetExecution of `execution` answers within 5 s:
// the engine is not frozen.
void ExpectServed(v1::OrchestratorService::Stub& stub, const std::string& execution) {
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::GetExecutionRequest request;
  request.set_name(execution);
  v1::Execution reply;
  const grpc::Status status = stub.GetExecution(&call, request, &reply);
  EXPECT_TRUE(status.ok()) << "GetExecution while a hostile output is handled: "
                           << status.error_message();
}

// kill -9 and a restart on the same data directory; the stub gets a fresh
// channel (and connection), answered once before the test goes on, so that
// no call after it meets the old, broken connection. Returns whether the orchestrator recovered.
#define CRASH_AND_RECOVER()                                                              \
  do {                                                                                   \
    ASSERT_FALSE(RestartOrchestrator(SIGKILL).empty()) << "no recovery";                 \
    grpc::ChannelArguments fresh;                                                        \
    fresh.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);                                 \
    stub_ = v1::OrchestratorService::NewStub(                                            \
        grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), fresh)); \
    grpc::ClientContext ready;                                                           \
    ready.set_wait_for_ready(true);                                                      \
    ready.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));             \
    v1::ListQueuesResponse queues;                                                       \
    ASSERT_TRUE(stub_->ListQueues(&ready, v1::ListQueuesRequest(), &queues).ok());       \
  } while (false)

std::string StoreWorkflow(v1::OrchestratorService::Stub& stub, const std::string& yaml) {
  absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(yaml, "stored.yaml");
  EXPECT_TRUE(def.ok()) << def.status();
  if (!def.ok()) return "";
  grpc::ClientContext call;
  v1::CreateWorkflowRequest request;
  *request.mutable_workflow() = *def;
  v1::WorkflowDefinition stored;
  const grpc::Status status = stub.CreateWorkflow(&call, request, &stored);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return stored.name();
}

// 200 KB of {"K":[[[[...]]]]}: protobuf's JSON parser took minutes on it,
// under the engine lock, and again at every recovery.
constexpr char kDeepOutputWorkflow[] = R"(
name: deep
tasks:
  - id: nest
    shell: true
    command: |
      { printf '{"K":'; head -c 100000 /dev/zero | tr '\0' '['; head -c 100000 /dev/zero | tr '\0' ']'; printf '}'; } > "$GYRE_OUTPUT"
  - {id: after, builtin: noop, depends_on: [nest]}
)";

TEST_F(Cluster, DeeplyNestedOutputFailsItsTaskWithoutStallingTheEngine) {
  StartAgent("a1");
  const std::string deep = Start(kDeepOutputWorkflow);
  ASSERT_FALSE(deep.empty());
  // Served while the output arrives and is refused.
  for (int i = 0; i < 5; ++i) {
    ExpectServed(*stub_, deep);
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(AwaitTaskState(deep, "nest", v1::TASK_FAILED, 1))
      << "the output froze the engine, or the task was not failed";
  const v1::TaskRun nest = Task(deep, "nest");
  ASSERT_GE(nest.attempts_size(), 1);
  EXPECT_TRUE(absl::StrContains(nest.attempts(0).error(), "nested deeper than 32 levels"))
      << nest.attempts(0).error();
  EXPECT_EQ(Wait(deep, absl::Seconds(10)), v1::EXECUTION_FAILED);
  // Another execution runs meanwhile, on the same agent stream.
  const std::string other = Start(R"(
name: other
tasks:
  - {id: a, shell: true, outputs: [K], command: 'echo "{\"K\": \"v\"}" > "$GYRE_OUTPUT"'}
  - {id: b, builtin: noop, depends_on: [a]}
)");
  EXPECT_EQ(Wait(other, absl::Seconds(10)), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Task(other, "a").outputs().fields().at("K").string_value(), "v");

  // Recovery does not parse the output again: it recovers within the
  // fixture's 20 s, and the task is still failed for the same reason.
  CRASH_AND_RECOVER();
  const v1::TaskRun recovered = Task(deep, "nest");
  EXPECT_EQ(recovered.state(), v1::TASK_FAILED);
  ASSERT_GE(recovered.attempts_size(), 1);
  EXPECT_EQ(recovered.attempts(0).error(), nest.attempts(0).error());
  EXPECT_EQ(Task(other, "a").outputs().fields().at("K").string_value(), "v");
}

TEST_F(Cluster, OutputOverTheLimitFromARogueAgentFailsTheTaskNotTheStream) {
  const std::string exec = Start(R"(
name: big
tasks:
  - {id: t, command: ["true"]}
)");
  agent_killed_ = true;  // the hand-driven agent hangs up at the end, unannounced
  HandDrivenAgentSession agent(address_, "rogue");
  std::optional<v1::AttemptRef> ref;
  while (auto message = agent.Next()) {
    if (message->has_assignment() && message->assignment().tasks_size() > 0) {
      ref = message->assignment().tasks(0).ref();
      break;
    }
  }
  ASSERT_TRUE(ref.has_value()) << "no assignment";
  v1::AgentMessage result;
  *result.mutable_task_result()->mutable_ref() = *ref;
  result.mutable_task_result()->set_outcome(v1::ATTEMPT_SUCCEEDED);
  result.mutable_task_result()->set_sequence(1);
  result.mutable_task_result()->set_output_json(
      absl::StrCat(R"({"K": ")", std::string((1 << 20) + 1, 'v'), R"("})"));
  ASSERT_TRUE(agent.Send(result));
  ASSERT_TRUE(AwaitTaskState(exec, "t", v1::TASK_FAILED, 1));
  EXPECT_TRUE(absl::StrContains(Task(exec, "t").attempts(0).error(), "at most 1048576"))
      << Task(exec, "t").attempts(0).error();
  // The stream lives on: the result is acknowledged on it.
  bool acknowledged = false;
  while (auto message = agent.Next()) {
    if (message->has_result_ack()) {
      acknowledged = true;
      break;
    }
  }
  EXPECT_TRUE(acknowledged);
}

TEST_F(Cluster, DecisionOfAnUndocumentedShapeFailsTheEvaluator) {
  StartAgent("a1");
  // protobuf's JSON parser flattened [["deploy"]] into "run": ["deploy"].
  const std::string exec = Start(R"(
name: shape
tasks:
  - id: judge
    evaluator: true
    shell: true
    command: |
      echo '{"run": [["deploy"]]}'
  - {id: deploy, builtin: noop, depends_on: [judge]}
)");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_FAILED);
  const v1::TaskRun judge = Task(exec, "judge");
  EXPECT_EQ(judge.state(), v1::TASK_FAILED);
  ASSERT_GE(judge.attempts_size(), 1);
  EXPECT_TRUE(
      absl::StrContains(judge.attempts(0).error(),
                        "evaluator output: \"run\" entry 0 is a list, not a task id string"))
      << judge.attempts(0).error();
  EXPECT_NE(Task(exec, "deploy").state(), v1::TASK_SUCCEEDED);

  // The refusal was recorded with the result: a replay keeps it.
  CRASH_AND_RECOVER();
  const v1::TaskRun replayed = Task(exec, "judge");
  EXPECT_EQ(replayed.state(), v1::TASK_FAILED);
  ASSERT_GE(replayed.attempts_size(), 1);
  EXPECT_EQ(replayed.attempts(0).error(), judge.attempts(0).error());
  EXPECT_NE(Task(exec, "deploy").state(), v1::TASK_SUCCEEDED);
}

TEST_F(Cluster, HugeNamesAreRefusedAtTheEdgeWithShortMessages) {
  // Many stored workflows: "did you mean" compared a 1 MB name with each.
  for (int i = 0; i < 40; ++i) {
    StoreWorkflow(*stub_,
                  absl::StrCat("name: stored-", i, "\ntasks:\n  - {id: t, builtin: noop}\n"));
  }
  {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::GetWorkflowRequest request;
    request.set_name("workflows/" + std::string(1 << 20, 'z'));
    v1::WorkflowDefinition reply;
    const grpc::Status status = stub_->GetWorkflow(&call, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_LT(status.error_message().size(), 400u) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "(1048586 bytes)"))
        << status.error_message();
  }
  {
    // 100 KB used to turn NOT_FOUND into a client-side metadata error.
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::GetExecutionRequest request;
    request.set_name("executions/" + std::string(100000, 'x'));
    v1::Execution reply;
    const grpc::Status status = stub_->GetExecution(&call, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_LT(status.error_message().size(), 400u);
  }
  {
    // Within the limit, unknown: NOT_FOUND quoting the name cut and escaped.
    grpc::ClientContext call;
    v1::GetTaskRunRequest request;
    request.set_name("executions/x\x1b[2J" + std::string(400, 'y'));
    v1::TaskRun reply;
    const grpc::Status status = stub_->GetTaskRun(&call, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
    EXPECT_LT(status.error_message().size(), 300u) << status.error_message();
    EXPECT_FALSE(absl::StrContains(status.error_message(), "\x1b")) << "control characters escaped";
    EXPECT_TRUE(absl::StrContains(status.error_message(), "\\x1b[2J"));
  }
  {
    // A long unknown target of a start: refused at the edge too.
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::StartExecutionRequest request;
    request.set_workflow("stored-1");
    request.add_targets(std::string(1000, 't'));
    v1::Execution reply;
    const grpc::Status status = stub_->StartExecution(&call, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "targets[0]")) << status.error_message();
  }
  CRASH_AND_RECOVER();
  grpc::ClientContext call;
  v1::GetWorkflowRequest request;
  request.set_name("workflows/stored-39");
  v1::WorkflowDefinition reply;
  EXPECT_TRUE(stub_->GetWorkflow(&call, request, &reply).ok());
}

TEST_F(Cluster, SelfStartingEvaluatorStopsAtTheDepthLimit) {
  StartAgent("a1");
  // Each execution's evaluator starts the workflow again: a chain that
  // would never end. The execution at depth 8 may start no child.
  ASSERT_EQ(StoreWorkflow(*stub_, R"(
name: again
tasks:
  - id: judge
    evaluator: true
    shell: true
    command: |
      echo '{"start": [{"workflow": "again"}]}'
)"),
            "workflows/again");
  grpc::ClientContext call;
  v1::StartExecutionRequest request;
  request.set_workflow("again");
  v1::Execution root;
  ASSERT_TRUE(stub_->StartExecution(&call, request, &root).ok());
  // Nine executions: the root and eight generations; the last one fails.
  std::vector<v1::Execution> all;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(100))) {
    all = ExecutionsOf("workflows/again");
    const bool settled =
        all.size() >= 9 && std::all_of(all.begin(), all.end(), [](const v1::Execution& e) {
          return e.state() == v1::EXECUTION_SUCCEEDED || e.state() == v1::EXECUTION_FAILED;
        });
    if (settled) break;
  }
  ASSERT_EQ(all.size(), 9u);
  int failed = 0;
  for (const v1::Execution& execution : all) {
    if (execution.state() != v1::EXECUTION_FAILED) continue;
    ++failed;
    const v1::TaskRun judge = Task(execution.name(), "judge");
    ASSERT_GE(judge.attempts_size(), 1);
    EXPECT_TRUE(absl::StrContains(judge.attempts(0).error(), "at most 8 deep"))
        << judge.attempts(0).error();
  }
  EXPECT_EQ(failed, 1);
  // Still nine, and still settled, after a restart.
  CRASH_AND_RECOVER();
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(ExecutionsOf("workflows/again").size(), 9u) << orchestrator_->Output();
}

TEST_F(Cluster, StartingAnUnknownWorkflowFailsTheEvaluator) {
  StartAgent("a1");
  const std::string exec = Start(R"(
name: unknown-child
tasks:
  - id: judge
    evaluator: true
    shell: true
    command: |
      echo '{"start": [{"workflow": "no-such-workflow"}]}'
)");
  EXPECT_EQ(Wait(exec), v1::EXECUTION_FAILED);
  const v1::TaskRun judge = Task(exec, "judge");
  ASSERT_GE(judge.attempts_size(), 1);
  EXPECT_TRUE(absl::StrContains(judge.attempts(0).error(),
                                "start[0]: \"workflows/no-such-workflow\" not found"))
      << judge.attempts(0).error();
  CRASH_AND_RECOVER();
  EXPECT_EQ(Task(exec, "judge").state(), v1::TASK_FAILED);
}

}  // namespace
}  // namespace gyre::e2e
