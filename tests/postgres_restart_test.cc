// A real gyre-orchestrator on a real PostgreSQL 15 (store: postgres, the
// password from postgres_password_file) with a real agent: what it
// acknowledged survives SIGKILL, event for event, and work goes on after.
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <pqxx/pqxx>
#include <random>

#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/testing/postgres_server.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

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
    std::vector<std::string> env = {"GYRE_STORE=postgres",
                                    "GYRE_POSTGRES_DSN=" + server_->TcpDsn(database_),
                                    "GYRE_POSTGRES_PASSWORD_FILE=" + password_file_};
    env.insert(env.end(), extra_env_.begin(), extra_env_.end());
    return env;
  }

  // The orchestrator's gRPC health for `service` ("" overall), as a
  // Kubernetes probe asks it; UNKNOWN when the check itself fails.
  HealthCheckResponse::ServingStatus HealthOf(const std::string& service) {
    auto stub = Health::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    if (!stub->Check(&call, request, &response).ok()) return HealthCheckResponse::UNKNOWN;
    return response.status();
  }

  // Waits (generously) until both the overall health and the readiness
  // probe's name ("gyre.orchestrator") report `status`.
  bool AwaitReadiness(HealthCheckResponse::ServingStatus status) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (HealthOf("") == status && HealthOf("gyre.orchestrator") == status) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // Every task run of `execution`, across pages.
  std::vector<v1::TaskRun> TaskRuns(const std::string& execution) {
    std::vector<v1::TaskRun> runs;
    v1::ListTaskRunsRequest request;
    request.set_parent(execution);
    do {
      grpc::ClientContext call;
      v1::ListTaskRunsResponse page;
      const grpc::Status status = stub_->ListTaskRuns(&call, request, &page);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      runs.insert(runs.end(), page.task_runs().begin(), page.task_runs().end());
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty());
    return runs;
  }

  // Every task of `execution` succeeded, its success recorded exactly once
  // (one succeeded attempt; others, if any, lost with an agent or a stopped
  // orchestrator); `tasks` of them.
  void ExpectEachTaskSucceededOnce(const std::string& execution, int tasks) {
    const std::vector<v1::TaskRun> runs = TaskRuns(execution);
    EXPECT_EQ(runs.size(), static_cast<size_t>(tasks)) << execution;
    for (const v1::TaskRun& run : runs) {
      EXPECT_EQ(run.state(), v1::TASK_SUCCEEDED) << run.DebugString();
      int succeeded = 0;
      for (const v1::TaskAttempt& attempt : run.attempts()) {
        if (attempt.outcome() == v1::ATTEMPT_SUCCEEDED) ++succeeded;
      }
      EXPECT_EQ(succeeded, 1) << "a success recorded once: " << run.DebugString();
    }
  }

  // Tasks succeeded so far over `executions` (GetExecution's counts).
  int Succeeded(const std::vector<std::string>& executions) {
    int total = 0;
    for (const std::string& name : executions) {
      grpc::ClientContext call;
      v1::GetExecutionRequest request;
      request.set_name(name);
      v1::Execution execution;
      if (stub_->GetExecution(&call, request, &execution).ok()) {
        total += execution.task_counts().succeeded();
      }
    }
    return total;
  }

  std::vector<std::string> extra_env_;  // given to every orchestrator started

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

// Many short tasks over several executions (some chained).
std::string ShortTasks(const std::string& name, int tasks) {
  std::string yaml = absl::StrCat("name: ", name, "\ntasks:\n");
  for (int i = 0; i < tasks; ++i) {
    absl::StrAppend(&yaml, "  - {id: t", i, ", shell: true, command: 'echo ", name, "-", i, "'",
                    i % 5 == 4 ? absl::StrCat(", depends_on: [t", i - 1, "]") : "", "}\n");
  }
  return yaml;
}

constexpr int kExecutions = 4;
constexpr int kTasksPerExecution = 30;

