// An agent connected to two orchestrators (issue 21), in one process over
// real gRPC: two WorkflowEngines, each behind its own AgentService server,
// owning complementary shards, and one real AgentClient holding a stream to
// each. Work from both runs; a result whose shard moved while its attempt
// ran is refused by the engine that assigned it (ResultRefused) and
// recorded by the new owner, the attempt not run again.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"
#include "services/agent/agent_client.h"
#include "services/agent/orchestrator_link.h"
#include "services/agent/orchestrator_members.h"
#include "services/orchestrator/agent_service.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/shard_ownership.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;
using orchestrator::AgentServiceImpl;
using orchestrator::kDefaultShardCount;
using orchestrator::NotOwnedShard;
using orchestrator::ShardOfExecution;
using orchestrator::ShardOfRecord;
using orchestrator::WorkflowEngine;

std::vector<uint32_t> ShardRange(uint32_t from, uint32_t to) {
  std::vector<uint32_t> shards;
  for (uint32_t s = from; s < to; ++s) shards.push_back(s);
  return shards;
}

// One orchestrator: an engine over its own in-memory store, owning
// `owned`, serving AgentService on a loopback port.
class Orchestrator {
 public:
  explicit Orchestrator(std::vector<uint32_t> owned) {
    store_ = orchestrator::NewMemoryStateStore(data_);
    WorkflowEngine::Options options;
    options.store = store_.get();
    options.lease_timeout = absl::Seconds(60);
    options.snapshot_every_records = 0;
    options.owned_shards = std::move(owned);
    engine_ = std::make_unique<WorkflowEngine>(options);
    EXPECT_TRUE(engine_->Recover().ok());
    service_ = std::make_unique<AgentServiceImpl>(engine_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
  }
  ~Orchestrator() { Stop(); }

  // Goes away: every stream ends, nothing more is served.
  void Stop() {
    if (server_ == nullptr) return;
    service_->CloseStreams();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    server_.reset();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  WorkflowEngine& engine() { return *engine_; }

  // What this engine appended for `shard`.
  std::vector<v1::StateRecord> RecordsOf(uint32_t shard) {
    std::vector<v1::StateRecord> records;
    std::unique_ptr<orchestrator::StateStore> view = orchestrator::NewMemoryStateStore(data_);
    EXPECT_TRUE(view->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                           [&](const v1::StateRecord& record) {
                             if (ShardOfRecord(record, kDefaultShardCount) == shard) {
                               records.push_back(record);
                             }
                             return absl::OkStatus();
                           })
                    .ok());
    return records;
  }

  // The state of `name`'s only task, once it is `want` (bounded wait).
  v1::TaskState AwaitTask(const std::string& task, v1::TaskState want) {
    v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
    for (const absl::Time give_up = absl::Now() + absl::Seconds(30); absl::Now() < give_up;
         absl::SleepFor(absl::Milliseconds(20))) {
      absl::StatusOr<v1::TaskRun> run = engine_->GetTaskRun(task);
      if (run.ok()) state = run->state();
      if (state == want) break;
    }
    return state;
  }

  // The state of execution `name` once it has ended (bounded wait).
  v1::ExecutionState AwaitEnd(const std::string& name) {
    v1::ExecutionState state = v1::EXECUTION_STATE_UNSPECIFIED;
    for (const absl::Time give_up = absl::Now() + absl::Seconds(30); absl::Now() < give_up;
         absl::SleepFor(absl::Milliseconds(20))) {
      absl::StatusOr<v1::Execution> execution = engine_->GetExecution(name);
      if (execution.ok()) state = execution->state();
      if (state == v1::EXECUTION_SUCCEEDED || state == v1::EXECUTION_FAILED) break;
    }
    return state;
  }

  // Whether agent `id` is connected here, once it is (bounded wait).
  bool AwaitAgent(const std::string& id) {
    for (const absl::Time give_up = absl::Now() + absl::Seconds(30); absl::Now() < give_up;
         absl::SleepFor(absl::Milliseconds(20))) {
      for (const v1::AgentInfo& agent : engine_->ListAgents()) {
        if (agent.name() == "agents/" + id && agent.state() == v1::AgentInfo::CONNECTED)
          return true;
      }
    }
    return false;
  }

 private:
  std::shared_ptr<orchestrator::MemoryStateStoreData> data_ =
      orchestrator::NewMemoryStateStoreData();
  std::unique_ptr<orchestrator::StateStore> store_;
  std::unique_ptr<WorkflowEngine> engine_;
  std::unique_ptr<AgentServiceImpl> service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A workflow of one built-in task sleeping `duration`.
v1::StartExecutionRequest Sleeping(absl::Duration duration) {
  v1::TaskSpec task = orchestrator::testing::Task("nap");
  task.clear_command();
  task.mutable_builtin()->set_kind(v1::BuiltinExecutor::SLEEP);
  task.mutable_builtin()->mutable_duration()->set_seconds(absl::ToInt64Seconds(duration));
  task.mutable_builtin()->mutable_duration()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(duration % absl::Seconds(1))));
  return orchestrator::testing::StartRequest(orchestrator::testing::Workflow({task}));
}

