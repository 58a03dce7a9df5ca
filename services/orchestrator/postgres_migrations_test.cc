// The PostgreSQL schema's migrations on a real PostgreSQL 15: from an empty
// database to the newest version, every version from the one before it
// with data in it (kept intact), a database newer than this binary refused,
// and migrators racing each other applying each version once.
#include <functional>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/shard_lease_manager.h"
#include "services/orchestrator/testing/postgres_test_server.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using ::gyre::orchestrator::testing::ScratchDatabase;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

int NewestVersion(const ScratchDatabase& db) {
  absl::StatusOr<PostgresSchemaStatus> status = GetPostgresSchemaStatus(db.options());
  EXPECT_TRUE(status.ok()) << status.status();
  return status.ok() ? status->newest_version : 0;
}

// Data a database at one version holds, and the check that a migration
// to the next version left it intact. Each new migration N gets one entry
// for version N (the data its successor must keep), and its own test
// below runs from N-1 with that version's fixture.
struct VersionFixture {
  std::function<void(pqxx::work&)> insert;
  std::function<void(pqxx::work&)> check;
};

v1::StateRecord Leased(const std::string& task) {
  v1::StateRecord record;
  record.mutable_task_leased()->set_execution_id("e1");
  record.mutable_task_leased()->set_task_id(task);
  return record;
}

const std::map<int, VersionFixture>& Fixtures() {
  static const auto* fixtures = new std::map<int, VersionFixture>{
      {1,
       {[](pqxx::work& tx) {
          v1::EngineSnapshot snapshot;
          snapshot.set_executions_started(7);
          const std::string bytes = snapshot.SerializeAsString();
          tx.exec_params0("INSERT INTO snapshots (position, snapshot) VALUES (2, $1)",
                          pqxx::binarystring(bytes.data(), bytes.size()));
          for (int position = 3; position <= 5; ++position) {
            const std::string record = Leased(absl::StrCat("t", position)).SerializeAsString();
            tx.exec_params0("INSERT INTO state_records (position, record) VALUES ($1, $2)",
                            position, pqxx::binarystring(record.data(), record.size()));
          }
        },
        [](pqxx::work& tx) {
          EXPECT_EQ(tx.exec1("SELECT count(*) FROM state_records")[0].as<int>(), 3);
          EXPECT_EQ(tx.exec1("SELECT position FROM snapshots")[0].as<int>(), 2);
        }}},
      {2,
       {[](pqxx::work& tx) {
          tx.exec0(
              "INSERT INTO workflow_definitions (workflow, version, definition) "
              "VALUES ('etl', 1, '{\"name\": \"workflows/etl\"}')");
          tx.exec0(
              "INSERT INTO executions (id, workflow, workflow_version, state, priority, "
              "task_count, create_time) VALUES ('e1', 'etl', 1, 'RUNNING', 50, 1, now())");
          tx.exec0(
              "INSERT INTO events (execution_id, sequence, kind, time, event) "
              "VALUES ('e1', 1, 'execution_started', now(), '{}')");
        },
        [](pqxx::work& tx) {
          EXPECT_EQ(
              tx.exec1("SELECT definition->>'name' FROM workflow_definitions")[0].as<std::string>(),
              "workflows/etl");
          EXPECT_EQ(tx.exec1("SELECT state FROM executions WHERE id = 'e1'")[0].as<std::string>(),
                    "RUNNING");
          EXPECT_EQ(tx.exec1("SELECT count(*) FROM events")[0].as<int>(), 1);
        }}},
      {3,
       {[](pqxx::work& tx) {
          tx.exec0(
              "INSERT INTO orchestrators (id, address, heartbeat_at) "
              "VALUES ('o1', '10.0.0.1:50051', now())");
          tx.exec0(
              "UPDATE shard_leases SET owner = 'o1', token = 4, "
              "expires_at = now() + interval '10 seconds' WHERE shard = 17");
          const std::string record = Leased("t9").SerializeAsString();
          tx.exec_params0("INSERT INTO shard_records (shard, position, record) VALUES (17, 1, $1)",
                          pqxx::binarystring(record.data(), record.size()));
        },
        [](pqxx::work& tx) {
          EXPECT_EQ(tx.exec1("SELECT count(*) FROM shard_leases")[0].as<int>(), 256);
          EXPECT_EQ(tx.exec1("SELECT token FROM shard_leases WHERE shard = 17")[0].as<int>(), 4);
          EXPECT_EQ(tx.exec1("SELECT count(*) FROM shard_records")[0].as<int>(), 1);
          EXPECT_EQ(
              tx.exec1("SELECT address FROM orchestrators WHERE id = 'o1'")[0].as<std::string>(),
              "10.0.0.1:50051");
        }}},
      {4,
       {[](pqxx::work& tx) {
          tx.exec0(
              "INSERT INTO orchestrators (id, address, heartbeat_at, backlog) "
              "VALUES ('o2', '10.0.0.2:50051', now(), "
              "'{\"gpu\": {\"queued\": 4, \"running\": 1}}')");
        },
        [](pqxx::work& tx) {
          EXPECT_EQ(tx.exec1("SELECT (backlog->'gpu'->>'queued')::int FROM orchestrators "
                             "WHERE id = 'o2'")[0]
                        .as<int>(),
                    4);
        }}},
  };
  return *fixtures;
}

