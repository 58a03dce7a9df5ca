// Hostile sizes: requests, outputs and names larger or deeper than Gyre's limits get a clear error,
// never a stalled engine or a state a restart cannot load.
#include <filesystem>
#include <fstream>

#include "libs/common/limits.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// `n` context entries of `bytes` each, named PREFIX0, PREFIX1...
std::map<std::string, std::string> BigContext(const std::string& prefix, int n, size_t bytes) {
  std::map<std::string, std::string> context;
  for (int i = 0; i < n; ++i) context[prefix + std::to_string(i)] = std::string(bytes, 'v');
  return context;
}

// A task that leaves `marker` behind if it ever runs.
v1::WorkflowDefinition MarkerWorkflow(const std::string& marker, const std::string& description) {
  v1::WorkflowDefinition def;
  def.set_name("workflows/big");
  v1::TaskSpec* task = def.add_tasks();
  task->set_id("big");
  task->set_description(description);
  task->add_command("touch");
  task->add_command(marker);
  return def;
}

class HostileSizes : public Cluster {
 protected:
  grpc::Status StartRequest(const v1::StartExecutionRequest& request,
                            v1::Execution* execution = nullptr) {
    grpc::ClientContext call;
    v1::Execution ignored;
    return stub_->StartExecution(&call, request, execution != nullptr ? execution : &ignored);
  }

  int ExecutionCount() {
    grpc::ClientContext call;
    v1::ListExecutionsResponse list;
    const grpc::Status status = stub_->ListExecutions(&call, v1::ListExecutionsRequest(), &list);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return list.executions_size();
  }

  // Runs `gyre list` against the cluster; returns its exit code and output.
  std::pair<int, std::string> GyreList() {
    auto list = ChildProcess::Start(
        {Binary("cmd/gyre/gyre"), "list", "--limit=50", "--orchestrator=" + address_});
    EXPECT_TRUE(list.ok()) << list.status();
    if (!list.ok()) return {-1, ""};
    const std::optional<int> exit = (*list)->WaitForExit(absl::Seconds(30));
    return {exit.value_or(-1), (*list)->Output()};
  }

  const std::string ok_workflow_ = R"(
name: small
# Its tests pass large contexts they do not declare: they are about sizes.
context_passthrough: true
tasks:
  - id: hello
    command: [sh, -c, "echo hello"]
)";
};

// Critical 1: a start larger than the log's record limit used to be applied
// in memory (it ran), answered INVALID_ARGUMENT, and left a data directory
// that never restarted ("lease of an unknown execution").
TEST_F(HostileSizes, AnOversizedInlineStartIsRefusedNothingRunsAndAKill9Recovers) {
  StartAgent("a1");
  const std::string marker = root_ + "/big-ran";
  v1::StartExecutionRequest request;
  // 70 MB of description: over the gRPC request limit, refused by gRPC.
  *request.mutable_definition() = MarkerWorkflow(marker, std::string(70'000'000, 'd'));
  grpc::Status status = StartRequest(request);
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_code() << ": " << status.error_message();
  // 1 MiB: within gRPC's limit, over a task field's; refused by the engine.
  *request.mutable_definition() = MarkerWorkflow(marker, std::string(1 << 20, 'd'));
  status = StartRequest(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "task \"big\": description is"))
      << status.error_message();

  // Nothing was applied: no execution, and a later one runs alone (the
  // agent would have taken the refused one first).
  EXPECT_EQ(ExecutionCount(), 0);
  const std::string small = Start(ok_workflow_);
  EXPECT_EQ(Wait(small), v1::EXECUTION_SUCCEEDED);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a refused execution ran";
  EXPECT_EQ(ExecutionCount(), 1);

  RestartOrchestrator(SIGKILL);
  EXPECT_EQ(Wait(small), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(Start(ok_workflow_)), v1::EXECUTION_SUCCEEDED);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

// Critical 1: a task printing more than the record limit used to be applied
// and published as SUCCEEDED but never persisted: RUNNING again after kill -9.
TEST_F(HostileSizes, AHugeStdoutIsStoredCappedAndSurvivesKill9AsSucceeded) {
  // The agent is told to keep far more than the orchestrator does.
  const std::string config = root_ + "/agent.yaml";
  std::ofstream(config) << "max_output_bytes: 100000000\n";
  StartAgent("a1", 2, {"--config=" + config});
  const std::string execution = Start(R"(
name: loud
tasks:
  - id: loud
    shell: true
    command: head -c 70000000 /dev/zero | tr '\0' a
)");
  ASSERT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Logs(execution, "loud").size(), limits::kMaxResultTailBytes);

  RestartOrchestrator(SIGKILL);
  EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun run = Task(execution, "loud");
  EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED);
  ASSERT_EQ(run.attempts_size(), 1);
  EXPECT_EQ(run.attempts(0).stdout_bytes(), 70'000'000);
  EXPECT_EQ(Logs(execution, "loud").size(), limits::kMaxResultTailBytes);
}

