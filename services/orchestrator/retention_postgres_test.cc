// Retention on the PostgreSQL store (a real PostgreSQL 15 the test starts):
// the same ExecutionsExpired records keep forgotten executions forgotten
// after a restart, and the snapshot written after a pass deletes the rows
// of what it covers.

#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/common/clock.h"
#include "libs/testing/postgres_server.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

int64_t Rows(const std::string& dsn, const std::string& table) {
  pqxx::connection connection(dsn);
  pqxx::work work(connection);
  return work.exec1("SELECT count(*) FROM " + table)[0].as<int64_t>();
}

TEST(RetentionPostgresTest, TheForgottenStayForgottenAndTheirRowsGoWithTheSnapshot) {
  absl::StatusOr<std::unique_ptr<gyre::testing::PostgresServer>> server =
      gyre::testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  const std::string dsn = (*server)->SocketDsn(*database);

  FakeClock clock;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<WorkflowEngine> engine;
  auto restart = [&] {
    engine.reset();
    store.reset();
    PostgresStoreOptions store_options;
    store_options.dsn = dsn;
    store = NewPostgresStateStore(store_options);
    WorkflowEngine::Options options;
    options.clock = &clock;
    options.store = store.get();
    options.snapshot_every_records = 0;  // snapshots only when the test writes one
    options.retention.interval = absl::ZeroDuration();
    engine = std::make_unique<WorkflowEngine>(options);
    ASSERT_TRUE(engine->Recover().ok());
  };
  restart();

  std::vector<std::string> old;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<v1::Execution> started =
        engine->StartExecution(StartRequest(Workflow({Task("a")})));
    ASSERT_TRUE(started.ok()) << started.status();
    ASSERT_TRUE(engine->CancelExecution(started->name(), "").ok());
    old.push_back(started->name());
  }
  clock.Advance(absl::Hours(24 * 91));
  const std::string recent = engine->StartExecution(StartRequest(Workflow({Task("a")})))->name();
  ASSERT_EQ(engine->RunRetentionPass().forgotten, 20);
  ASSERT_TRUE(engine->AwaitDurable().ok());

  auto expect_forgotten = [&] {
    for (const std::string& name : old) {
      EXPECT_EQ(engine->GetExecution(name).status().code(), absl::StatusCode::kNotFound) << name;
    }
    EXPECT_TRUE(engine->GetExecution(recent).ok());
    absl::StatusOr<v1::ListExecutionsResponse> listed =
        engine->ListExecutions(v1::ListExecutionsRequest());
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_EQ(listed->executions_size(), 1);
    EXPECT_EQ(listed->executions(0).name(), recent);
  };
  restart();  // replays the ExecutionsExpired records from the database
  expect_forgotten();
  {
    // No projection runs here: as when postgres_projection is off, its
    // cursor row goes, or snapshots keep the records it has not read.
    pqxx::connection connection(dsn);
    pqxx::work work(connection);
    work.exec0("DELETE FROM projection_cursor");
    work.commit();
  }
  const int64_t records_before = Rows(dsn, "state_records");
  ASSERT_TRUE(engine->WriteSnapshot().ok());
  EXPECT_LT(Rows(dsn, "state_records"), records_before);
  restart();  // from the snapshot, which left them out
  expect_forgotten();
  engine.reset();
  store.reset();
  EXPECT_TRUE((*server)->DropDatabase(*database).ok());
}

}  // namespace
}  // namespace gyre::orchestrator