// The records a store reads back from `db` (its Load migrates first).
std::vector<std::string> LoadedTasks(const ScratchDatabase& db, int64_t* snapshot_started) {
  std::vector<std::string> tasks;
  auto store = NewPostgresStateStore(db.options());
  const absl::Status status = store->Load(
      [&](v1::EngineSnapshot snapshot) {
        *snapshot_started = static_cast<int64_t>(snapshot.executions_started());
        return absl::OkStatus();
      },
      [&](const v1::StateRecord& record) {
        tasks.push_back(record.task_leased().task_id());
        return absl::OkStatus();
      });
  EXPECT_TRUE(status.ok()) << status;
  return tasks;
}

TEST(PostgresMigrationsTest, AnEmptyDatabaseMigratesToTheNewestVersion) {
  ScratchDatabase db;
  absl::StatusOr<PostgresSchemaStatus> status = MigratePostgresSchema(db.options());
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->current_version, status->newest_version);
  EXPECT_TRUE(status->pending.empty());
  ASSERT_EQ(status->applied.size(), static_cast<size_t>(status->newest_version));
  EXPECT_THAT(status->applied[0], HasSubstr("1: state records and snapshots (applied 20"));
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  for (const char* table :
       {"workflow_definitions", "executions", "tasks", "dependencies", "task_runs", "events",
        "pause_checkpoints", "resource_observations", "resource_predictions",
        "orchestration_decisions", "audit_log", "projection_cursor", "orchestrators",
        "shard_leases", "shard_records", "shard_snapshots"}) {
    EXPECT_TRUE(tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", table)[0].as<bool>())
        << table;
  }
}

// Every migration N, from a database at N-1 holding data: the data is
// still there after it, and the store still reads its records.
TEST(PostgresMigrationsTest, EveryVersionMigratesFromThePreviousOneWithItsDataIntact) {
  const int newest = [] {
    ScratchDatabase db;
    return NewestVersion(db);
  }();
  ASSERT_GE(newest, 2);
  for (int version = 2; version <= newest; ++version) {
    SCOPED_TRACE(absl::StrCat("migration ", version - 1, " -> ", version));
    const auto fixture = Fixtures().find(version - 1);
    ASSERT_NE(fixture, Fixtures().end())
        << "add a VersionFixture for version " << version - 1 << " in Fixtures()";
    ScratchDatabase db;
    absl::StatusOr<PostgresSchemaStatus> before =
        MigratePostgresSchemaTo(db.options(), version - 1);
    ASSERT_TRUE(before.ok()) << before.status();
    ASSERT_EQ(before->current_version, version - 1);
    {
      pqxx::connection connection(db.dsn());
      pqxx::work tx(connection);
      // Every earlier version's data too: a database at N-1 went through them.
      for (const auto& [at, earlier] : Fixtures()) {
        if (at <= version - 1) earlier.insert(tx);
      }
      tx.commit();
    }
    absl::StatusOr<PostgresSchemaStatus> after = MigratePostgresSchemaTo(db.options(), version);
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(after->current_version, version);
    {
      pqxx::connection connection(db.dsn());
      pqxx::work tx(connection);
      for (const auto& [at, earlier] : Fixtures()) {
        if (at <= version - 1) earlier.check(tx);
      }
    }
    int64_t started = 0;
    EXPECT_EQ(LoadedTasks(db, &started), (std::vector<std::string>{"t3", "t4", "t5"}));
    EXPECT_EQ(started, 7) << "the snapshot survived";
  }
}