// The same through a rogue agent that sends an oversized result itself:
// the orchestrator cuts it on arrival and acknowledges it; it is never
// refused (the agent would re-send it for ever).
TEST_F(HostileSizes, ARogueAgentsOversizedResultIsCutAcknowledgedAndKept) {
  const std::string execution = Start(ok_workflow_);
  v1::AttemptRef ref;
  {
    HandDrivenAgentSession agent(address_, "rogue");
    std::optional<v1::OrchestratorMessage> message;
    while ((message = agent.Next()) && !message->has_assignment()) {
    }
    ASSERT_TRUE(message.has_value()) << "no assignment";
    ref = message->assignment().tasks(0).ref();
    v1::AgentMessage report;
    v1::TaskResult* result = report.mutable_task_result();
    *result->mutable_ref() = ref;
    result->set_outcome(v1::ATTEMPT_SUCCEEDED);
    result->set_stdout_tail(std::string(10'000'000, 'o'));
    result->set_stdout_bytes(10'000'000);
    result->set_sequence(1);
    ASSERT_TRUE(agent.Send(report));
    bool acked = false;
    while ((message = agent.Next())) {
      if (message->has_result_ack() && message->result_ack().through_sequence() >= 1) {
        acked = true;
        break;
      }
    }
    EXPECT_TRUE(acked) << "the result was never acknowledged";
  }
  EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Logs(execution, "hello").size(), limits::kMaxResultTailBytes);
  RestartOrchestrator(SIGKILL);
  EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Logs(execution, "hello").size(), limits::kMaxResultTailBytes);
}

// High 4: 70 values of 64 KiB were each within the limit, and together more
// than an agent's stream carried: every assignment broke the stream.
TEST_F(HostileSizes, AContextOfSeventyValuesOf64KiBIsRefusedAtSubmission) {
  StartAgent("a1");
  const std::string marker = root_ + "/big-ran";
  v1::StartExecutionRequest request;
  *request.mutable_definition() = MarkerWorkflow(marker, "");
  for (const auto& [key, value] : BigContext("V", 70, 64 * 1024)) {
    (*request.mutable_context())[key] = value;
  }
  const grpc::Status status = StartRequest(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "at most 1048576"))
      << status.error_message();
  EXPECT_EQ(ExecutionCount(), 0);
  // The agent is healthy and takes the next execution.
  EXPECT_EQ(Wait(Start(ok_workflow_)), v1::EXECUTION_SUCCEEDED);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

// High 4: outputs merged in at run time can take a task's environment past
// what exec takes (E2BIG) or a message carries: the task fails with a reason
// at dispatch, and the agent goes on with the next task.
TEST_F(HostileSizes, ATaskWhoseOutputsOutgrowExecFailsWithAReasonAndTheAgentGoesOn) {
  StartAgent("a1");
  // Each of "a" and "b" passes on 15 values of ~64 KiB (under 1 MiB of
  // $GYRE_OUTPUT); with the context's 960 KiB, "c" would get 2.8 MiB.
  auto producer = [](const std::string& id, const std::string& prefix) {
    return absl::StrCat("  - id: ", id, R"(
    shell: true
    command: |
      v=$(head -c 65000 /dev/zero | tr '\0' x)
      { printf '{'; for i in $(seq 0 14); do [ "$i" -gt 0 ] && printf ','; printf '")",
                        prefix, R"(%d":"%s"' "$i" "$v"; done; printf '}'; } > "$GYRE_OUTPUT"
)");
  };
  const std::string execution = Start(absl::StrCat(R"(
name: grows
context_passthrough: true
tasks:
)",
                                                   producer("a", "A"), producer("b", "B"), R"(
  - id: c
    depends_on: [a, b]
    command: [sh, -c, "echo ran"]
)"),
                                      BigContext("V", 15, 64 * 1024));
  EXPECT_EQ(Wait(execution), v1::EXECUTION_FAILED);
  EXPECT_EQ(Task(execution, "a").state(), v1::TASK_SUCCEEDED);
  const v1::TaskRun c = Task(execution, "c");
  EXPECT_EQ(c.state(), v1::TASK_FAILED);
  ASSERT_GE(c.attempts_size(), 1);
  EXPECT_TRUE(absl::StrContains(c.attempts(0).error(), "command line and environment"))
      << c.attempts(0).error();
  // The agent is healthy and takes the next task.
  EXPECT_EQ(Wait(Start(ok_workflow_)), v1::EXECUTION_SUCCEEDED);

  RestartOrchestrator(SIGKILL);
  EXPECT_EQ(Wait(execution), v1::EXECUTION_FAILED);
  EXPECT_EQ(Wait(Start(ok_workflow_)), v1::EXECUTION_SUCCEEDED);
}

