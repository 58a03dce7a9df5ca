// Reaching an execution's owner (issue 21): two orchestrators' gRPC services
// on loopback, each over its own engine owning half of the shards, with a
// directory set by the test. A call about the other's execution is made on
// the owner and answered as it answers (StreamTaskRuns relayed page by
// page); a forwarded call is never forwarded again; ListExecutions lists
// both; the gateway (a real gyre-gateway) and `gyre status` pointed at one
// reach the other's executions unchanged.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "services/gateway/api_key_authenticator.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/shard_ownership.h"
#include "services/orchestrator/testing/static_shard_directory.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::StaticShardDirectory;
using ::gyre::testing::ChildProcess;

constexpr uint32_t kShards = kDefaultShardCount;
constexpr uint32_t kHalf = kShards / 2;

std::string Binary(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

std::vector<uint32_t> ShardRange(uint32_t from, uint32_t to) {
  std::vector<uint32_t> shards;
  for (uint32_t s = from; s < to; ++s) shards.push_back(s);
  return shards;
}

// One orchestrator: an engine over its own in-memory store owning
// [from, to), its gRPC service on loopback, forwarding per `directory`.
struct Orchestrator {
  Orchestrator(std::string id, uint32_t from, uint32_t to) : directory(std::move(id)) {
    store = NewMemoryStateStore(data);
    WorkflowEngine::Options options;
    options.store = store.get();
    options.snapshot_every_records = 0;
    options.owned_shards = ShardRange(from, to);
    engine = std::make_unique<WorkflowEngine>(options);
    EXPECT_TRUE(engine->Recover().ok());
    service = std::make_unique<OrchestratorServiceImpl>(engine.get());
    service->set_shard_directory(&directory);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    EXPECT_NE(server, nullptr);
    address = absl::StrCat("127.0.0.1:", port);
    stub = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }
  ~Orchestrator() {
    service->Stop();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  OrchestratorMember member() const { return {directory.self_id(), address}; }

  std::shared_ptr<MemoryStateStoreData> data = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store;
  std::unique_ptr<WorkflowEngine> engine;
  StaticShardDirectory directory;
  std::unique_ptr<OrchestratorServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::unique_ptr<v1::OrchestratorService::Stub> stub;
};

// A deadline every call of the test has: nothing waits unbounded.
std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  return context;
}

// An execution of one noop task: with no agent it stays running, ready.
v1::StartExecutionRequest OneTask(const std::string& name) {
  v1::StartExecutionRequest start;
  start.mutable_definition()->set_name(name);
  v1::TaskSpec* task = start.mutable_definition()->add_tasks();
  task->set_id("a");
  task->add_command("true");
  return start;
}

v1::Execution Start(Orchestrator& on, const std::string& name) {
  v1::Execution execution;
  grpc::Status status = on.stub->StartExecution(Context().get(), OneTask(name), &execution);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return execution;
}

// An id in `shard` that no engine holds.
std::string IdInShard(uint32_t shard) {
  for (int i = 0;; ++i) {
    std::string id = absl::StrCat("e-nowhere-", i);
    if (ShardOfExecution(id, kShards) == shard) return id;
  }
}

class OwnerForwardingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Orchestrator* o : {&a_, &b_}) {
      o->directory.SetOwner(0, kHalf, a_.member());
      o->directory.SetOwner(kHalf, kShards, b_.member());
    }
  }

  Orchestrator a_{"orchestrator-a", 0, kHalf};
  Orchestrator b_{"orchestrator-b", kHalf, kShards};
};

