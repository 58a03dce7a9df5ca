// A real gyre-orchestrator on a real PostgreSQL 15 (store: postgres, the
// password from postgres_password_file) with a real agent: what it
// acknowledged survives SIGKILL, event for event, and work goes on after.
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <pqxx/pqxx>

#include "gmock/gmock.h"
#include "libs/testing/postgres_server.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

using ::google::protobuf::util::MessageDifferencer;

class PostgresCluster : public Cluster {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<gyre::testing::PostgresServer>> server =
        gyre::testing::PostgresServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    absl::StatusOr<std::string> database = server_->CreateDatabase();
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *database;
    password_file_ = root_ + "/postgres-password";
    std::ofstream(password_file_) << server_->password() << "\n";
    Cluster::SetUp();
  }

  void TearDown() override {
    if (orchestrator_ != nullptr) ExpectNoPasswordIn(orchestrator_->Output());
    Cluster::TearDown();  // the orchestrator first: it holds connections
    server_.reset();
  }

  std::vector<std::string> ExtraOrchestratorEnv() override {
    // Over TCP, where the server asks for the password.
    return {"GYRE_STORE=postgres", "GYRE_POSTGRES_DSN=" + server_->TcpDsn(database_),
            "GYRE_POSTGRES_PASSWORD_FILE=" + password_file_};
  }

  void ExpectNoPasswordIn(const std::string& output) {
    EXPECT_FALSE(absl::StrContains(output, server_->password()))
        << "the postgres password was logged:\n"
        << output;
  }

  // Rows of `table` in the orchestrator's database.
  int64_t Rows(const std::string& table) {
    pqxx::connection connection(server_->SocketDsn(database_));
    pqxx::work tx(connection);
    return tx.exec1("SELECT count(*) FROM " + table)[0].as<int64_t>();
  }

  std::unique_ptr<gyre::testing::PostgresServer> server_;
  std::string database_;
  std::string password_file_;
};

// After a restart the client's channel reconnects on its next call, which
// may fail first: waits until the orchestrator answers.
void AwaitServing(v1::OrchestratorService::Stub& stub) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    grpc::ClientContext call;
    call.set_wait_for_ready(true);
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::ListQueuesResponse queues;
    if (stub.ListQueues(&call, v1::ListQueuesRequest(), &queues).ok()) return;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ADD_FAILURE() << "the orchestrator is not serving after its restart";
}

constexpr char kTwoSteps[] = R"(
name: two-steps
tasks:
  - id: first
    shell: true
    outputs: [V]
    command: 'echo "{\"V\": \"from-first\"}" > "$GYRE_OUTPUT"'
  - {id: second, shell: true, depends_on: [first], command: 'echo "got $V"'}
)";

TEST_F(PostgresCluster, AFinishedExecutionIsIntactAfterKill9) {
  StartAgent("a1", 2);
  const std::string exec = Start(kTwoSteps);
  const std::vector<v1::Event> live = WatchAll(exec);
  ASSERT_FALSE(live.empty());
  ASSERT_TRUE(live.back().has_execution_snapshot());
  EXPECT_EQ(live.back().execution_snapshot().state(), v1::EXECUTION_SUCCEEDED);
  const v1::TaskRun first = Task(exec, "first");
  const v1::TaskRun second = Task(exec, "second");
  EXPECT_EQ(Logs(exec, "second"), "got from-first\n");
  // The state is in PostgreSQL, not in an embedded log.
  EXPECT_GT(Rows("state_records") + Rows("snapshots"), 0);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/data/log"));
  ExpectNoPasswordIn(orchestrator_->Output());

  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  const std::vector<v1::Event> replayed = WatchAll(exec);
  ASSERT_EQ(replayed.size(), live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(live[i], replayed[i]))
        << "event " << i + 1 << " live:\n"
        << live[i].DebugString() << "after the restart:\n"
        << replayed[i].DebugString();
  }
  EXPECT_TRUE(MessageDifferencer::Equals(first, Task(exec, "first")));
  EXPECT_TRUE(MessageDifferencer::Equals(second, Task(exec, "second")));

  // And the restarted orchestrator goes on appending where it left off.
  const std::string again = Start(kTwoSteps);
  EXPECT_EQ(Wait(again), v1::EXECUTION_SUCCEEDED);
  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  EXPECT_EQ(Task(again, "second").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(exec, "second").state(), v1::TASK_SUCCEEDED);
}