// High 4: ListExecutions returned every context in full, so `gyre list`
// failed (over gRPC's 4 MB) while large executions were recent.
TEST_F(HostileSizes, GyreListWorksWhileLargeContextExecutionsAreRecent) {
  StartAgent("a1");
  std::vector<std::string> executions;
  // Five of 960 KiB: 4.7 MiB of contexts.
  for (int i = 0; i < 5; ++i) {
    executions.push_back(Start(ok_workflow_, BigContext("V", 15, 64 * 1024)));
  }
  for (const std::string& execution : executions) {
    EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  }
  auto [exit, output] = GyreList();
  EXPECT_EQ(exit, 0) << output;
  for (const std::string& execution : executions) {
    EXPECT_TRUE(absl::StrContains(output, execution)) << output;
  }
  // Lists carry no context unless asked; FULL pages stay bounded, and
  // GetExecution has the whole context.
  EXPECT_EQ(ExecutionsOf("workflows/small").size(), 5u);
  v1::ListExecutionsRequest full;
  full.set_view(v1::EXECUTION_VIEW_FULL);
  size_t listed = 0;
  do {
    grpc::ClientContext call;
    v1::ListExecutionsResponse page;
    const grpc::Status status = stub_->ListExecutions(&call, full, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::Execution& execution : page.executions()) {
      EXPECT_EQ(execution.context_size(), 15);
      ++listed;
    }
    full.set_page_token(page.next_page_token());
  } while (!full.page_token().empty());
  EXPECT_EQ(listed, 5u);
  grpc::ClientContext call;
  v1::GetExecutionRequest get;
  get.set_name(executions[0]);
  v1::Execution whole;
  ASSERT_TRUE(stub_->GetExecution(&call, get, &whole).ok());
  EXPECT_EQ(whole.context_size(), 15);

  RestartOrchestrator(SIGKILL);
  std::tie(exit, output) = GyreList();
  EXPECT_EQ(exit, 0) << output;
  EXPECT_TRUE(absl::StrContains(output, executions[4])) << output;
}

// The orchestrator's configurable limits on workflow size and on how fast
// one client starts executions, through a real process and real gRPC.
class ConfiguredLimits : public HostileSizes {
 protected:
  std::vector<std::string> ExtraOrchestratorEnv() override {
    return {"GYRE_MAX_WORKFLOW_TASKS=3", "GYRE_MAX_WORKFLOW_EDGES=1",
            "GYRE_EXECUTIONS_PER_SECOND_PER_CLIENT=1", "GYRE_EXECUTION_BURST_PER_CLIENT=2"};
  }
};

TEST_F(ConfiguredLimits, TaskAndEdgeCountsAndStartRateAreRefusedNamingTheLimit) {
  v1::WorkflowDefinition def;
  def.set_name("four");
  for (int i = 0; i < 4; ++i) {
    v1::TaskSpec* task = def.add_tasks();
    task->set_id(absl::StrCat("t", i));
    task->add_command("true");
  }
  v1::CreateWorkflowRequest create;
  *create.mutable_workflow() = def;
  grpc::ClientContext call;
  v1::WorkflowDefinition created;
  grpc::Status status = stub_->CreateWorkflow(&call, create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "workflow \"four\" has 4 tasks; at most 3 are accepted (the orchestrator's "
            "max_workflow_tasks)");
  def.mutable_tasks()->RemoveLast();
  def.mutable_tasks(2)->add_depends_on("t0");
  def.mutable_tasks(2)->add_depends_on("t1");
  *create.mutable_workflow() = def;
  grpc::ClientContext again;
  status = stub_->CreateWorkflow(&again, create, &created);
  EXPECT_TRUE(absl::StrContains(status.error_message(),
                                "has 2 dependencies (depends_on entries); at most 1 are accepted "
                                "(the orchestrator's max_workflow_edges)"))
      << status.error_message();

  // 1 start a second, bursts of 2: of 50 starts sent at once, the first two
  // are admitted (and refused next for having no workflow), and unless
  // sending them took over 40 s most of the rest are refused for the rate.
  int admitted = 0;
  int limited = 0;
  for (int i = 0; i < 50; ++i) {
    const grpc::Status start = StartRequest(v1::StartExecutionRequest());
    if (start.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      EXPECT_TRUE(absl::StrContains(start.error_message(),
                                    "executions_per_second_per_client (1 a second, bursts of 2)"))
          << start.error_message();
      ++limited;
    } else {
      EXPECT_EQ(start.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << start.error_message();
      ++admitted;
    }
  }
  EXPECT_GE(admitted, 2);
  EXPECT_GE(limited, 10);
}

}  // namespace
}  // namespace gyre::e2e
