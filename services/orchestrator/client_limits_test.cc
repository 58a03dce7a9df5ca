// What one client may hold at the orchestrator (streams, unary calls in
// flight) and the global event-stream bound, over a real gRPC server on
// loopback serving the real OrchestratorService and AgentService handlers.

#include "services/orchestrator/client_limits.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "gyre/v1/agent_service.grpc.pb.h"
#include "services/orchestrator/agent_service.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

// An in-memory engine with the services on a loopback port.
class Server {
 public:
  Server(ClientLimits::Options limits, int max_event_streams = 0)
      : engine_(WorkflowEngine::Options{}), limits_(limits), api_(&engine_), agents_(&engine_) {
    api_.set_client_limits(&limits_);
    if (max_event_streams > 0) api_.set_max_event_streams(max_event_streams);
    agents_.set_client_limits(&limits_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&api_);
    builder.RegisterService(&agents_);
    server_ = builder.BuildAndStart();
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
    stub_ = v1::OrchestratorService::NewStub(channel_);
    agent_stub_ = v1::AgentService::NewStub(channel_);
  }
  ~Server() {
    api_.Stop();
    agents_.CloseStreams();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }

  ClientLimits& limits() { return limits_; }
  v1::OrchestratorService::Stub& stub() { return *stub_; }
  v1::AgentService::Stub& agent_stub() { return *agent_stub_; }

  // An execution that stays running (no agent takes its task).
  std::string StartExecution() {
    v1::StartExecutionRequest start;
    start.mutable_definition()->set_name("held");
    v1::TaskSpec* task = start.mutable_definition()->add_tasks();
    task->set_id("a");
    task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    grpc::ClientContext context;
    v1::Execution execution;
    EXPECT_TRUE(stub_->StartExecution(&context, start, &execution).ok());
    return execution.name();
  }

 private:
  WorkflowEngine engine_;
  ClientLimits limits_;
  OrchestratorServiceImpl api_;
  AgentServiceImpl agents_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::OrchestratorService::Stub> stub_;
  std::unique_ptr<v1::AgentService::Stub> agent_stub_;
};

// A Watch stream of `principal` (as the gateway names its caller), open
// once its first message has arrived; else `status` says why it ended.
struct Watch {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader;
  bool open = false;
  grpc::Status status;

  Watch(v1::OrchestratorService::Stub& stub, const std::string& execution,
        const std::string& principal) {
    context.AddMetadata("x-gyre-principal", principal);
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::WatchRequest request;
    request.set_execution(execution);
    request.set_from_sequence(1);
    reader = stub.Watch(&context, request);
    v1::Event event;
    open = reader->Read(&event);
    if (!open) status = reader->Finish();
  }
  ~Watch() {
    context.TryCancel();
    if (open) reader->Finish().ok();
  }
};

TEST(ClientLimitsTest, StreamsPerClientAreBoundedNamingTheKeyAndFreedWhenOneEnds) {
  Server server({.max_streams_per_client = 2});
  const std::string execution = server.StartExecution();
  auto first = std::make_unique<Watch>(server.stub(), execution, "alice");
  Watch second(server.stub(), execution, "alice");
  ASSERT_TRUE(first->open);
  ASSERT_TRUE(second.open);
  Watch third(server.stub(), execution, "alice");
  ASSERT_FALSE(third.open);
  EXPECT_EQ(third.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(third.status.error_message(), "max_streams_per_client"))
      << third.status.error_message();
  EXPECT_TRUE(absl::StrContains(third.status.error_message(), "principal:alice"))
      << third.status.error_message();
  // Another client is not affected.
  Watch bob(server.stub(), execution, "bob");
  EXPECT_TRUE(bob.open) << bob.status.error_message();
  // One of alice's ends: its place is hers again (once the server has seen
  // the cancel; bounded, generously).
  first.reset();
  bool reopened = false;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(20);
       !reopened && absl::Now() < give_up;) {
    Watch again(server.stub(), execution, "alice");
    reopened = again.open;
    if (!reopened) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(reopened) << "a stream that ended kept its client's place";
}

TEST(ClientLimitsTest, AnAgentsConnectStreamCountsAmongItsClientsStreams) {
  Server server({.max_streams_per_client = 1});
  // The first stream registers (and is answered), so it is open.
  grpc::ClientContext first_context;
  auto first = server.agent_stub().Connect(&first_context);
  v1::AgentMessage hello;
  hello.mutable_register_()->set_agent_id("agent-1");
  hello.mutable_register_()->set_slots(1);
  hello.mutable_register_()->add_queues("default");
  ASSERT_TRUE(first->Write(hello));
  v1::OrchestratorMessage registered;
  ASSERT_TRUE(first->Read(&registered));
  EXPECT_TRUE(registered.has_registered());
  // A second stream from the same address is refused before its first read.
  grpc::ClientContext second_context;
  auto second = server.agent_stub().Connect(&second_context);
  v1::AgentMessage other = hello;
  other.mutable_register_()->set_agent_id("agent-2");
  second->Write(other);
  v1::OrchestratorMessage reply;
  EXPECT_FALSE(second->Read(&reply));
  const grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "max_streams_per_client"))
      << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "agent connect"))
      << refused.error_message();
  first->WritesDone();
  first_context.TryCancel();
  first->Finish().ok();
}

TEST(ClientLimitsTest, UnaryCallsInFlightPerClientAreBoundedNamingTheKey) {
  Server server({.max_inflight_calls_per_client = 1});
  const std::string execution = server.StartExecution();
  auto get = [&](const std::string& principal) {
    grpc::ClientContext context;
    context.AddMetadata("x-gyre-principal", principal);
    v1::GetExecutionRequest request;
    request.set_name(execution);
    v1::Execution response;
    return server.stub().GetExecution(&context, request, &response);
  };
  EXPECT_TRUE(get("alice").ok());
  // A call of alice's in flight (no handler blocks on purpose: the place it
  // holds is taken here, as a handler takes it).
  absl::StatusOr<ClientLimits::Slot> held =
      server.limits().AcquireCall("principal:alice", "a call held by the test");
  ASSERT_TRUE(held.ok());
  const grpc::Status refused = get("alice");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "max_inflight_calls_per_client"))
      << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "GetExecution"))
      << refused.error_message();
  EXPECT_TRUE(get("bob").ok());
  *held = ClientLimits::Slot();  // alice's call ends
  EXPECT_TRUE(get("alice").ok());
  // Every handler gave its place back: the limit of 1 admits call after call.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(get("alice").ok()) << i;
}

TEST(ClientLimitsTest, EventStreamsOfAllClientsTogetherAreBoundedNamingTheKey) {
  Server server({}, /*max_event_streams=*/2);
  const std::string execution = server.StartExecution();
  Watch alice(server.stub(), execution, "alice");
  Watch bob(server.stub(), execution, "bob");
  ASSERT_TRUE(alice.open);
  ASSERT_TRUE(bob.open);
  Watch carol(server.stub(), execution, "carol");
  ASSERT_FALSE(carol.open);
  EXPECT_EQ(carol.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(carol.status.error_message(), "max_event_streams"))
      << carol.status.error_message();
}

TEST(ClientLimitsTest, OffByDefault) {
  ClientLimits limits(ClientLimits::Options{});
  std::vector<ClientLimits::Slot> held;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<ClientLimits::Slot> slot = limits.AcquireStream("ipv4:10.0.0.7", "watch");
    ASSERT_TRUE(slot.ok());
    held.push_back(*std::move(slot));
  }
}

}  // namespace
}  // namespace gyre::orchestrator
