// The PostgreSQL store passes the StateStore conformance suite on a real
// PostgreSQL 15 (one throwaway server per test process, a fresh database
// per case), and keeps its connection's password out of errors and logs.
#include "services/orchestrator/postgres_state_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/postgres_server.h"
#include "services/orchestrator/state_store_conformance.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using ::testing::HasSubstr;
using ::testing::Not;

// The server every case of this process shares; started on first use and
// stopped when the tests end. A server that cannot start fails the test
// (never a skip).
gyre::testing::PostgresServer& Server() { return gyre::testing::PostgresServer::Shared(); }

PostgresStoreOptions Options(std::string dsn, std::string password = "") {
  PostgresStoreOptions options;
  options.dsn = std::move(dsn);
  options.password = std::move(password);
  return options;
}

// A fresh database, dropped after the case.
class PostgresBackend : public StateStoreBackend {
 public:
  PostgresBackend() {
    absl::StatusOr<std::string> name = Server().CreateDatabase();
    EXPECT_TRUE(name.ok()) << name.status();
    if (name.ok()) database_ = *name;
  }
  ~PostgresBackend() override {
    if (!database_.empty()) {
      EXPECT_TRUE(Server().DropDatabase(database_).ok());
    }
  }
  std::unique_ptr<StateStore> Open() override {
    return NewPostgresStateStore(Options(Server().SocketDsn(database_)));
  }
  const std::string& database() const { return database_; }
  PostgresStoreOptions options() const { return Options(Server().SocketDsn(database_)); }

 private:
  std::string database_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, StateStoreConformanceTest,
                         ::testing::Values(StateStoreBackendFactory{
                             "postgres", [] { return std::make_unique<PostgresBackend>(); }}),
                         StateStoreConformanceTest::BackendName);

absl::Status LoadNothing(StateStore& store) {
  return store.Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                    [](const v1::StateRecord&) { return absl::OkStatus(); });
}

absl::Status AppendOne(StateStore& store, const std::string& task) {
  v1::StateRecord record;
  record.mutable_task_leased()->set_execution_id("e1");
  record.mutable_task_leased()->set_task_id(task);
  absl::Notification done;
  absl::Status result;
  store.Append({&record, 1}, [&](absl::Status status) {
    result = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

TEST(PostgresStateStoreTest, ConnectionRefusedNamesHostAndPortButNotThePassword) {
  const int port = 1;  // tcpmux: nothing listens there
  auto store = NewPostgresStateStore(
      Options(absl::StrCat("host=127.0.0.1 port=", port,
                           " dbname=gyre user=gyre password=hunter2-in-dsn connect_timeout=10")));
  const absl::Status status = LoadNothing(*store);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("host=127.0.0.1"));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("port=", port)));
  EXPECT_THAT(status.message(), Not(HasSubstr("hunter2")));
}

TEST(PostgresStateStoreTest, AWrongPasswordIsRefusedWithoutRepeatingIt) {
  PostgresBackend backend;
  auto store =
      NewPostgresStateStore(Options(Server().TcpDsn(backend.database()), "wrong-pa55word"));
  const absl::Status status = LoadNothing(*store);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("password authentication failed"));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("port=", Server().port())));
  EXPECT_THAT(status.message(), Not(HasSubstr("wrong-pa55word")));
}

TEST(PostgresStateStoreTest, ThePasswordOptionConnectsAndIsNeverLogged) {
  PostgresBackend backend;
  ::testing::internal::CaptureStderr();
  {
    // A wrong password in the DSN is overridden by the option.
    auto store = NewPostgresStateStore(
        Options(Server().TcpDsn(backend.database()) + " password=stale-one", Server().password()));
    ASSERT_TRUE(LoadNothing(*store).ok());
    EXPECT_TRUE(AppendOne(*store, "a").ok());
  }
  const std::string logs = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(logs, HasSubstr("state recovered")) << "the store logs where it opened";
  EXPECT_THAT(logs, Not(HasSubstr(Server().password())));
  EXPECT_THAT(logs, Not(HasSubstr("stale-one")));
}

TEST(PostgresStateStoreTest, AnUnparsableDsnIsRefusedWithoutBeingQuoted) {
  auto store = NewPostgresStateStore(Options("host=db password=s3cret-bits dbname='unterminated"));
  const absl::Status status = LoadNothing(*store);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), Not(HasSubstr("s3cret")));
  EXPECT_EQ(DescribeDsn("host=db password=s3cret-bits dbname='unterminated"), "(unparsable DSN)");
}

TEST(PostgresStateStoreTest, DescribeDsnKeepsWhereAndDropsThePassword) {
  EXPECT_EQ(DescribeDsn("postgresql://gyre:pw-123@db1:5432,db2:5433/orch?"
                        "target_session_attrs=read-write"),
            "host=db1,db2 port=5432,5433 dbname=orch user=gyre target_session_attrs=read-write");
}

