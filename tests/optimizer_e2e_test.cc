// gyre-optimizer as a real process beside a real orchestrator and agent:
// AnalyzeWorkflow of a stored workflow and of a finished execution over
// gRPC, `gyre analyze` printing it, and ApplyOptimizations storing a new
// version that then runs (priorities; timeout, retries and memory from
// history), refusing what it must not apply.
#include <google/protobuf/util/message_differencer.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// The "cpu" pool has one slot: z and w come first in dispatch order, so x,
// which gates the long y, waits; prioritizing x and y (the critical path)
// lets y run beside z and w (simulated: 2.1 s -> 1.1 s).
constexpr char kWorkflow[] = R"(
name: opt-e2e
tasks:
  - {id: z, builtin: sleep, duration: 500ms, queue: cpu}
  - {id: w, builtin: sleep, duration: 500ms, queue: cpu}
  - {id: x, builtin: sleep, duration: 100ms, queue: cpu}
  - {id: y, builtin: sleep, duration: 1s, depends_on: x}
)";

class OptimizerE2eTest : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    if (HasFatalFailure()) return;
    auto optimizer = ChildProcess::Start(
        {Binary("services/optimizer/gyre-optimizer"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--orchestrator_address=" + address_});
    ASSERT_TRUE(optimizer.ok()) << optimizer.status();
    optimizer_ = *std::move(optimizer);
    auto serving = optimizer_->WaitForLine(IsServing, absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status();
    optimizer_address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    optimizer_stub_ = v1::OptimizerService::NewStub(
        grpc::CreateChannel(optimizer_address_, grpc::InsecureChannelCredentials()));
    auto def = workflow::ParseWorkflowYaml(kWorkflow, "opt-e2e.yaml");
    ASSERT_TRUE(def.ok()) << def.status();
    v1::CreateWorkflowRequest create;
    *create.mutable_workflow() = *def;
    grpc::ClientContext call;
    v1::WorkflowDefinition created;
    const grpc::Status status = stub_->CreateWorkflow(&call, create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
    workflow_ = created.name();
  }
  void TearDown() override {
    optimizer_.reset();
    Cluster::TearDown();
  }

  v1::AnalyzeWorkflowRequest CpuPoolOfOne() {
    v1::AnalyzeWorkflowRequest request;
    (*request.mutable_slots_per_queue())["cpu"] = 1;
    return request;
  }

  std::unique_ptr<ChildProcess> optimizer_;
  std::string optimizer_address_;
  std::unique_ptr<v1::OptimizerService::Stub> optimizer_stub_;
  std::string workflow_;
};

TEST_F(OptimizerE2eTest, AnalyzesAStoredWorkflowFetchedFromTheOrchestrator) {
  v1::AnalyzeWorkflowRequest request = CpuPoolOfOne();
  request.set_workflow(workflow_);
  grpc::ClientContext call;
  v1::AnalyzeWorkflowResponse response;
  const grpc::Status status = optimizer_stub_->AnalyzeWorkflow(&call, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << optimizer_->Output();
  EXPECT_EQ(response.workflow(), workflow_ + "/versions/1");
  ASSERT_EQ(response.critical_path_size(), 2);
  EXPECT_EQ(response.critical_path(0), "x");
  EXPECT_EQ(response.critical_path(1), "y");
  EXPECT_EQ(response.expected_makespan().seconds(), 2);  // 2.1 s
  EXPECT_EQ(response.duration_sources().builtin(), 4);
  bool prioritize = false;
  for (const auto& rec : response.recommendations()) {
    if (rec.id() == "prioritize-critical-path") {
      prioritize = true;
      EXPECT_EQ(rec.predicted_makespan().seconds(), 1);  // 1.1 s
      EXPECT_FALSE(rec.changes_semantics());
    }
  }
  EXPECT_TRUE(prioritize) << response.DebugString();

  // An unknown workflow is the orchestrator's NOT_FOUND, said as such.
  request.set_workflow("workflows/nope");
  grpc::ClientContext missing_call;
  const grpc::Status missing = optimizer_stub_->AnalyzeWorkflow(&missing_call, request, &response);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND) << missing.error_message();
  EXPECT_TRUE(absl::StrContains(missing.error_message(), "workflows/nope"))
      << missing.error_message();

  // The CLI prints the same analysis.
  auto cli = ChildProcess::Start({Binary("cmd/gyre/gyre"), "analyze", workflow_, "--pool=cpu=1",
                                  "--optimizer=" + optimizer_address_});
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_EQ((*cli)->WaitForExit(absl::Seconds(30)), 0) << (*cli)->Output();
  const std::string out = (*cli)->Output();
  EXPECT_TRUE(absl::StrContains(out, "critical path: 1.1 s of 2.1 s total work (52%): x -> y"))
      << out;
  EXPECT_TRUE(absl::StrContains(out,
                                "[prioritize-critical-path] give the 2 critical-path tasks "
                                "priority 60: predicted makespan -48%"))
      << out;
}

TEST_F(OptimizerE2eTest, AppliedRecommendationsAreANewVersionThatRuns) {
  v1::ApplyOptimizationsRequest apply;
  apply.set_workflow(workflow_);
  *apply.mutable_analysis() = CpuPoolOfOne();
  // A change to what the workflow computes is refused, naming it.
  apply.add_recommendation_ids("parallel-y-x");
  v1::ApplyOptimizationsResponse response;
  {
    grpc::ClientContext call;
    const grpc::Status refused = optimizer_stub_->ApplyOptimizations(&call, apply, &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(), "changes what the workflow computes"))
        << refused.error_message();
  }
  apply.clear_recommendation_ids();
  apply.add_recommendation_ids("prioritize-critical-path");
  // A dry run shows the version it would store, and stores nothing.
  apply.set_dry_run(true);
  {
    grpc::ClientContext call;
    const grpc::Status status = optimizer_stub_->ApplyOptimizations(&call, apply, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << optimizer_->Output();
  }
  EXPECT_EQ(response.base_version(), 1);
  EXPECT_EQ(response.workflow().version(), 2);
  EXPECT_EQ(response.diff_size(), 2) << response.DebugString();
  {
    v1::GetWorkflowRequest get;
    get.set_name(workflow_);
    v1::WorkflowDefinition stored;
    grpc::ClientContext call;
    ASSERT_TRUE(stub_->GetWorkflow(&call, get, &stored).ok());
    EXPECT_EQ(stored.version(), 1) << "a dry run stores nothing";
  }
  apply.set_dry_run(false);
  {
    grpc::ClientContext call;
    const grpc::Status status = optimizer_stub_->ApplyOptimizations(&call, apply, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << optimizer_->Output();
  }
  EXPECT_EQ(response.base_version(), 1);
  EXPECT_EQ(response.workflow().version(), 2);
  ASSERT_EQ(response.diff_size(), 2) << response.DebugString();
  EXPECT_EQ(response.diff(0).task_id(), "x");
  EXPECT_EQ(response.diff(0).field(), "priority");
  EXPECT_EQ(response.diff(0).before(), "50 (the default)");
  EXPECT_EQ(response.diff(0).after(), "60");

  // The orchestrator holds it as the latest version...
  v1::GetWorkflowRequest get;
  get.set_name(workflow_);
  v1::WorkflowDefinition latest;
  grpc::ClientContext get_call;
  ASSERT_TRUE(stub_->GetWorkflow(&get_call, get, &latest).ok());
  EXPECT_EQ(latest.version(), 2);
  for (const auto& task : latest.tasks()) {
    EXPECT_EQ(task.priority(), task.id() == "x" || task.id() == "y" ? 60 : 0) << task.id();
  }
  // ... and it runs.
  StartAgent("worker", 1, {"--queues=[cpu, default]"});
  v1::StartExecutionRequest start;
  start.set_workflow(workflow_);
  v1::Execution execution;
  grpc::ClientContext start_call;
  const grpc::Status started = stub_->StartExecution(&start_call, start, &execution);
  ASSERT_TRUE(started.ok()) << started.error_message();
  EXPECT_EQ(execution.workflow_version(), 2);
  ASSERT_EQ(Wait(execution.name()), v1::EXECUTION_SUCCEEDED);

  // A finished execution is analyzed with its actual durations.
  v1::AnalyzeWorkflowRequest request;
  request.set_execution(execution.name());
  v1::AnalyzeWorkflowResponse analysis;
  grpc::ClientContext analyze_call;
  const grpc::Status analyzed = optimizer_stub_->AnalyzeWorkflow(&analyze_call, request, &analysis);
  ASSERT_TRUE(analyzed.ok()) << analyzed.error_message();
  EXPECT_EQ(analysis.workflow(), workflow_ + "/versions/2");
  EXPECT_EQ(analysis.duration_sources().actual(), 4) << analysis.DebugString();
  EXPECT_GE(analysis.critical_path_duration().seconds(), 1);  // y slept 1 s
}

// History makes three definition changes: fetch's 1 h timeout is far above
// its ~0.1 s runs, its 1 GiB of memory far above its peak RSS, and check's
// retry never succeeds (it always fails).
constexpr char kHistoryWorkflow[] = R"(
name: opt-history
tasks:
  - id: fetch
    command: [/bin/sleep, "0.1"]
    timeout: 1h
    resources: {memory: 1Gi}
  - id: check
    command: [/bin/false]
    depends_on: fetch
    retries: {count: 1, initial_backoff: 100ms}
)";

const v1::DefinitionChange* ChangeOf(const v1::ApplyOptimizationsResponse& response,
                                     const std::string& field) {
  for (const auto& change : response.diff()) {
    if (change.field() == field) return &change;
  }
  return nullptr;
}

TEST_F(OptimizerE2eTest, TimeoutRetryAndMemoryFromHistoryAreAppliedAndNothingElseChanges) {
  auto def = workflow::ParseWorkflowYaml(kHistoryWorkflow, "opt-history.yaml");
  ASSERT_TRUE(def.ok()) << def.status();
  v1::WorkflowDefinition first;
  {
    v1::CreateWorkflowRequest create;
    *create.mutable_workflow() = *def;
    grpc::ClientContext call;
    const grpc::Status status = stub_->CreateWorkflow(&call, create, &first);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  StartAgent("worker", 2, {"--memory_bytes=8589934592"});
  v1::ApplyOptimizationsRequest apply;
  apply.set_workflow(first.name());
  for (int run = 0; run < 3; ++run) {
    v1::StartExecutionRequest start;
    start.set_workflow(first.name());
    v1::Execution execution;
    grpc::ClientContext call;
    const grpc::Status started = stub_->StartExecution(&call, start, &execution);
    ASSERT_TRUE(started.ok()) << started.error_message();
    ASSERT_EQ(Wait(execution.name()), v1::EXECUTION_FAILED) << "check always fails";
    apply.mutable_analysis()->add_history_executions(execution.name());
  }
  for (const char* id : {"timeout-fetch", "retries-check", "memory-fetch"}) {
    apply.add_recommendation_ids(id);
  }
  v1::ApplyOptimizationsResponse response;
  {
    grpc::ClientContext call;
    const grpc::Status status = optimizer_stub_->ApplyOptimizations(&call, apply, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << optimizer_->Output();
  }
  EXPECT_EQ(response.base_version(), 1);
  EXPECT_EQ(response.workflow().version(), 2);
  ASSERT_EQ(response.diff_size(), 3) << response.DebugString();
  const v1::DefinitionChange* timeout = ChangeOf(response, "timeout");
  ASSERT_NE(timeout, nullptr) << response.DebugString();
  EXPECT_EQ(timeout->task_id(), "fetch");
  EXPECT_EQ(timeout->recommendation_id(), "timeout-fetch");
  EXPECT_EQ(timeout->before(), "3600s");
  EXPECT_EQ(timeout->after(), "10s") << "3 x p99, at least 10 s";
  const v1::DefinitionChange* retries = ChangeOf(response, "retry.max_retries");
  ASSERT_NE(retries, nullptr) << response.DebugString();
  EXPECT_EQ(retries->task_id(), "check");
  EXPECT_EQ(retries->before(), "1");
  EXPECT_EQ(retries->after(), "0");
  const v1::DefinitionChange* memory = ChangeOf(response, "resources.memory_bytes");
  ASSERT_NE(memory, nullptr) << response.DebugString();
  EXPECT_EQ(memory->task_id(), "fetch");
  EXPECT_EQ(memory->before(), "1073741824");

  // The stored version 2 has exactly those changes...
  v1::GetWorkflowRequest get;
  get.set_name(first.name());
  v1::WorkflowDefinition latest;
  {
    grpc::ClientContext call;
    ASSERT_TRUE(stub_->GetWorkflow(&call, get, &latest).ok());
  }
  EXPECT_EQ(latest.version(), 2);
  ASSERT_EQ(latest.tasks_size(), 2);
  const v1::TaskSpec& fetch = latest.tasks(0);
  const v1::TaskSpec& check = latest.tasks(1);
  ASSERT_EQ(fetch.id(), "fetch");
  ASSERT_EQ(check.id(), "check");
  EXPECT_EQ(fetch.timeout().seconds(), 10);
  EXPECT_EQ(check.retry().max_retries(), 0);
  // 1.5 x the peak RSS of /bin/sleep, in whole MiB: far below 1 GiB.
  EXPECT_GT(fetch.resources().memory_bytes(), 0);
  EXPECT_LT(fetch.resources().memory_bytes(), int64_t{64} << 20);
  EXPECT_EQ(fetch.resources().memory_bytes() % (1 << 20), 0);
  EXPECT_EQ(memory->after(), absl::StrCat(fetch.resources().memory_bytes()));
  EXPECT_TRUE(absl::StrContains(latest.source(),
                                "version 1 with timeout-fetch, retries-check, "
                                "memory-fetch"))
      << latest.source();
  // ... and nothing else: with those three fields put back, it is version 1
  // (the same commands, dependencies, backoff, everything).
  v1::WorkflowDefinition restored = latest;
  *restored.mutable_tasks(0)->mutable_timeout() = first.tasks(0).timeout();
  restored.mutable_tasks(0)->mutable_resources()->set_memory_bytes(
      first.tasks(0).resources().memory_bytes());
  restored.mutable_tasks(1)->mutable_retry()->set_max_retries(first.tasks(1).retry().max_retries());
  for (v1::WorkflowDefinition* d : {&restored, &first}) {
    d->clear_version();
    d->clear_create_time();
    d->clear_source();
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(restored, first))
      << "version 2:\n"
      << restored.DebugString() << "version 1:\n"
      << first.DebugString();
  ASSERT_EQ(check.depends_on_size(), 1);
  EXPECT_EQ(check.depends_on(0), "fetch");
  EXPECT_EQ(check.command(0), "/bin/false");
}

// A lone chain a -> b: the optimizer measures running b beside a, which
// changes what the workflow computes. ApplyOptimizations refuses it, in a
// dry run too (the gateway's 409): a dry run shows what would be stored,
// and such a change never is. Nothing is stored; the message says what to
// change by hand.
TEST_F(OptimizerE2eTest, ADryRunOfAChangeToWhatTheWorkflowComputesIsRefusedAndStoresNothing) {
  auto def = workflow::ParseWorkflowYaml(R"(
name: opt-chain
tasks:
  - {id: a, builtin: sleep, duration: 2s}
  - {id: b, builtin: sleep, duration: 3s, depends_on: a}
)",
                                         "opt-chain.yaml");
  ASSERT_TRUE(def.ok()) << def.status();
  v1::WorkflowDefinition created;
  {
    v1::CreateWorkflowRequest create;
    *create.mutable_workflow() = *def;
    grpc::ClientContext call;
    ASSERT_TRUE(stub_->CreateWorkflow(&call, create, &created).ok());
  }
  v1::AnalyzeWorkflowRequest analyze;
  analyze.set_workflow(created.name());
  v1::AnalyzeWorkflowResponse analysis;
  {
    grpc::ClientContext call;
    const grpc::Status status = optimizer_stub_->AnalyzeWorkflow(&call, analyze, &analysis);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(analysis.recommendations_size(), 1) << analysis.DebugString();
  EXPECT_EQ(analysis.recommendations(0).id(), "parallel-b-a");
  EXPECT_TRUE(analysis.recommendations(0).changes_semantics());

  v1::ApplyOptimizationsRequest apply;
  apply.set_workflow(created.name());
  apply.add_recommendation_ids("parallel-b-a");
  apply.set_dry_run(true);
  v1::ApplyOptimizationsResponse response;
  {
    grpc::ClientContext call;
    const grpc::Status refused = optimizer_stub_->ApplyOptimizations(&call, apply, &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(),
                                  "recommendation \"parallel-b-a\": changes what the workflow "
                                  "computes"))
        << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(),
                                  "by hand if it is right: if b does not need a's results"))
        << refused.error_message();
  }
  // A pool's max is refused alike, naming where to set it.
  v1::ApplyOptimizationsRequest pool;
  pool.set_workflow(workflow_);
  *pool.mutable_analysis() = CpuPoolOfOne();
  pool.add_recommendation_ids("pool-cpu-max-2");
  pool.set_dry_run(true);
  {
    grpc::ClientContext call;
    const grpc::Status refused = optimizer_stub_->ApplyOptimizations(&call, pool, &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << refused.error_message();
    EXPECT_TRUE(absl::StrContains(refused.error_message(), "worker_pools.cpu.max to 2"))
        << refused.error_message();
  }
  v1::GetWorkflowRequest get;
  get.set_name(created.name());
  v1::WorkflowDefinition latest;
  grpc::ClientContext get_call;
  ASSERT_TRUE(stub_->GetWorkflow(&get_call, get, &latest).ok());
  EXPECT_EQ(latest.version(), 1);
}

}  // namespace
}  // namespace gyre::e2e
