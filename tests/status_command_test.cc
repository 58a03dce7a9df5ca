// `gyre status` of an execution of several pages of task runs (issue 21):
// the real `gyre` binary against an orchestrator's gRPC service on
// loopback, which streams the pages (StreamTaskRuns), and against one
// that answers only the unary calls, as an orchestrator from before
// StreamTaskRuns, which it pages through with ListTaskRuns. Either way
// every task is printed, once, in workflow order.

#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::testing::ChildProcess;

// Three pages at ListTaskRuns' default page size of 1,000.
constexpr int kTasks = 2100;

std::string Binary(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

std::unique_ptr<grpc::Server> Serve(grpc::Service* service, std::string* address) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  *address = absl::StrCat("127.0.0.1:", port);
  return server;
}

// An orchestrator from before StreamTaskRuns: GetExecution and
// ListTaskRuns, answered by a real one; StreamTaskRuns is left to the
// generated base (UNIMPLEMENTED).
class PagingOnlyOrchestrator final : public v1::OrchestratorService::Service {
 public:
  explicit PagingOnlyOrchestrator(v1::OrchestratorService::Stub* real) : real_(real) {}

  grpc::Status GetExecution(grpc::ServerContext*, const v1::GetExecutionRequest* request,
                            v1::Execution* response) override {
    grpc::ClientContext context;
    return real_->GetExecution(&context, *request, response);
  }
  grpc::Status ListTaskRuns(grpc::ServerContext*, const v1::ListTaskRunsRequest* request,
                            v1::ListTaskRunsResponse* response) override {
    grpc::ClientContext context;
    ++pages_;
    return real_->ListTaskRuns(&context, *request, response);
  }
  int pages() const { return pages_.load(); }

 private:
  v1::OrchestratorService::Stub* const real_;
  std::atomic<int> pages_{0};
};

class StatusCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WorkflowEngine::Options options;
    options.store = store_.get();
    options.snapshot_every_records = 0;
    engine_ = std::make_unique<WorkflowEngine>(options);
    ASSERT_TRUE(engine_->Recover().ok());
    service_ = std::make_unique<OrchestratorServiceImpl>(engine_.get());
    server_ = Serve(service_.get(), &address_);
    ASSERT_NE(server_, nullptr);
    stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));

    // No agent: every task stays ready, and is listed as such.
    v1::StartExecutionRequest start;
    start.mutable_definition()->set_name("wide");
    for (int i = 0; i < kTasks; ++i) {
      v1::TaskSpec* task = start.mutable_definition()->add_tasks();
      task->set_id(absl::StrCat("t", i));
      task->add_command("true");
    }
    grpc::ClientContext context;
    v1::Execution execution;
    const grpc::Status status = stub_->StartExecution(&context, start, &execution);
    ASSERT_TRUE(status.ok()) << status.error_message();
    execution_ = execution.name();
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // gyre status of the execution against `address`: its output, after
  // checking that it succeeded.
  std::string Status(const std::string& address) {
    auto status = ChildProcess::Start(
        {Binary("cmd/gyre/gyre"), "status", execution_, "--orchestrator=" + address});
    EXPECT_TRUE(status.ok()) << status.status();
    if (!status.ok()) return "";
    std::optional<int> exit = (*status)->WaitForExit(absl::Seconds(60));
    EXPECT_TRUE(exit.has_value());
    const std::string output = (*status)->Output();
    EXPECT_TRUE(exit.has_value() && WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << output;
    return output;
  }

  // Checks that `output` shows every task once, in order.
  static void ExpectEveryTaskInOrder(const std::string& output) {
    size_t from = 0;
    for (int i = 0; i < kTasks; ++i) {
      const std::string line = absl::StrCat("\n  t", i, " ");
      const size_t at = output.find(line, from);
      ASSERT_NE(at, std::string::npos) << "task t" << i << " missing or out of order in:\n"
                                       << output.substr(0, 2000);
      EXPECT_EQ(output.find(line, at + 1), std::string::npos) << "task t" << i << " twice";
      from = at + 1;
    }
  }

  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store_ = NewMemoryStateStore(data_);
  std::unique_ptr<WorkflowEngine> engine_;
  std::unique_ptr<OrchestratorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
  std::string execution_;
};

TEST_F(StatusCommandTest, PrintsEveryTaskOfAnExecutionOfSeveralPages) {
  const std::string output = Status(address_);
  EXPECT_TRUE(absl::StrContains(output, absl::StrCat("execution  ", execution_, "\n"))) << output;
  ExpectEveryTaskInOrder(output);
}

TEST_F(StatusCommandTest, PagesThroughAnOrchestratorWithoutStreamTaskRuns) {
  PagingOnlyOrchestrator older(stub_.get());
  std::string older_address;
  std::unique_ptr<grpc::Server> older_server = Serve(&older, &older_address);
  ASSERT_NE(older_server, nullptr);
  const std::string output = Status(older_address);
  ExpectEveryTaskInOrder(output);
  EXPECT_EQ(older.pages(), 3);
  older_server->Shutdown();
}

}  // namespace
}  // namespace gyre::orchestrator