// PostgreSQL stopped (immediate mode) while a workload runs, at a moment
// the seed picks, and started again a few seconds later.
class PostgresOutage : public PostgresCluster, public ::testing::WithParamInterface<int> {
 protected:
  PostgresOutage() { extra_env_ = {"GYRE_STORE_OUTAGE_WAIT=2s"}; }
};

TEST_P(PostgresOutage, ReadsAnswerReadinessSaysNotServingAndNothingIsLost) {
  std::mt19937 random(GetParam());
  StartAgent("a1", 4);
  std::vector<std::string> executions;
  for (int e = 0; e < kExecutions; ++e) {
    executions.push_back(Start(ShortTasks(absl::StrCat("load", e), kTasksPerExecution)));
    ASSERT_FALSE(executions.back().empty());
  }
  ASSERT_EQ(HealthOf(""), HealthCheckResponse::SERVING);
  ASSERT_EQ(Metric("orchestrator_store_available"), 1);
  // Stop when some tasks are done and most are not.
  const int stop_after = std::uniform_int_distribution<int>(3, 40)(random);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (Succeeded(executions) < stop_after && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(server_->StopImmediately().ok());

  // A write during the outage: not acknowledged, UNAVAILABLE saying why.
  v1::StartExecutionRequest late;
  absl::StatusOr<v1::WorkflowDefinition> late_def =
      workflow::ParseWorkflowYaml(ShortTasks("late", 3), "late.yaml");
  ASSERT_TRUE(late_def.ok()) << late_def.status();
  *late.mutable_definition() = *late_def;
  late.set_request_id(absl::StrCat("late-", GetParam()));
  {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::Execution execution;
    const grpc::Status status = stub_->StartExecution(&call, late, &execution);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_THAT(status.error_message(),
                ::testing::HasSubstr("state store unavailable: reconnecting to host=127.0.0.1"));
  }
  // Readiness says so; liveness does not (the pod must not be restarted).
  EXPECT_TRUE(AwaitReadiness(HealthCheckResponse::NOT_SERVING));
  EXPECT_EQ(HealthOf("gyre.liveness"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Metric("orchestrator_store_available"), 0);
  // Reads answer from memory meanwhile.
  for (const std::string& name : executions) {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::GetExecutionRequest request;
    request.set_name(name);
    v1::Execution execution;
    const grpc::Status status = stub_->GetExecution(&call, request, &execution);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(execution.task_counts().total(), kTasksPerExecution);
  }
  {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::ListExecutionsResponse page;
    EXPECT_TRUE(stub_->ListExecutions(&call, v1::ListExecutionsRequest(), &page).ok());
    EXPECT_GE(page.executions_size(), kExecutions);
  }
  for (const char* rpc : {"ListQueues", "ListAgents"}) {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status status;
    if (std::string(rpc) == "ListQueues") {
      v1::ListQueuesResponse response;
      status = stub_->ListQueues(&call, v1::ListQueuesRequest(), &response);
    } else {
      v1::ListAgentsResponse response;
      status = stub_->ListAgents(&call, v1::ListAgentsRequest(), &response);
    }
    EXPECT_TRUE(status.ok()) << rpc << ": " << status.error_message();
  }

  absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(1000, 3000)(random)));
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_TRUE(AwaitReadiness(HealthCheckResponse::SERVING));
  EXPECT_EQ(Metric("orchestrator_store_available"), 1);
  EXPECT_GE(Metric("orchestrator_store_reconnects_total"), 1);

  for (const std::string& name : executions) {
    EXPECT_EQ(Wait(name), v1::EXECUTION_SUCCEEDED) << name;
  }
  // The start answered UNAVAILABLE was kept: its retry finds it, once.
  v1::Execution late_execution;
  {
    grpc::ClientContext call;
    const grpc::Status status = stub_->StartExecution(&call, late, &late_execution);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(Wait(late_execution.name()), v1::EXECUTION_SUCCEEDED);
  for (const std::string& name : executions) ExpectEachTaskSucceededOnce(name, kTasksPerExecution);
  ExpectEachTaskSucceededOnce(late_execution.name(), 3);

  // What was acknowledged is what a restart finds.
  RestartOrchestrator(SIGKILL);
  AwaitServing(*stub_);
  for (const std::string& name : executions) ExpectEachTaskSucceededOnce(name, kTasksPerExecution);
  ExpectEachTaskSucceededOnce(late_execution.name(), 3);
  grpc::ClientContext call;
  v1::ListExecutionsResponse page;
  ASSERT_TRUE(stub_->ListExecutions(&call, v1::ListExecutionsRequest(), &page).ok());
  EXPECT_EQ(page.executions_size(), kExecutions + 1) << "nothing lost, nothing doubled";
}

INSTANTIATE_TEST_SUITE_P(Seeds, PostgresOutage, ::testing::Values(1, 2, 3));

// An outage longer than postgres_retry_for: the orchestrator stops with a
// line saying why, and once PostgreSQL is back a new one finishes the work
// from what was durable (the agent re-sends the results it holds).
class LongPostgresOutage : public PostgresCluster {
 protected:
  LongPostgresOutage() { extra_env_ = {"GYRE_POSTGRES_RETRY_FOR=3s"}; }
};

TEST_F(LongPostgresOutage, TheOrchestratorFailStopsAndTheRestartRecoversEverything) {
  StartAgent("a1", 4);
  std::vector<std::string> executions;
  for (int e = 0; e < 2; ++e) {
    executions.push_back(Start(ShortTasks(absl::StrCat("long", e), kTasksPerExecution)));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (Succeeded(executions) < 10 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(server_->StopImmediately().ok());
  // A write makes the store find out, even if the workload paused; it is
  // never acknowledged (the client gives up first).
  {
    absl::StatusOr<v1::WorkflowDefinition> def =
        workflow::ParseWorkflowYaml(ShortTasks("never", 1), "never.yaml");
    ASSERT_TRUE(def.ok()) << def.status();
    v1::StartExecutionRequest request;
    *request.mutable_definition() = *def;
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::Execution execution;
    EXPECT_FALSE(stub_->StartExecution(&call, request, &execution).ok());
  }
  EXPECT_TRUE(AwaitReadiness(HealthCheckResponse::NOT_SERVING));
  const std::optional<int> exit = orchestrator_->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(exit.has_value()) << "the orchestrator outlived its retry_for";
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) != 0);
  EXPECT_THAT(orchestrator_->Output(),
              ::testing::HasSubstr("state store failed: the orchestrator stops serving"));
  ExpectNoPasswordIn(orchestrator_->Output());

  ASSERT_TRUE(server_->Restart().ok());
  RestartOrchestrator(0);  // exited already: signal 0 only checks
  AwaitServing(*stub_);
  for (const std::string& name : executions) {
    EXPECT_EQ(Wait(name), v1::EXECUTION_SUCCEEDED) << name;
    ExpectEachTaskSucceededOnce(name, kTasksPerExecution);
  }
}

// `gyre migrate status|up` on a fresh database, the password from the
// environment (over TCP, where the server asks for it).
TEST(GyreMigrate, StatusShowsThePendingStepsUpAppliesThemAndNeitherPrintsThePassword) {
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
  EXPECT_THAT(status_output, ::testing::HasSubstr("pending: 2: relational tables"));
  EXPECT_THAT(status_output, ::testing::Not(::testing::HasSubstr("applied:")));
  EXPECT_THAT(
      status_output,
      ::testing::HasSubstr("3: orchestrators, shard leases, per-shard records and snapshots"));
  auto [up_code, up_output] = migrate("up");
  EXPECT_EQ(up_code, 0) << up_output;
  EXPECT_THAT(up_output, ::testing::HasSubstr("applied: 1: state records and snapshots (applied "));
  EXPECT_THAT(up_output, ::testing::HasSubstr("applied: 2: relational tables"));
  EXPECT_THAT(up_output, ::testing::Not(::testing::HasSubstr("pending:")));
  // The newest version, whatever it is: "schema version N (this gyre knows up to N)".
  const std::string newest =
      status_output.substr(status_output.find("knows up to ") + 12,
                           status_output.find(')', status_output.find("knows up to ")) -
                               status_output.find("knows up to ") - 12);
  EXPECT_THAT(up_output, ::testing::HasSubstr("schema version " + newest +
                                              " (this gyre knows up to " + newest + ")"));
  EXPECT_THAT(up_output, ::testing::HasSubstr("up to date"));
  EXPECT_THAT(up_output, ::testing::HasSubstr("dbname=" + *database));
  auto [again_code, again_output] = migrate("status");
  EXPECT_EQ(again_code, 0) << again_output;
  EXPECT_THAT(again_output, ::testing::HasSubstr("up to date"));
}

// The projection (on by default with store: postgres) tells what the
// orchestrator's API tells: executions, tasks, runs and events as rows.
TEST_F(PostgresCluster, TheRelationalTablesSayWhatTheApiSays) {
  StartAgent("a1", 2);
  const std::string ok = Start(kTwoSteps);
  const std::string failing = Start(R"(
name: failing
tasks:
  - {id: boom, shell: true, command: 'exit 3'}
  - {id: never, shell: true, depends_on: [boom], command: 'true'}
)");
  ASSERT_EQ(Wait(ok), v1::EXECUTION_SUCCEEDED);
  ASSERT_EQ(Wait(failing), v1::EXECUTION_FAILED);
  pqxx::connection connection(server_->SocketDsn(database_));
  auto query = [&](const std::string& sql, const std::string& execution) {
    pqxx::work tx(connection);
    const pqxx::result rows =
        tx.exec_params(sql, std::string(absl::StripPrefix(execution, "executions/")));
    return rows.empty() || rows[0][0].is_null() ? std::string("NULL")
                                                : rows[0][0].as<std::string>();
  };
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up &&
         (query("SELECT state FROM executions WHERE id = $1", failing) != "FAILED" ||
          query("SELECT state FROM executions WHERE id = $1", ok) != "SUCCEEDED")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(query("SELECT state FROM executions WHERE id = $1", ok), "SUCCEEDED");
  EXPECT_EQ(query("SELECT state || ' ' || reason FROM executions WHERE id = $1", failing),
            "FAILED 1 task(s) failed");
  for (const auto& [execution, task] : std::vector<std::pair<std::string, std::string>>{
           {ok, "first"}, {ok, "second"}, {failing, "boom"}, {failing, "never"}}) {
    EXPECT_EQ(query("SELECT 'TASK_' || state FROM tasks WHERE execution_id = $1 AND task_id = '" +
                        task + "'",
                    execution),
              v1::TaskState_Name(Task(execution, task).state()))
        << execution << " " << task;
  }
  EXPECT_EQ(query("SELECT state || ' ' || exit_code || ' ' || (cpu_seconds IS NOT NULL) "
                  "FROM task_runs WHERE execution_id = $1 AND task_id = 'boom'",
                  failing),
            "FAILED 3 true");
  EXPECT_EQ(query("SELECT count(*) FROM task_runs WHERE execution_id = $1 AND agent_id <> '' "
                  "AND state = 'SUCCEEDED'",
                  ok),
            "2");
  EXPECT_EQ(query("SELECT (min(sequence) = 1 AND max(sequence) = count(*))::text "
                  "FROM events WHERE execution_id = $1",
                  ok),
            "true")
      << "sequences 1, 2, 3... one per record of the execution";
  // Started, two leases and two results at least (a task that ends within
  // the agent's start_report_delay has no start record of its own).
  EXPECT_GE(std::stoi(query("SELECT count(*)::text FROM events WHERE execution_id = $1", ok)), 5);
  EXPECT_EQ(query("SELECT kind FROM events WHERE execution_id = $1 AND sequence = 1", ok),
            "execution_started");
  ExpectNoPasswordIn(orchestrator_->Output());
}

}  // namespace
}  // namespace gyre::e2e