TEST(PostgresStateStoreTest, TheSchemaIsMigratedOnceAndRecorded) {
  PostgresBackend backend;
  for (int open = 0; open < 2; ++open) {
    auto store = backend.Open();
    ASSERT_TRUE(LoadNothing(*store).ok());
  }
  pqxx::connection connection(Server().SocketDsn(backend.database()));
  pqxx::work tx(connection);
  const pqxx::result rows = tx.exec("SELECT version FROM schema_migrations ORDER BY version");
  ASSERT_EQ(rows.size(),
            static_cast<size_t>(GetPostgresSchemaStatus(backend.options())->newest_version));
  EXPECT_EQ(rows[0][0].as<int>(), 1);
  EXPECT_EQ(rows[rows.size() - 1][0].as<int>(), static_cast<int>(rows.size()))
      << "versions are numbered 1..newest with no gap";
}

TEST(PostgresStateStoreTest, AfterTheRetriesEveryLaterAppendFails) {
  PostgresBackend backend;
  PostgresStoreOptions options = Options(Server().SocketDsn(backend.database()));
  options.retry_for = absl::Seconds(1);
  auto store = NewPostgresStateStore(options);
  ASSERT_TRUE(LoadNothing(*store).ok());
  ASSERT_TRUE(AppendOne(*store, "a").ok());
  // Terminates the store's connections, and no reconnection can succeed.
  ASSERT_TRUE(Server().DropDatabase(backend.database()).ok());
  const absl::Status lost = AppendOne(*store, "b");
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost;
  const absl::Status later = AppendOne(*store, "c");
  EXPECT_FALSE(later.ok()) << "an append after a failure must fail too (no holes)";
  EXPECT_FALSE(store->AwaitDurable(store->last_position()).ok());
  EXPECT_THAT(store->Availability().message(), HasSubstr("state store failed"));
}

TEST(PostgresStateStoreTest, AppendsMadeWhileCommitsAreHeldShareOneTransaction) {
  PostgresBackend backend;
  auto store = backend.Open();
  ASSERT_TRUE(LoadNothing(*store).ok());
  store->HoldCommits();
  absl::Notification first_durable;
  v1::StateRecord record;
  record.mutable_task_leased()->set_execution_id("e1");
  record.mutable_task_leased()->set_task_id("submitted");
  store->Append({&record, 1}, [&](const absl::Status&) { first_durable.Notify(); });
  // Time enough for an idle writer to commit the first append alone, were
  // it not held.
  EXPECT_FALSE(first_durable.WaitForNotificationWithTimeout(absl::Milliseconds(200)))
      << "an append was committed while commits were held";
  record.mutable_task_leased()->set_task_id("leased");
  store->Append({&record, 1}, [](const absl::Status&) {});
  store->ReleaseCommits();
  ASSERT_TRUE(store->AwaitDurable(2).ok());
  // Its callback may run just after AwaitDurable returns.
  EXPECT_TRUE(first_durable.WaitForNotificationWithTimeout(absl::Seconds(30)));
  pqxx::connection connection(Server().SocketDsn(backend.database()));
  pqxx::nontransaction tx(connection);
  // Rows written by one transaction carry its id (xmin).
  EXPECT_EQ(tx.exec1("SELECT count(DISTINCT xmin::text) FROM state_records")[0].as<int>(), 1)
      << "the held appends were committed in more than one transaction";
  // With nothing held, the next append is committed at once, on its own.
  ASSERT_TRUE(AppendOne(*store, "alone").ok());
  EXPECT_EQ(tx.exec1("SELECT count(DISTINCT xmin::text) FROM state_records")[0].as<int>(), 2);
}

TEST(PostgresStateStoreTest, ASecondStoreOnTheSameDatabaseIsRefusedWhileTheFirstIsOpen) {
  PostgresBackend backend;
  auto first = backend.Open();
  ASSERT_TRUE(LoadNothing(*first).ok());
  ASSERT_TRUE(AppendOne(*first, "a").ok());
  PostgresStoreOptions impatient = Options(Server().SocketDsn(backend.database()));
  impatient.writer_lock_wait = absl::Milliseconds(300);
  auto second = NewPostgresStateStore(impatient);
  const absl::Status refused = LoadNothing(*second);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("another orchestrator"));
  // The first one goes on, and once it is gone the next one opens.
  EXPECT_TRUE(AppendOne(*first, "b").ok());
  first.reset();
  auto third = backend.Open();
  std::vector<std::string> tasks;
  ASSERT_TRUE(third
                  ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                         [&](const v1::StateRecord& record) {
                           tasks.push_back(record.task_leased().task_id());
                           return absl::OkStatus();
                         })
                  .ok());
  EXPECT_EQ(tasks, (std::vector<std::string>{"a", "b"}));
}

TEST(PostgresStateStoreTest, AMultiHostDsnSkipsADeadHostForTheWritableOne) {
  PostgresBackend backend;
  // libpq tries the hosts in order: the first refuses, the second serves.
  auto store = NewPostgresStateStore(Options(
      absl::StrCat("host=127.0.0.1,127.0.0.1 port=1,", Server().port(),
                   " dbname=", backend.database(), " user=gyre target_session_attrs=read-write"),
      Server().password()));
  ASSERT_TRUE(LoadNothing(*store).ok());
  EXPECT_TRUE(AppendOne(*store, "a").ok());
}

