// The gRPC handlers over a real server on loopback, with a store whose
// durability the test controls.

#include "services/orchestrator/orchestrator_service.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/testing/fake_state_stores.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::HeldStore;

TEST(OrchestratorServiceTest, AStreamShowsEventsOnlyOnceTheyAreDurable) {
  HeldStore store;
  WorkflowEngine::Options options;
  options.store = &store;
  options.snapshot_every_records = 0;
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  OrchestratorServiceImpl service(&engine);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::OrchestratorService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

  // No agent: the execution is created and its task made ready, and stays.
  v1::StartExecutionRequest start;
  start.mutable_definition()->set_name("held");
  v1::TaskSpec* task = start.mutable_definition()->add_tasks();
  task->set_id("a");
  task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
  v1::Execution execution;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->StartExecution(&context, start, &execution).ok());
  }

  grpc::ClientContext watch_context;
  watch_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::WatchRequest watch;
  watch.set_execution(execution.name());
  watch.set_from_sequence(1);
  auto stream = stub->WatchBatches(&watch_context, watch);
  absl::Notification received;
  v1::EventBatch batch;
  std::thread reader([&] {
    if (stream->Read(&batch)) received.Notify();
  });
  // The handler has the events and waits on the store; nothing reaches the
  // client meanwhile.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!store.awaited() && !received.HasBeenNotified() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_TRUE(store.awaited()) << "the stream never asked the store";
  EXPECT_FALSE(received.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "events were sent before the store said they were durable";
  store.MakeDurable();
  EXPECT_TRUE(received.WaitForNotificationWithTimeout(absl::Seconds(10)));
  watch_context.TryCancel();
  reader.join();
  ASSERT_GE(batch.events_size(), 1);
  EXPECT_EQ(batch.events(0).sequence(), 1);
  EXPECT_EQ(batch.events(0).type(), v1::Event::EXECUTION_CREATED);
  server->Shutdown();
}

// An orchestrator on loopback holding one execution of `tasks` no-op tasks
// that stay where they are (no agent), on a clock that does not move, so
// that two reads of its task runs are the same.
class TaskRunStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WorkflowEngine::Options options;
    options.store = store_.get();
    options.clock = &clock_;
    options.snapshot_every_records = 0;
    engine_ = std::make_unique<WorkflowEngine>(options);
    ASSERT_TRUE(engine_->Recover().ok());
    service_ = std::make_unique<OrchestratorServiceImpl>(engine_.get());
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    // Waits for every call: a stream the server never ended hangs here.
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string StartExecution(int tasks) {
    v1::StartExecutionRequest start;
    start.mutable_definition()->set_name("wide");
    for (int i = 0; i < tasks; ++i) {
      v1::TaskSpec* task = start.mutable_definition()->add_tasks();
      task->set_id(absl::StrCat("t", i));
      task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    }
    grpc::ClientContext context;
    v1::Execution execution;
    const grpc::Status status = stub_->StartExecution(&context, start, &execution);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return execution.name();
  }

  // Every page of `request` by ListTaskRuns; the status of the first call
  // that failed, if any.
  grpc::Status Paged(v1::ListTaskRunsRequest request, std::vector<v1::ListTaskRunsResponse>* out) {
    do {
      grpc::ClientContext context;
      v1::ListTaskRunsResponse page;
      if (grpc::Status status = stub_->ListTaskRuns(&context, request, &page); !status.ok()) {
        return status;
      }
      request.set_page_token(page.next_page_token());
      out->push_back(std::move(page));
    } while (!request.page_token().empty());
    return grpc::Status::OK;
  }

  // Every message of StreamTaskRuns for `request`, and its status.
  grpc::Status Streamed(const v1::ListTaskRunsRequest& request,
                        std::vector<v1::ListTaskRunsResponse>* out) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    auto pages = stub_->StreamTaskRuns(&context, request);
    v1::ListTaskRunsResponse page;
    while (pages->Read(&page)) out->push_back(page);
    return pages->Finish();
  }

  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store_ = NewMemoryStateStore(data_);
  FakeClock clock_;
  std::unique_ptr<WorkflowEngine> engine_;
  std::unique_ptr<OrchestratorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
};