class AgentOrchestratorsTest : public ::testing::Test {
 protected:
  AgentOrchestratorsTest()
      : a_(ShardRange(0, kDefaultShardCount / 2)),
        b_(ShardRange(kDefaultShardCount / 2, kDefaultShardCount)) {}

  void StartAgent(int slots) {
    AgentConfig config;
    config.id = "w1";
    config.slots = slots;
    config.cgroups = false;
    config.work_dir = work_dir_.path();
    agent_ = std::make_unique<AgentClient>(config);
    AgentClient::Orchestrators orchestrators;
    for (Orchestrator* orchestrator : {&a_, &b_}) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          NewOrchestratorChannel(orchestrator->address(), security::TlsConfig());
      ASSERT_TRUE(channel.ok()) << channel.status();
      orchestrators.emplace_back(orchestrator->address(), NewGrpcOrchestratorLink(*channel));
    }
    agent_->SetOrchestrators(std::move(orchestrators));
    agent_->Start();
    ASSERT_TRUE(a_.AwaitAgent("w1"));
    ASSERT_TRUE(b_.AwaitAgent("w1"));
  }

  gyre::testing::ScratchDir work_dir_{"agent-orchestrators"};
  Orchestrator a_;
  Orchestrator b_;
  std::unique_ptr<AgentClient> agent_;
};

TEST_F(AgentOrchestratorsTest, RunsWorkFromBothOrchestrators) {
  StartAgent(/*slots=*/2);
  std::vector<std::pair<Orchestrator*, std::string>> started;
  for (int i = 0; i < 6; ++i) {
    Orchestrator& at = i % 2 == 0 ? a_ : b_;
    absl::StatusOr<v1::Execution> execution =
        at.engine().StartExecution(Sleeping(absl::Milliseconds(50)));
    ASSERT_TRUE(execution.ok()) << execution.status();
    started.emplace_back(&at, execution->name());
  }
  for (const auto& [at, name] : started) {
    EXPECT_EQ(at->AwaitEnd(name), v1::EXECUTION_SUCCEEDED) << name;
  }
}

TEST_F(AgentOrchestratorsTest, ARefusedResultGoesToTheShardsNewOwnerAndIsRecordedThere) {
  StartAgent(/*slots=*/2);
  absl::StatusOr<v1::Execution> started =
      a_.engine().StartExecution(Sleeping(absl::Milliseconds(1500)));
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string task = started->name() + "/tasks/nap";
  ASSERT_EQ(a_.AwaitTask(task, v1::TASK_LEASED), v1::TASK_LEASED);

  // The shard moves from A to B while the attempt runs on the agent.
  const uint32_t shard = ShardOfExecution(started->name(), kDefaultShardCount);
  ASSERT_TRUE(a_.engine().ReleaseShard(shard).ok());
  ASSERT_TRUE(b_.engine().AdoptShard(shard, std::nullopt, a_.RecordsOf(shard)).ok());

  // The result goes to A first (it assigned the attempt), is refused, and
  // reaches B, which records the one attempt it adopted.
  EXPECT_EQ(b_.AwaitEnd(started->name()), v1::EXECUTION_SUCCEEDED);
  absl::StatusOr<v1::TaskRun> run = b_.engine().GetTaskRun(task);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->attempts_size(), 1) << run->DebugString();
  EXPECT_EQ(run->attempts(0).outcome(), v1::ATTEMPT_SUCCEEDED);
  EXPECT_EQ(run->attempts(0).agent(), "agents/w1");
  EXPECT_EQ(NotOwnedShard(a_.engine().GetExecution(started->name()).status()), shard);

  // The agent goes on taking work from both.
  for (Orchestrator* at : {&a_, &b_}) {
    absl::StatusOr<v1::Execution> next =
        at->engine().StartExecution(Sleeping(absl::ZeroDuration()));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(at->AwaitEnd(next->name()), v1::EXECUTION_SUCCEEDED);
  }
}

