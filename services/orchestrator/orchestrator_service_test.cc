// The gRPC handlers over a real server on loopback, with a store whose
// durability the test controls.

#include "services/orchestrator/orchestrator_service.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
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

}  // namespace
}  // namespace gyre::orchestrator