TEST_F(PostgresCluster, AnExecutionKilledMidRunCompletesAfterTheRestart) {
  StartAgent("a1", 2);
  const std::string exec = Start(R"(
name: mid-run
tasks:
  - {id: slow, shell: true, command: 'sleep 2; echo slow-done'}
  - {id: after, shell: true, depends_on: [slow], command: 'echo after-done'}
)");
  ASSERT_TRUE(AwaitTaskState(exec, "slow", v1::TASK_RUNNING));
  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Task(exec, "slow").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(exec, "after").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Logs(exec, "after"), "after-done\n");
}

TEST_F(PostgresCluster, PostgresStoppedMidRunAndStartedAgainLosesNothing) {
  StartAgent("a1", 4);
  // Tasks finishing while PostgreSQL is down: their results wait, unacknowledged.
  std::string yaml = "name: through-an-outage\ntasks:\n";
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&yaml, "  - {id: t", i, ", shell: true, command: 'sleep 0.", i, "; echo done-",
                    i, "'}\n");
  }
  absl::StrAppend(&yaml,
                  "  - {id: last, shell: true, depends_on: [t0, t7], command: 'echo last'}\n");
  const std::string exec = Start(yaml);
  ASSERT_TRUE(AwaitTaskState(exec, "t7", v1::TASK_RUNNING));
  ASSERT_TRUE(server_->StopImmediately().ok());
  absl::SleepFor(absl::Seconds(1));  // the results of t1..t7 arrive meanwhile
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(Wait(exec), v1::EXECUTION_SUCCEEDED);
  EXPECT_THAT(orchestrator_->Output(), ::testing::HasSubstr("state store reconnected"));
  for (int i = 0; i < 8; ++i) {
    const v1::TaskRun run = Task(exec, absl::StrCat("t", i));
    EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED) << run.DebugString();
    EXPECT_EQ(run.attempts_size(), 1) << "each task ran once: " << run.DebugString();
  }
  // And what was acknowledged is what a restart finds.
  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  EXPECT_EQ(Task(exec, "last").state(), v1::TASK_SUCCEEDED);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(Task(exec, absl::StrCat("t", i)).attempts_size(), 1);
  }
}

// `gyre migrate status|up` on a fresh database, the password from the
// environment (over TCP, where the server asks for it).
TEST(GyreMigrate, StatusShowsThePendingStepUpAppliesItAndNeitherPrintsThePassword) {
  absl::StatusOr<std::unique_ptr<gyre::testing::PostgresServer>> server =
      gyre::testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  auto migrate = [&](const std::string& action) -> std::pair<int, std::string> {
    auto child = ChildProcess::Start({Binary("cmd/gyre/gyre"), "migrate", action,
                                      "--postgres_dsn=" + (*server)->TcpDsn(*database)},
                                     {"GYRE_POSTGRES_PASSWORD=" + (*server)->password()});
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return {-1, ""};
    const std::optional<int> exit = (*child)->WaitForExit(absl::Seconds(60));
    EXPECT_TRUE(exit.has_value());
    const std::string output = (*child)->Output();
    EXPECT_FALSE(absl::StrContains(output, (*server)->password())) << output;
    return {exit.has_value() && WIFEXITED(*exit) ? WEXITSTATUS(*exit) : -1, output};
  };
  auto [status_code, status_output] = migrate("status");
  EXPECT_EQ(status_code, 0) << status_output;
  EXPECT_THAT(status_output, ::testing::HasSubstr("schema version 0"));
  EXPECT_THAT(status_output, ::testing::HasSubstr("pending: 1: state records and snapshots"));
  auto [up_code, up_output] = migrate("up");
  EXPECT_EQ(up_code, 0) << up_output;
  EXPECT_THAT(up_output, ::testing::HasSubstr("schema version 1"));
  EXPECT_THAT(up_output, ::testing::HasSubstr("up to date"));
  auto [again_code, again_output] = migrate("status");
  EXPECT_EQ(again_code, 0) << again_output;
  EXPECT_THAT(again_output, ::testing::HasSubstr("up to date"));
}

}  // namespace
}  // namespace gyre::e2e