TEST_F(TaskRunStreamTest, StreamTaskRunsSendsThePagesListTaskRunsReturns) {
  v1::ListTaskRunsRequest request;
  request.set_parent(StartExecution(7));
  for (const int page_size : {2, 7, 0}) {
    SCOPED_TRACE(absl::StrCat("page_size ", page_size));
    request.set_page_size(page_size);
    std::vector<v1::ListTaskRunsResponse> paged, streamed;
    ASSERT_TRUE(Paged(request, &paged).ok());
    const grpc::Status status = Streamed(request, &streamed);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(streamed.size(), paged.size());
    for (size_t i = 0; i < paged.size(); ++i) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(streamed[i], paged[i]))
          << "page " << i << " streamed:\n"
          << streamed[i].DebugString() << "paged:\n"
          << paged[i].DebugString();
    }
  }
  // From a page token on, as paging from there would.
  request.set_page_size(2);
  std::vector<v1::ListTaskRunsResponse> paged;
  ASSERT_TRUE(Paged(request, &paged).ok());
  request.set_page_token(paged[1].next_page_token());
  std::vector<v1::ListTaskRunsResponse> streamed;
  ASSERT_TRUE(Streamed(request, &streamed).ok());
  ASSERT_EQ(streamed.size(), 2u);
  EXPECT_EQ(streamed[0].task_runs(0).task_id(), "t4");
  EXPECT_EQ(streamed[1].task_runs(0).task_id(), "t6");
  EXPECT_TRUE(streamed[1].next_page_token().empty());
}

TEST_F(TaskRunStreamTest, StreamTaskRunsRefusesWhatListTaskRunsRefusesWithTheSameCode) {
  const std::string execution = StartExecution(3);
  std::vector<v1::ListTaskRunsRequest> bad(4);
  bad[0].set_parent("executions/nope");
  bad[1].set_parent(execution);
  bad[1].set_page_size(-1);
  bad[2].set_parent(execution);
  bad[2].set_page_token("not a token");
  bad[3].set_parent(std::string(600, 'x'));
  for (const v1::ListTaskRunsRequest& request : bad) {
    SCOPED_TRACE(request.ShortDebugString().substr(0, 100));
    std::vector<v1::ListTaskRunsResponse> paged, streamed;
    const grpc::Status listed = Paged(request, &paged);
    const grpc::Status stream = Streamed(request, &streamed);
    EXPECT_FALSE(listed.ok());
    EXPECT_EQ(stream.error_code(), listed.error_code()) << stream.error_message();
    EXPECT_EQ(stream.error_message(), listed.error_message());
    EXPECT_TRUE(streamed.empty()) << "a refused stream sent a page";
  }
}

TEST_F(TaskRunStreamTest, AClientThatCancelsMidStreamLeavesNothingBehind) {
  v1::ListTaskRunsRequest request;
  request.set_parent(StartExecution(2000));
  request.set_page_size(1);  // 2,000 pages: the stream is far from its end
  for (const bool read_first : {true, false}) {
    SCOPED_TRACE(read_first ? "after a page" : "before reading");
    grpc::ClientContext context;
    auto pages = stub_->StreamTaskRuns(&context, request);
    v1::ListTaskRunsResponse page;
    if (read_first) {
      ASSERT_TRUE(pages->Read(&page));
    }
    context.TryCancel();
    while (pages->Read(&page)) {
    }
    EXPECT_EQ(pages->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server still answers, and TearDown's Shutdown waits for every call.
  std::vector<v1::ListTaskRunsResponse> streamed;
  ASSERT_TRUE(Streamed(request, &streamed).ok());
  EXPECT_EQ(streamed.size(), 2000u);
}

}  // namespace
}  // namespace gyre::orchestrator
