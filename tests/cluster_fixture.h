// The multi-process test fixture: gyre-orchestrator and gyre-agent run as
// separate processes and talk real gRPC over loopback; workflows are
// submitted and watched as a client would. Shared by the end-to-end test
// files under tests/.
#ifndef GYRE_TESTS_CLUSTER_FIXTURE_H_
#define GYRE_TESTS_CLUSTER_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "gyre/v1/agent_service.grpc.pb.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "libs/workflow/workflow_parser.h"

namespace gyre::e2e {

namespace v1 = ::gyre::v1;
using ::gyre::testing::ChildProcess;

inline std::string Binary(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

inline bool IsServing(const std::string& line) {
  return absl::StrContains(line, "\"msg\":\"serving\"");
}

// One Connect session of an agent driven by hand: it says only what the test
// sends, so it can fall silent as a hung agent would. Registers with one
// slot on queue "default" and that slot as credit, as gyre-agent does; the
// session's deadline ends every read, so a bug cannot hang the test.
class HandDrivenAgentSession {
 public:
  // `running`: attempts held from an earlier session (Register.running).
  HandDrivenAgentSession(const std::string& address, const std::string& agent_id,
                         const std::vector<v1::AttemptRef>& running = {})
      : stub_(v1::AgentService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    stream_ = stub_->Connect(&context_);
    v1::AgentMessage hello;
    v1::Register& registration = *hello.mutable_register_();
    registration.set_agent_id(agent_id);
    registration.set_slots(1);
    registration.add_queues("default");
    registration.set_initial_credit(1);
    for (const v1::AttemptRef& ref : running) *registration.add_running() = ref;
    EXPECT_TRUE(stream_->Write(hello)) << agent_id << ": register not sent";
  }

  ~HandDrivenAgentSession() {
    context_.TryCancel();
    stream_->Finish();
  }

  HandDrivenAgentSession(const HandDrivenAgentSession&) = delete;
  HandDrivenAgentSession& operator=(const HandDrivenAgentSession&) = delete;

  bool Send(const v1::AgentMessage& message) { return stream_->Write(message); }

  // The orchestrator's next message; none once the stream ended or the
  // deadline passed.
  std::optional<v1::OrchestratorMessage> Next() {
    v1::OrchestratorMessage message;
    if (!stream_->Read(&message)) return std::nullopt;
    return message;
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::OrchestratorMessage>> stream_;
};

// One orchestrator and any number of agents, each a real process.
class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    auto orchestrator = ChildProcess::Start(
        {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s", "--data_dir=" + root_ + "/data"},
        WithOrchestratorEnv({"GYRE_LEASE_TIMEOUT=1500ms", "GYRE_HEARTBEAT_INTERVAL=200ms",
                             "GYRE_SNAPSHOT_EVERY_RECORDS=10",
                             "GYRE_WORKER_POOLS={default: {min: 0, max: 4, factor: 6}}"}));
    ASSERT_TRUE(orchestrator.ok()) << orchestrator.status();
    orchestrator_ = *std::move(orchestrator);
    auto serving = orchestrator_->WaitForLine(IsServing, absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status();
    address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    metrics_port_ = *testing::JsonIntField(*serving, "metrics_port");
    stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  // Settings ("GYRE_KEY=value") a derived fixture gives every orchestrator
  // it starts (another store, say); asked before each start.
  virtual std::vector<std::string> ExtraOrchestratorEnv() { return {}; }

  std::vector<std::string> WithOrchestratorEnv(std::vector<std::string> env) {
    for (std::string& entry : ExtraOrchestratorEnv()) env.push_back(std::move(entry));
    return env;
  }

  // Stops the orchestrator with `signal` (SIGKILL: a crash) and starts it
  // again on the same port and data directory; agents reconnect on their
  // own. With `last_words`, the old process must log a line containing it
  // before it exits. Returns the new process's "engine recovered" log line.
  std::string RestartOrchestrator(int signal = SIGKILL, const std::string& last_words = "") {
    orchestrator_->Signal(signal);
    if (!last_words.empty()) {
      auto said = orchestrator_->WaitForLine(
          [&](const std::string& line) { return absl::StrContains(line, last_words); },
          absl::Seconds(10));
      EXPECT_TRUE(said.ok()) << "the stopping orchestrator never logged " << last_words << ":\n"
                             << orchestrator_->Output();
    }
    EXPECT_TRUE(orchestrator_->WaitForExit(absl::Seconds(10)).has_value());
    auto orchestrator = ChildProcess::Start(
        {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=" + address_,
         "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s", "--data_dir=" + root_ + "/data"},
        WithOrchestratorEnv({"GYRE_LEASE_TIMEOUT=1500ms", "GYRE_HEARTBEAT_INTERVAL=200ms",
                             "GYRE_SNAPSHOT_EVERY_RECORDS=10"}));
    EXPECT_TRUE(orchestrator.ok()) << orchestrator.status();
    if (!orchestrator.ok()) return "";
    orchestrator_ = *std::move(orchestrator);
    auto recovered = orchestrator_->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "engine recovered"); },
        absl::Seconds(20));
    EXPECT_TRUE(recovered.ok()) << recovered.status();
    auto serving = orchestrator_->WaitForLine(IsServing, absl::Seconds(20));
    EXPECT_TRUE(serving.ok()) << serving.status();
    if (serving.ok()) metrics_port_ = testing::JsonIntField(*serving, "metrics_port").value_or(0);
    return recovered.ok() ? *recovered : "";
  }

  void TearDown() override {
    // A live agent is never declared dead: its heartbeats keep it (a test
    // that kills one says so).
    if (orchestrator_ != nullptr && !agent_killed_) {
      EXPECT_FALSE(absl::StrContains(orchestrator_->Output(), "agent declared dead"))
          << orchestrator_->Output();
    }
    agents_.clear();
    orchestrator_.reset();
  }

  ChildProcess* StartAgent(const std::string& name, int slots = 4,
                           const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv = {
        Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
        "--metrics_address=127.0.0.1:0", "--orchestrator_address=" + address_,
        absl::StrCat("--slots=", slots), "--work_dir=" + root_ + "/" + name, "--shutdown_grace=2s",
        // The tests run as root (a CI container).
        "--allow_root_tasks=true"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto agent = ChildProcess::Start(argv, {"GYRE_NAME=" + name});
    EXPECT_TRUE(agent.ok()) << agent.status();
    ChildProcess* process = agent->get();
    agents_.push_back(*std::move(agent));
    EXPECT_TRUE(process
                    ->WaitForLine(
                        [](const std::string& line) {
                          return absl::StrContains(line, "registered with the orchestrator");
                        },
                        absl::Seconds(20))
                    .ok());
    return process;
  }

  // `gyre run` of the workflow `yaml` against this cluster.
  absl::StatusOr<std::unique_ptr<ChildProcess>> StartGyreRun(const std::string& yaml) {
    const std::string workflow = absl::StrCat(root_, "/workflow", ++workflow_files_, ".yaml");
    std::ofstream(workflow) << yaml;
    return ChildProcess::Start(
        {Binary("cmd/gyre/gyre"), "run", workflow, "--orchestrator=" + address_});
  }

  std::string Start(const std::string& yaml,
                    const std::map<std::string, std::string>& context = {}) {
    absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(yaml, "test.yaml");
    EXPECT_TRUE(def.ok()) << def.status();
    if (!def.ok()) return "";
    v1::StartExecutionRequest request;
    *request.mutable_definition() = *def;
    for (const auto& [key, value] : context) (*request.mutable_context())[key] = value;
    grpc::ClientContext call;
    v1::Execution execution;
    const grpc::Status status = stub_->StartExecution(&call, request, &execution);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return execution.name();
  }

  // Follows the event stream to the end, resuming from the last sequence
  // number if the stream breaks (as any client must across an orchestrator
  // restart); returns the final state.
  v1::ExecutionState Wait(const std::string& execution,
                          absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    int64_t next_sequence = 1;
    v1::ExecutionState state = v1::EXECUTION_STATE_UNSPECIFIED;
    while (absl::Now() < deadline) {
      grpc::ClientContext call;
      call.set_deadline(absl::ToChronoTime(deadline));
      call.set_wait_for_ready(true);
      v1::WatchRequest request;
      request.set_execution(execution);
      request.set_from_sequence(next_sequence);
      auto reader = stub_->WatchBatches(&call, request);
      v1::EventBatch batch;
      while (reader->Read(&batch)) {
        EXPECT_GT(batch.events_size(), 0) << "a batch is never empty";
        for (const v1::Event& event : batch.events()) {
          EXPECT_EQ(event.sequence(), next_sequence) << "events must arrive without gaps";
          next_sequence = event.sequence() + 1;
          if (event.has_execution_snapshot()) state = event.execution_snapshot().state();
        }
      }
      const grpc::Status status = reader->Finish();
      if (status.ok()) return state;
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        ADD_FAILURE() << "watch ended: " << status.error_message();
        return state;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return state;
  }

  v1::TaskRun Task(const std::string& execution, const std::string& task) {
    grpc::ClientContext call;
    v1::GetTaskRunRequest request;
    request.set_name(execution + "/tasks/" + task);
    v1::TaskRun run;
    EXPECT_TRUE(stub_->GetTaskRun(&call, request, &run).ok());
    return run;
  }

  // CancelExecution, PauseExecution and ResumeExecution of `name`; the
  // execution as the reply shows it goes to `execution` when given.
  grpc::Status Cancel(const std::string& name, v1::Execution* execution = nullptr) {
    return ControlRpc(&v1::OrchestratorService::Stub::CancelExecution, v1::CancelExecutionRequest(),
                      name, execution);
  }
  grpc::Status Pause(const std::string& name, v1::Execution* execution = nullptr) {
    return ControlRpc(&v1::OrchestratorService::Stub::PauseExecution, v1::PauseExecutionRequest(),
                      name, execution);
  }
  grpc::Status Resume(const std::string& name, v1::Execution* execution = nullptr) {
    return ControlRpc(&v1::OrchestratorService::Stub::ResumeExecution, v1::ResumeExecutionRequest(),
                      name, execution);
  }

  std::string Logs(const std::string& execution, const std::string& task) {
    grpc::ClientContext call;
    v1::GetTaskLogsRequest request;
    request.set_name(execution + "/tasks/" + task);
    v1::GetTaskLogsResponse logs;
    EXPECT_TRUE(stub_->GetTaskLogs(&call, request, &logs).ok());
    return logs.stdout();
  }

  // Every event of a finished execution as Watch streams them, from
  // `from_sequence` on.
  std::vector<v1::Event> WatchAll(const std::string& execution, int64_t from_sequence = 1) {
    grpc::ClientContext call;
    v1::WatchRequest request;
    request.set_execution(execution);
    request.set_from_sequence(from_sequence);
    auto reader = stub_->Watch(&call, request);
    std::vector<v1::Event> events;
    for (v1::Event event; reader->Read(&event);) events.push_back(event);
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return events;
  }

  // Every execution of the stored `workflow` ("workflows/{w}"), newest
  // first, across all pages.
  std::vector<v1::Execution> ExecutionsOf(const std::string& workflow) {
    std::vector<v1::Execution> executions;
    v1::ListExecutionsRequest request;
    request.set_workflow(workflow);
    do {
      grpc::ClientContext call;
      v1::ListExecutionsResponse page;
      const grpc::Status status = stub_->ListExecutions(&call, request, &page);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      executions.insert(executions.end(), page.executions().begin(), page.executions().end());
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty());
    return executions;
  }

  // Polls until the task reaches `state`.
  // Waits for the task to be in `state` (with at least `attempts` attempts).
  bool AwaitTaskState(const std::string& execution, const std::string& task, v1::TaskState state,
                      int attempts = 0) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      const v1::TaskRun run = Task(execution, task);
      if (run.state() == state && run.attempts_size() >= attempts) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // The value of one sample in the orchestrator's /metrics, or -1.
  double Metric(const std::string& sample) { return testing::MetricSample(metrics_port_, sample); }

  template <typename Request>
  grpc::Status ControlRpc(grpc::Status (v1::OrchestratorService::Stub::*rpc)(grpc::ClientContext*,
                                                                             const Request&,
                                                                             v1::Execution*),
                          Request request, const std::string& name, v1::Execution* execution) {
    grpc::ClientContext call;
    request.set_name(name);
    v1::Execution reply;
    return (stub_.get()->*rpc)(&call, request, execution != nullptr ? execution : &reply);
  }

  gyre::testing::ScratchDir scratch_{"gyre_e2e"};  // removed after TearDown stopped everything
  std::string root_ = scratch_.path();
  std::string address_;
  int metrics_port_ = 0;
  std::unique_ptr<ChildProcess> orchestrator_;
  bool agent_killed_ = false;  // set by a test that kills an agent
  int workflow_files_ = 0;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
};

}  // namespace gyre::e2e

#endif  // GYRE_TESTS_CLUSTER_FIXTURE_H_