// Migration 4 (orchestrators.backlog) under a member that was heartbeating
// before it (a rolling upgrade): its row has no backlog and counts zero for
// a new member, whose own heartbeat publishes its backlog; once the old
// member publishes one (it was upgraded too), the new member adds it.
TEST(PostgresMigrationsTest, AMemberFromBeforeMigration4CountsNoBacklogUntilItPublishesOne) {
  ScratchDatabase db;
  ASSERT_TRUE(MigratePostgresSchemaTo(db.options(), 3).ok());
  {
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    Fixtures().at(3).insert(tx);  // o1, heartbeating at version 3
    tx.commit();
  }
  absl::StatusOr<PostgresSchemaStatus> migrated = MigratePostgresSchemaTo(db.options(), 4);
  ASSERT_TRUE(migrated.ok()) << migrated.status();
  ASSERT_EQ(migrated->current_version, 4);
  pqxx::connection connection(db.dsn());
  auto query = [&](const std::string& sql) {
    pqxx::work tx(connection);
    const pqxx::result rows = tx.exec(sql);
    tx.commit();
    return rows;
  };
  EXPECT_TRUE(query("SELECT backlog FROM orchestrators WHERE id = 'o1'")[0][0].is_null());

  // A new member (o2) next to it; o1 keeps heartbeating as a version-3
  // member does (address and heartbeat_at only).
  ClusterBacklog backlog;
  std::vector<QueueBacklog> cluster;
  std::vector<std::pair<std::string, QueueBacklog>> elsewhere;
  const std::vector<ClusterBacklog::OwnQueue> own = {{"gpu", {2, 0}}};
  backlog.Publish(own, &cluster, &elsewhere);
  absl::Mutex mutex;
  std::vector<std::string> members;  // as the last round read them
  ShardLeaseOptions options;
  options.store = db.options();
  options.orchestrator_id = "o2";
  options.address = "10.0.0.2:50051";
  options.ttl = absl::Seconds(3);
  options.backlog = &backlog;
  ShardLeaseCallbacks callbacks;
  callbacks.observed = [&](ShardMembership membership) {
    absl::MutexLock lock(&mutex);
    members.clear();
    for (const OrchestratorMember& member : membership.members) members.push_back(member.id);
  };
  auto heartbeat_o1 = [&] {
    query("UPDATE orchestrators SET heartbeat_at = now() WHERE id = 'o1'");
  };
  heartbeat_o1();
  absl::StatusOr<std::unique_ptr<ShardLeaseManager>> manager =
      ShardLeaseManager::Start(options, callbacks);
  ASSERT_TRUE(manager.ok()) << manager.status();
  const auto await = [&](const std::function<bool()>& done) {
    for (const absl::Time give_up = absl::Now() + absl::Seconds(30); absl::Now() < give_up;) {
      heartbeat_o1();
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  };
  ASSERT_TRUE(await([&] {
    absl::MutexLock lock(&mutex);
    return members == std::vector<std::string>{"o1", "o2"};
  })) << "o2's rounds never saw o1 live";
  EXPECT_THAT(backlog.Others(), IsEmpty()) << "o1 published no backlog: it counts zero";
  ASSERT_TRUE(await([&] {
    const pqxx::result rows =
        query("SELECT (backlog->'gpu'->>'queued')::int FROM orchestrators WHERE id = 'o2'");
    return !rows.empty() && !rows[0][0].is_null() && rows[0][0].as<int>() == 2;
  })) << "o2's heartbeat never published its backlog";

  query(
      "UPDATE orchestrators SET backlog = '{\"gpu\": {\"queued\": 4, \"running\": 1}}' "
      "WHERE id = 'o1'");
  EXPECT_TRUE(await([&] { return !backlog.Others().empty(); }));
  EXPECT_THAT(backlog.Others(), UnorderedElementsAre(Pair("gpu", QueueBacklog{4, 1})));
}

TEST(PostgresMigrationsTest, ADatabaseNewerThanThisGyreIsRefused) {
  ScratchDatabase db;
  ASSERT_TRUE(MigratePostgresSchema(db.options()).ok());
  {
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    tx.exec0("INSERT INTO schema_migrations (version, description) VALUES (999, 'future')");
    tx.commit();
  }
  const absl::StatusOr<PostgresSchemaStatus> migrated = MigratePostgresSchema(db.options());
  ASSERT_FALSE(migrated.ok());
  EXPECT_EQ(migrated.status().code(), absl::StatusCode::kFailedPrecondition) << migrated.status();
  EXPECT_THAT(migrated.status().message(), HasSubstr("at version 999, newer than this Gyre knows"));
  EXPECT_THAT(migrated.status().message(), HasSubstr("upgrade Gyre"));

  auto store = NewPostgresStateStore(db.options());
  const absl::Status loaded = store->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                                          [](const v1::StateRecord&) { return absl::OkStatus(); });
  EXPECT_EQ(loaded.code(), absl::StatusCode::kFailedPrecondition) << loaded;
  EXPECT_THAT(loaded.message(), HasSubstr("upgrade Gyre"));
}

TEST(PostgresMigrationsTest, MigratorsRacingEachOtherApplyEachVersionOnce) {
  for (int round = 0; round < 3; ++round) {
    ScratchDatabase db;
    constexpr int kMigrators = 3;
    std::vector<absl::StatusOr<PostgresSchemaStatus>> results(kMigrators,
                                                              absl::UnknownError("not run"));
    absl::Notification go;
    std::vector<std::thread> threads;
    for (int i = 0; i < kMigrators; ++i) {
      threads.emplace_back([&, i] {
        go.WaitForNotification();
        results[i] = MigratePostgresSchema(db.options());
      });
    }
    go.Notify();
    for (std::thread& thread : threads) thread.join();
    for (const auto& result : results) {
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_TRUE(result->pending.empty());
    }
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    const pqxx::result rows = tx.exec("SELECT version FROM schema_migrations ORDER BY version");
    ASSERT_EQ(rows.size(), static_cast<size_t>(results[0]->newest_version));
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i][0].as<int>(), int(i) + 1);
  }
}

}  // namespace
}  // namespace gyre::orchestrator