// Its own server: it is stopped and started again.
TEST(PostgresStateStoreTest, AppendsWaitOutAServerRestartAndNoneIsLost) {
  absl::StatusOr<std::unique_ptr<gyre::testing::PostgresServer>> server =
      gyre::testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  const std::string dsn = (*server)->SocketDsn(*database);
  auto store = NewPostgresStateStore(Options(dsn));
  // What readiness follows: each turn of the store's availability.
  absl::Mutex turns_mutex;
  std::vector<bool> turns;
  store->SetAvailabilityObserver([&](bool available) {
    absl::MutexLock lock(&turns_mutex);
    turns.push_back(available);
  });
  ASSERT_TRUE(LoadNothing(*store).ok());
  ASSERT_TRUE(AppendOne(*store, "before").ok());
  EXPECT_TRUE(store->Availability().ok());

  ASSERT_TRUE((*server)->StopImmediately().ok());
  // Appended while the server is down: acknowledged only once durable.
  absl::Notification done;
  absl::Status during;
  std::vector<v1::StateRecord> records(3);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].mutable_task_leased()->set_task_id(absl::StrCat("during-", i));
  }
  store->Append(records, [&](absl::Status status) {
    during = std::move(status);
    done.Notify();
  });
  absl::SleepFor(absl::Milliseconds(300));  // let the writer meet the closed connection
  EXPECT_FALSE(done.HasBeenNotified()) << "acknowledged while the server was down: " << during;
  // The writer met the closed connection: the store says it is reconnecting.
  absl::Status unavailable = store->Availability();
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
       unavailable.ok() && absl::Now() < deadline; unavailable = store->Availability()) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(unavailable.code(), absl::StatusCode::kUnavailable) << unavailable;
  EXPECT_THAT(unavailable.message(), HasSubstr("state store unavailable: reconnecting to "));
  EXPECT_THAT(unavailable.message(), HasSubstr(" since "));
  ASSERT_TRUE((*server)->Restart().ok());
  done.WaitForNotification();
  EXPECT_TRUE(during.ok()) << during;
  EXPECT_TRUE(store->Availability().ok()) << store->Availability();
  {
    absl::MutexLock lock(&turns_mutex);
    EXPECT_EQ(turns, (std::vector<bool>{false, true}));
  }
  EXPECT_TRUE(AppendOne(*store, "after").ok());
  ASSERT_TRUE(store->WriteSnapshot(store->last_position(), v1::EngineSnapshot()).ok())
      << "the snapshot connection reconnects too";
  ASSERT_TRUE(AppendOne(*store, "last").ok());
  store.reset();

  auto reopened = NewPostgresStateStore(Options(dsn));
  std::vector<std::string> tasks;
  ASSERT_TRUE(reopened
                  ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                         [&](const v1::StateRecord& record) {
                           tasks.push_back(record.task_leased().task_id());
                           return absl::OkStatus();
                         })
                  .ok());
  EXPECT_EQ(tasks, (std::vector<std::string>{"last"}));
  EXPECT_EQ(reopened->last_position(), 6u) << "before, 3 during, after, last: no gap, no double";
}

TEST(PostgresStateStoreTest, MigrateStatusShowsPendingStepsAndUpAppliesThem) {
  PostgresBackend backend;
  const PostgresStoreOptions options = Options(Server().SocketDsn(backend.database()));
  absl::StatusOr<PostgresSchemaStatus> before = GetPostgresSchemaStatus(options);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->current_version, 0);
  EXPECT_GE(before->newest_version, 2);
  ASSERT_EQ(before->pending.size(), static_cast<size_t>(before->newest_version));
  EXPECT_EQ(before->pending[0], "1: state records and snapshots");
  EXPECT_THAT(before->pending[1], HasSubstr("2: relational tables"));
  EXPECT_TRUE(before->applied.empty());
  EXPECT_THAT(before->pending[2], HasSubstr("3: orchestrators, shard leases"));
  EXPECT_THAT(before->pending.back(),
              ::testing::StartsWith(absl::StrCat(before->newest_version, ": ")));
  ASSERT_TRUE(GetPostgresSchemaStatus(options).ok()) << "status changes nothing";

  absl::StatusOr<PostgresSchemaStatus> after = MigratePostgresSchema(options);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->current_version, after->newest_version);
  EXPECT_TRUE(after->pending.empty());
  EXPECT_EQ(after->applied.size(), static_cast<size_t>(after->newest_version));
  // Up again is a no-op, and a store opens on the migrated database.
  ASSERT_TRUE(MigratePostgresSchema(options).ok());
  auto store = backend.Open();
  ASSERT_TRUE(LoadNothing(*store).ok());
  EXPECT_TRUE(AppendOne(*store, "a").ok());
}

}  // namespace
}  // namespace gyre::orchestrator