TEST_F(AgentOrchestratorsTest, AnOrchestratorGoingAwayDoesNotStopTheOther) {
  StartAgent(/*slots=*/2);
  absl::StatusOr<v1::Execution> on_a = a_.engine().StartExecution(Sleeping(absl::Seconds(30)));
  ASSERT_TRUE(on_a.ok()) << on_a.status();
  ASSERT_EQ(a_.AwaitTask(on_a->name() + "/tasks/nap", v1::TASK_LEASED), v1::TASK_LEASED);
  a_.Stop();
  // B gets the slots A no longer holds credit for, and its work runs.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::Execution> on_b =
        b_.engine().StartExecution(Sleeping(absl::Milliseconds(20)));
    ASSERT_TRUE(on_b.ok()) << on_b.status();
    EXPECT_EQ(b_.AwaitEnd(on_b->name()), v1::EXECUTION_SUCCEEDED) << on_b->name();
  }
}

TEST(OrchestratorMembersTest, ParsesListsAndNamesTheLimit) {
  absl::StatusOr<std::vector<std::string>> parsed =
      ParseOrchestratorAddresses(" a:1, dns:///b.example:2 ,[::1]:3");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, (std::vector<std::string>{"a:1", "dns:///b.example:2", "[::1]:3"}));
  EXPECT_FALSE(ParseOrchestratorAddresses("").ok());
  EXPECT_FALSE(ParseOrchestratorAddresses("nohost").ok());
  EXPECT_FALSE(ParseOrchestratorAddresses("a:99999").ok());
  std::string many;
  for (size_t i = 0; i <= kMaxOrchestrators; ++i) absl::StrAppend(&many, i ? "," : "", "h:", i + 1);
  absl::Status too_many = ParseOrchestratorAddresses(many).status();
  EXPECT_NE(too_many.message().find("kMaxOrchestrators"), std::string::npos) << too_many;
  EXPECT_FALSE(NeedsResolving("127.0.0.1:5"));
  EXPECT_FALSE(NeedsResolving("[::1]:5"));
  EXPECT_TRUE(NeedsResolving("localhost:5"));
  EXPECT_TRUE(NeedsResolving("dns:///localhost:5"));
}

// `localhost` is the DNS name this machine can resolve without editing
// /etc/hosts: it stands for its IPv4 address (the IPv6 one only if it had
// none), with the name kept as the authority.
TEST(OrchestratorMembersTest, ADnsNameStandsForItsAddresses) {
  ResolvedOrchestrators resolved =
      ResolveOrchestrators({"localhost:7001", "dns:///localhost:7002", "10.9.8.7:7003"});
  EXPECT_TRUE(resolved.errors.empty());
  std::vector<std::string> targets;
  for (const OrchestratorMember& member : resolved.members) targets.push_back(member.target);
  EXPECT_EQ(targets,
            (std::vector<std::string>{"10.9.8.7:7003", "127.0.0.1:7001", "127.0.0.1:7002"}));
  EXPECT_EQ(resolved.members[1].authority, "localhost:7001");
  EXPECT_EQ(resolved.members[0].authority, "");

  ResolvedOrchestrators missing = ResolveOrchestrators({"no-such-host.invalid:1"});
  EXPECT_TRUE(missing.members.empty());
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_NE(missing.errors[0].find("no-such-host.invalid"), std::string::npos);
}

// The agent given a DNS name connects to what it resolves to, and a member
// that appears later is connected at the next resolution.
TEST(OrchestratorMembersTest, TheResolverReportsTheMembersAndTheirChanges) {
  absl::Mutex mutex;
  std::vector<std::vector<OrchestratorMember>> seen;
  OrchestratorResolver resolver({"localhost:7001"}, absl::Milliseconds(100),
                                [&](const std::vector<OrchestratorMember>& members) {
                                  absl::MutexLock lock(&mutex);
                                  seen.push_back(members);
                                });
  resolver.Start();
  absl::MutexLock lock(&mutex);
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(seen[0].size(), 1u);
  EXPECT_EQ(seen[0][0].target, "127.0.0.1:7001");
  // Nothing changes: no new report.
  mutex.AwaitWithTimeout(
      absl::Condition(
          +[](std::vector<std::vector<OrchestratorMember>>* s) { return s->size() > 1; }, &seen),
      absl::Milliseconds(500));
  EXPECT_EQ(seen.size(), 1u);
}

}  // namespace
}  // namespace gyre::agent