TEST_F(OwnerForwardingTest, UnaryCallsOnTheWrongOrchestratorGetTheOwnersAnswer) {
  const v1::Execution started = Start(a_, "on-a");
  ASSERT_LT(ShardOfExecution(started.name(), kShards), kHalf);
  // b's engine alone does not have it: the typed "not owned".
  absl::StatusOr<v1::Execution> alone = b_.engine->GetExecution(started.name());
  ASSERT_TRUE(NotOwnedShard(alone.status()).has_value()) << alone.status();

  v1::GetExecutionRequest get;
  get.set_name(started.name());
  v1::Execution direct, forwarded;
  ASSERT_TRUE(a_.stub->GetExecution(Context().get(), get, &direct).ok());
  grpc::Status status = b_.stub->GetExecution(Context().get(), get, &forwarded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(forwarded.SerializeAsString(), direct.SerializeAsString());

  // An error is the owner's too, code and message.
  v1::GetTaskLogsRequest logs;
  logs.set_name(absl::StrCat(started.name(), "/tasks/a"));
  v1::GetTaskLogsResponse direct_logs, forwarded_logs;
  grpc::Status direct_status = a_.stub->GetTaskLogs(Context().get(), logs, &direct_logs);
  grpc::Status forwarded_status = b_.stub->GetTaskLogs(Context().get(), logs, &forwarded_logs);
  EXPECT_EQ(forwarded_status.error_code(), direct_status.error_code());
  EXPECT_EQ(forwarded_status.error_message(), direct_status.error_message());
  EXPECT_EQ(forwarded_logs.SerializeAsString(), direct_logs.SerializeAsString());
  logs.set_name(absl::StrCat(started.name(), "/tasks/missing"));
  direct_status = a_.stub->GetTaskLogs(Context().get(), logs, &direct_logs);
  forwarded_status = b_.stub->GetTaskLogs(Context().get(), logs, &forwarded_logs);
  EXPECT_EQ(direct_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(forwarded_status.error_code(), direct_status.error_code());
  EXPECT_EQ(forwarded_status.error_message(), direct_status.error_message());

  v1::ListTaskRunsRequest runs;
  runs.set_parent(started.name());
  v1::ListTaskRunsResponse direct_runs, forwarded_runs;
  ASSERT_TRUE(a_.stub->ListTaskRuns(Context().get(), runs, &direct_runs).ok());
  ASSERT_TRUE(b_.stub->ListTaskRuns(Context().get(), runs, &forwarded_runs).ok());
  EXPECT_EQ(forwarded_runs.SerializeAsString(), direct_runs.SerializeAsString());
  EXPECT_EQ(forwarded_runs.task_runs_size(), 1);

  // A change made through the wrong orchestrator happens on the owner.
  v1::CancelExecutionRequest cancel;
  cancel.set_name(started.name());
  cancel.set_reason("through b");
  v1::Execution cancelled;
  status = b_.stub->CancelExecution(Context().get(), cancel, &cancelled);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(cancelled.state(), v1::EXECUTION_CANCELLED);
  absl::StatusOr<v1::Execution> on_owner = a_.engine->GetExecution(started.name());
  ASSERT_TRUE(on_owner.ok()) << on_owner.status();
  EXPECT_EQ(on_owner->state(), v1::EXECUTION_CANCELLED);
}

TEST_F(OwnerForwardingTest, TheCallersTenantIsTheOwnersToo) {
  const v1::Execution started = Start(a_, "untenanted");  // the default tenant's
  v1::GetExecutionRequest get;
  get.set_name(started.name());
  for (Orchestrator* through : {&a_, &b_}) {
    std::unique_ptr<grpc::ClientContext> context = Context();
    context->AddMetadata("x-gyre-tenant", "someone-else");
    v1::Execution execution;
    grpc::Status status = through->stub->GetExecution(context.get(), get, &execution);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
        << "through " << through->address << ": " << status.error_message();
  }
}

TEST_F(OwnerForwardingTest, WatchOnTheWrongOrchestratorStreamsTheOwnersEvents) {
  const v1::Execution started = Start(b_, "on-b");
  ASSERT_GE(ShardOfExecution(started.name(), kShards), kHalf);
  v1::WatchRequest watch;
  watch.set_execution(started.name());
  watch.set_from_sequence(1);
  {
    std::unique_ptr<grpc::ClientContext> context = Context();
    auto stream = a_.stub->Watch(context.get(), watch);
    v1::Event event;
    ASSERT_TRUE(stream->Read(&event)) << stream->Finish().error_message();
    EXPECT_EQ(event.sequence(), 1);
    EXPECT_EQ(event.type(), v1::Event::EXECUTION_CREATED);
    context->TryCancel();
    stream->Finish().IgnoreError();
  }
  // The stream follows what happens next on the owner, and ends with it.
  std::unique_ptr<grpc::ClientContext> context = Context();
  auto stream = a_.stub->WatchBatches(context.get(), watch);
  v1::EventBatch batch;
  ASSERT_TRUE(stream->Read(&batch)) << stream->Finish().error_message();
  ASSERT_GE(batch.events_size(), 1);
  EXPECT_EQ(batch.events(0).sequence(), 1);
  v1::CancelExecutionRequest cancel;
  cancel.set_name(started.name());
  v1::Execution cancelled;
  ASSERT_TRUE(b_.stub->CancelExecution(Context().get(), cancel, &cancelled).ok());
  bool saw_cancel = false;
  while (!saw_cancel && stream->Read(&batch)) {
    for (const v1::Event& event : batch.events()) {
      saw_cancel = saw_cancel || (event.type() == v1::Event::EXECUTION_STATE_CHANGED &&
                                  event.execution_snapshot().state() == v1::EXECUTION_CANCELLED);
    }
  }
  EXPECT_TRUE(saw_cancel);
  context->TryCancel();
  stream->Finish().IgnoreError();
}

TEST_F(OwnerForwardingTest, StreamTaskRunsOnTheWrongOrchestratorStreamsTheOwnersPages) {
  v1::StartExecutionRequest start = OneTask("five-on-a");
  for (const char* id : {"b", "c", "d", "e"}) {
    v1::TaskSpec* task = start.mutable_definition()->add_tasks();
    task->set_id(id);
    task->add_command("true");
  }
  v1::Execution started;
  ASSERT_TRUE(a_.stub->StartExecution(Context().get(), start, &started).ok());
  ASSERT_LT(ShardOfExecution(started.name(), kShards), kHalf);

  v1::ListTaskRunsRequest request;
  request.set_parent(started.name());
  request.set_page_size(2);
  std::vector<std::string> direct;  // the owner's pages, by ListTaskRuns
  for (v1::ListTaskRunsRequest page_request = request;;) {
    v1::ListTaskRunsResponse page;
    ASSERT_TRUE(a_.stub->ListTaskRuns(Context().get(), page_request, &page).ok());
    direct.push_back(page.SerializeAsString());
    if (page.next_page_token().empty()) break;
    page_request.set_page_token(page.next_page_token());
  }
  ASSERT_EQ(direct.size(), 3u);
  std::unique_ptr<grpc::ClientContext> context = Context();
  auto stream = b_.stub->StreamTaskRuns(context.get(), request);
  std::vector<std::string> forwarded;
  for (v1::ListTaskRunsResponse page; stream->Read(&page);) {
    forwarded.push_back(page.SerializeAsString());
  }
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(forwarded, direct);

  // An error is the owner's too.
  request.set_page_token("not a token");
  v1::ListTaskRunsResponse page;
  const grpc::Status direct_status = a_.stub->ListTaskRuns(Context().get(), request, &page);
  context = Context();
  stream = b_.stub->StreamTaskRuns(context.get(), request);
  EXPECT_FALSE(stream->Read(&page));
  const grpc::Status forwarded_status = stream->Finish();
  EXPECT_EQ(direct_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(forwarded_status.error_code(), direct_status.error_code());
  EXPECT_EQ(forwarded_status.error_message(), direct_status.error_message());
}

TEST_F(OwnerForwardingTest, AForwardedCallIsNotForwardedAgain) {
  // c and d both own the first half; each believes the other owns the rest.
  Orchestrator c("orchestrator-c", 0, kHalf);
  Orchestrator d("orchestrator-d", 0, kHalf);
  c.directory.SetOwner(0, kShards, d.member());
  d.directory.SetOwner(0, kShards, c.member());
  const uint32_t shard = kShards - 1;
  v1::GetExecutionRequest get;
  get.set_name(absl::StrCat("executions/", IdInShard(shard)));
  v1::Execution execution;
  grpc::Status status = c.stub->GetExecution(Context().get(), get, &execution);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(
      absl::StrContains(status.error_message(),
                        absl::StrCat("shard ", shard, " is moving between orchestrators; retry")))
      << status.error_message();

  v1::WatchRequest watch;
  watch.set_execution(get.name());
  std::unique_ptr<grpc::ClientContext> context = Context();
  auto stream = d.stub->Watch(context.get(), watch);
  v1::Event event;
  EXPECT_FALSE(stream->Read(&event));
  status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  v1::ListTaskRunsRequest runs;
  runs.set_parent(get.name());
  context = Context();
  auto pages = c.stub->StreamTaskRuns(context.get(), runs);
  v1::ListTaskRunsResponse page;
  EXPECT_FALSE(pages->Read(&page));
  status = pages->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(OwnerForwardingTest, NoKnownOwnerOrAStaleDirectoryIsUnavailableWithTheReason) {
  const v1::Execution started = Start(b_, "owner-unknown");
  const uint32_t shard = ShardOfExecution(started.name(), kShards);
  v1::GetExecutionRequest get;
  get.set_name(started.name());
  v1::Execution execution;

  a_.directory.ClearOwner(kHalf, kShards);
  grpc::Status status = a_.stub->GetExecution(Context().get(), get, &execution);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(
      absl::StrContains(status.error_message(),
                        absl::StrCat("shard ", shard, " is moving between orchestrators; retry")))
      << status.error_message();

  // The directory names a itself (behind the leases): tried once more on a.
  a_.directory.SetOwner(kHalf, kShards, a_.member());
  status = a_.stub->GetExecution(Context().get(), get, &execution);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "moving between orchestrators"));

  a_.directory.SetOwner(kHalf, kShards, b_.member());
  EXPECT_TRUE(a_.stub->GetExecution(Context().get(), get, &execution).ok());
}

TEST_F(OwnerForwardingTest, AChildOfTheOthersExecutionStartsOnItsParentsOwner) {
  const v1::Execution parent = Start(a_, "parent-on-a");
  const uint32_t shard = ShardOfExecution(parent.name(), kShards);
  v1::StartExecutionRequest child = OneTask("child");
  child.set_parent(parent.name());
  v1::Execution started;
  grpc::Status status = b_.stub->StartExecution(Context().get(), child, &started);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(started.parent(), parent.name());
  EXPECT_EQ(ShardOfExecution(started.name(), kShards), shard) << "a child lives in its parent's";
  EXPECT_TRUE(a_.engine->GetExecution(started.name()).ok()) << "started on the parent's owner";

  v1::RunExecutionRequest run;
  *run.mutable_start() = OneTask("run-child");
  run.mutable_start()->set_parent(parent.name());
  std::unique_ptr<grpc::ClientContext> context = Context();
  auto stream = b_.stub->RunExecution(context.get(), run);
  v1::RunExecutionResponse first;
  ASSERT_TRUE(stream->Read(&first)) << stream->Finish().error_message();
  EXPECT_EQ(first.execution().parent(), parent.name());
  EXPECT_TRUE(a_.engine->GetExecution(first.execution().name()).ok());
  context->TryCancel();
  stream->Finish().IgnoreError();
}

// Walks ListExecutions through `through` with `page_size`; the names in order.
std::vector<std::string> ListAll(Orchestrator& through, int page_size, int* pages = nullptr) {
  std::vector<std::string> names;
  v1::ListExecutionsRequest list;
  list.set_page_size(page_size);
  int count = 0;
  do {
    v1::ListExecutionsResponse page;
    grpc::Status status = through.stub->ListExecutions(Context().get(), list, &page);
    EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message() << " (page "
                             << count << ", token " << list.page_token() << ")";
    if (!status.ok()) break;
    EXPECT_LE(page.executions_size(), page_size);
    EXPECT_EQ(page.unavailable_members_size(), 0);
    for (const v1::Execution& execution : page.executions()) names.push_back(execution.name());
    list.set_page_token(page.next_page_token());
    ++count;
  } while (!list.page_token().empty() && count < 100);
  if (pages != nullptr) *pages = count;
  return names;
}

TEST_F(OwnerForwardingTest, ListExecutionsThroughEitherListsBothAcrossPages) {
  std::vector<v1::Execution> started;
  for (int i = 0; i < 13; ++i) {
    started.push_back(Start(i % 3 == 0 ? b_ : a_, absl::StrCat("listed-", i)));
    absl::SleepFor(absl::Milliseconds(2));  // distinct create times: one order to expect
  }
  std::sort(started.begin(), started.end(), [](const v1::Execution& x, const v1::Execution& y) {
    if (x.create_time().seconds() != y.create_time().seconds()) {
      return x.create_time().seconds() > y.create_time().seconds();
    }
    if (x.create_time().nanos() != y.create_time().nanos()) {
      return x.create_time().nanos() > y.create_time().nanos();
    }
    return x.name() > y.name();
  });
  std::vector<std::string> expected;
  expected.reserve(started.size());
  for (const v1::Execution& execution : started) expected.push_back(execution.name());

  for (Orchestrator* through : {&a_, &b_}) {
    for (int page_size : {1, 4, 100}) {
      int pages = 0;
      EXPECT_EQ(ListAll(*through, page_size, &pages), expected)
          << "through " << through->directory.self_id() << ", page_size " << page_size;
      if (page_size == 4) {
        EXPECT_EQ(pages, 4);
      }
    }
  }

  // A member that does not answer is named, and the page has the others'.
  a_.directory.SetMember({"orchestrator-gone", "127.0.0.1:1"});
  v1::ListExecutionsRequest list;
  v1::ListExecutionsResponse page;
  grpc::Status status = a_.stub->ListExecutions(Context().get(), list, &page);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(page.unavailable_members_size(), 1);
  EXPECT_EQ(page.unavailable_members(0), "orchestrator-gone");
  EXPECT_EQ(page.executions_size(), 13);
  EXPECT_FALSE(page.next_page_token().empty()) << "the silent member is still to be listed";

  // A token of one orchestrator's own list is refused, naming it.
  list.set_page_token("p3");
  status = b_.stub->ListExecutions(Context().get(), list, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "\"p3\"")) << status.error_message();
}

TEST_F(OwnerForwardingTest, GatewayAndCliPointedAtOneReachTheOthersExecutions) {
  const v1::Execution started = Start(a_, "seen-through-b");
  const std::string id(ExecutionIdOf(started.name()));

  // A real gyre-gateway in front of b only.
  constexpr char kKey[] = "gyk_owner-forwarding-test-key";
  auto gateway = ChildProcess::Start(
      {Binary("services/gateway/gyre-gateway"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
       "--orchestrator_address=" + b_.address},
      {absl::StrCat("GYRE_API_KEYS=[admin:admin:", gateway::ApiKeyAuthenticator::HashKey(kKey),
                    "]")});
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  auto serving = (*gateway)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"http serving\""); },
      absl::Seconds(30));
  ASSERT_TRUE(serving.ok()) << serving.status() << "\n" << (*gateway)->Output();
  const std::optional<int> port = ::gyre::testing::JsonIntField(*serving, "http_port");
  ASSERT_TRUE(port.has_value()) << *serving;
  absl::StatusOr<::gyre::testing::HttpResponse> response = ::gyre::testing::HttpCall(
      "127.0.0.1", *port, "GET", absl::StrCat("/api/v1/executions/", id), {{"X-API-Key", kKey}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200) << response->body;
  EXPECT_TRUE(absl::StrContains(response->body, id)) << response->body;
  EXPECT_TRUE(absl::StrContains(response->body, "seen-through-b")) << response->body;
  (*gateway)->Signal(SIGTERM);
  (*gateway)->WaitForExit(absl::Seconds(15));

  // gyre status, pointed at b.
  auto status =
      ChildProcess::Start({Binary("cmd/gyre/gyre"), "status", id, "--orchestrator=" + b_.address});
  ASSERT_TRUE(status.ok()) << status.status();
  std::optional<int> exit = (*status)->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(exit.has_value());
  const std::string output = (*status)->Output();
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << output;
  EXPECT_TRUE(absl::StrContains(output, started.name())) << output;
  EXPECT_TRUE(absl::StrContains(output, "seen-through-b")) << output;
}

}  // namespace
}  // namespace gyre::orchestrator
