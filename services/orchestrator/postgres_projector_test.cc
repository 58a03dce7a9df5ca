// The projection of the record stream into the relational tables, on a
// real PostgreSQL 15 through a real PostgreSQL state store: the rows say
// what the records said; a projector restarted mid-way, or two at once,
// project each record once; records a snapshot dropped are made up for
// from the snapshot; the thread catches up and reports its lag. Sharded
// (postgres_sharding), the same through a real shard store: one stream and
// cursor per shard plus the definitions, two projectors never projecting
// one stream at once nor waiting for each other.
#include "services/orchestrator/postgres_projector.h"

#include <algorithm>
#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/orchestrator/postgres_shard_store.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/testing/postgres_test_server.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;
using ::gyre::orchestrator::testing::ScratchDatabase;
using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'700'000'000'000'000'000;  // record times, Unix nanos

// The etl workflow: a; b and c after a; b without retries, c with one.
v1::WorkflowDefinition Etl() {
  v1::WorkflowDefinition definition;
  definition.set_name("workflows/etl");
  definition.set_version(1);
  definition.set_tenant("acme");
  definition.set_default_queue("batch");
  definition.add_tasks()->set_id("a");
  v1::TaskSpec* b = definition.add_tasks();
  b->set_id("b");
  b->add_depends_on("a");
  v1::TaskSpec* c = definition.add_tasks();
  c->set_id("c");
  c->add_depends_on("a");
  c->set_queue("gpu");
  c->set_priority(90);
  c->mutable_retry()->set_max_retries(1);
  return definition;
}

// Records in the order the engine writes them, each a second apart.
class Records {
 public:
  std::vector<v1::StateRecord>& all() { return records_; }

  v1::StateRecord& Add() {
    v1::StateRecord& record = records_.emplace_back();
    record.set_unix_nanos(kT0 + static_cast<int64_t>(records_.size()) * 1'000'000'000);
    return record;
  }
  void Stored() { *Add().mutable_workflow_stored()->mutable_definition() = Etl(); }
  void Started(const std::string& id) {
    v1::ExecutionStarted& started = *Add().mutable_execution_started();
    started.set_execution_id(id);
    *started.mutable_definition() = Etl();
    (*started.mutable_context())["REGION"] = "eu";
    (*started.mutable_context())["TOKEN"] = "s3cret-value";
    started.add_secret_keys("TOKEN");
    started.set_priority(40);
    started.mutable_create_time()->set_seconds(kT0 / 1'000'000'000);
  }
  void Leased(const std::string& exec, const std::string& task, int attempt) {
    v1::TaskLeased& leased = *Add().mutable_task_leased();
    leased.set_execution_id(exec);
    leased.set_task_id(task);
    leased.set_attempt(attempt);
    leased.set_agent_id("agent-1");
  }
  void Running(const std::string& exec, const std::string& task, int attempt) {
    v1::AttemptStarted& started = *Add().mutable_attempt_started();
    started.set_execution_id(exec);
    started.set_task_id(task);
    started.set_attempt(attempt);
  }
  void Result(const std::string& exec, const std::string& task, int attempt,
              v1::AttemptOutcome outcome) {
    v1::TaskResultRecorded& recorded = *Add().mutable_task_result();
    recorded.set_agent_id("agent-1");
    v1::TaskResult& result = *recorded.mutable_result();
    result.mutable_ref()->set_execution(absl::StrCat("executions/", exec));
    result.mutable_ref()->set_task_id(task);
    result.mutable_ref()->set_attempt(attempt);
    result.set_outcome(outcome);
    result.set_exit_code(outcome == v1::ATTEMPT_SUCCEEDED ? 0 : 3);
    result.mutable_cpu_time()->set_seconds(2);
    result.mutable_wall_time()->set_seconds(5);
    result.set_peak_rss_bytes(int64_t{3} << 30);
    result.set_stdout_tail("lots of output");
    if (outcome != v1::ATTEMPT_SUCCEEDED) result.set_error("exit 3");
  }
  void RetryDue(const std::string& exec, const std::string& task, int attempt) {
    v1::TaskRetryDue& due = *Add().mutable_task_retry_due();
    due.set_execution_id(exec);
    due.set_task_id(task);
    due.set_attempt(attempt);
  }
  void Control(const std::string& exec, v1::ExecutionControl::Action action) {
    v1::ExecutionControl& control = *Add().mutable_execution_control();
    control.set_execution_id(exec);
    control.set_action(action);
    control.set_reason("operator");
  }

 private:
  std::vector<v1::StateRecord> records_;
};

// e1: a succeeds; b fails (no retries); c fails once, is retried, succeeds
// → FAILED, "1 task(s) failed". e2: paused, resumed, cancelled.
Records Story() {
  Records records;
  records.Stored();
  records.Started("e1");
  records.Leased("e1", "a", 1);
  records.Running("e1", "a", 1);
  records.Result("e1", "a", 1, v1::ATTEMPT_SUCCEEDED);
  records.Started("e2");
  records.Control("e2", v1::ExecutionControl::PAUSE);
  records.Leased("e1", "b", 1);
  records.Leased("e1", "c", 1);
  records.Result("e1", "b", 1, v1::ATTEMPT_FAILED);
  records.Result("e1", "c", 1, v1::ATTEMPT_FAILED);
  records.Control("e2", v1::ExecutionControl::RESUME);
  records.RetryDue("e1", "c", 1);
  records.Leased("e1", "c", 2);
  records.Result("e1", "c", 2, v1::ATTEMPT_SUCCEEDED);
  records.Control("e2", v1::ExecutionControl::CANCEL);
  return records;
}

// A store on `db` with `records` appended and durable.
std::unique_ptr<StateStore> StoreWith(const ScratchDatabase& db,
                                      std::vector<v1::StateRecord>& records) {
  auto store = NewPostgresStateStore(db.options());
  EXPECT_TRUE(store
                  ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                         [](const v1::StateRecord&) { return absl::OkStatus(); })
                  .ok());
  absl::Notification done;
  absl::Status appended;
  store->Append(records, [&](absl::Status status) {
    appended = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_TRUE(appended.ok()) << appended;
  return store;
}

PostgresProjectorOptions ProjectorOptions(const ScratchDatabase& db, int batch = 2000) {
  PostgresProjectorOptions options;
  options.store = db.options();
  options.max_batch_records = batch;
  options.poll_interval = absl::Milliseconds(20);
  return options;
}

// Batches until caught up; the number of batches that projected something.
int CatchUp(PostgresProjector& projector) {
  for (int batches = 0; batches < 1000; ++batches) {
    absl::StatusOr<int> projected = projector.ProjectBatch();
    EXPECT_TRUE(projected.ok()) << projected.status();
    if (!projected.ok() || *projected == 0) return batches;
  }
  ADD_FAILURE() << "never caught up";
  return -1;
}

std::string One(pqxx::work& tx, const std::string& sql) {
  const pqxx::row row = tx.exec1(sql);
  return row[0].is_null() ? "NULL" : row[0].as<std::string>();
}

// What the story's records say, checked row by row.
void ExpectStoryRows(const ScratchDatabase& db) {
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx,
                "SELECT definition->>'name' || ' ' || version || ' ' || tenant "
                "FROM workflow_definitions"),
            "workflows/etl 1 acme");
  EXPECT_EQ(One(tx,
                "SELECT definition->'tasks'->2->'retry'->>'maxRetries' "
                "FROM workflow_definitions"),
            "1")
      << "the definition is the proto's canonical JSON";

  EXPECT_EQ(One(tx,
                "SELECT state || ' ' || reason || ' ' || tenant || ' ' || workflow || ' ' || "
                "priority || ' ' || task_count FROM executions WHERE id = 'e1'"),
            "FAILED 1 task(s) failed acme etl 40 3");
  EXPECT_EQ(One(tx,
                "SELECT extract(epoch FROM end_time - start_time)::int FROM executions "
                "WHERE id = 'e1'"),
            "12")
      << "started at the first lease (record 3), ended with the last result (record 15)";
  EXPECT_EQ(One(tx, "SELECT context::text FROM executions WHERE id = 'e1'"),
            R"({"TOKEN": "***", "REGION": "eu"})")
      << "secret values are masked";
  EXPECT_EQ(One(tx, "SELECT state || ' ' || reason FROM executions WHERE id = 'e2'"),
            "CANCELLED operator");

  EXPECT_EQ(One(tx,
                "SELECT string_agg(task_id || ':' || state || ':' || queue || ':' || "
                "priority || ':' || retries_used, ' ' ORDER BY task_id) "
                "FROM tasks WHERE execution_id = 'e1'"),
            "a:SUCCEEDED:batch:40:0 b:FAILED:batch:40:0 c:SUCCEEDED:gpu:90:1");
  EXPECT_EQ(One(tx,
                "SELECT string_agg(task_id || ':' || state, ' ' ORDER BY task_id) "
                "FROM tasks WHERE execution_id = 'e2'"),
            "a:CANCELLED b:CANCELLED c:CANCELLED");
  EXPECT_EQ(One(tx,
                "SELECT string_agg(task_id || '<-' || depends_on, ' ' ORDER BY task_id) "
                "FROM dependencies WHERE execution_id = 'e1'"),
            "b<-a c<-a");

  EXPECT_EQ(One(tx,
                "SELECT string_agg(task_id || '#' || attempt || ':' || state || ':' || "
                "agent_id || ':' || exit_code, ' ' ORDER BY task_id, attempt) "
                "FROM task_runs WHERE execution_id = 'e1'"),
            "a#1:SUCCEEDED:agent-1:0 b#1:FAILED:agent-1:3 c#1:FAILED:agent-1:3 "
            "c#2:SUCCEEDED:agent-1:0");
  EXPECT_EQ(One(tx,
                "SELECT cpu_seconds || ' ' || wall_seconds || ' ' || peak_memory_bytes || "
                "' ' || extract(epoch FROM ended_at - started_at)::int || ' ' || error "
                "FROM task_runs WHERE execution_id = 'e1' AND task_id = 'a'"),
            "2 5 3221225472 1 ");
  EXPECT_EQ(One(tx,
                "SELECT string_agg(task_id || '#' || attempt || ':' || "
                "coalesce(extract(epoch FROM started_at - leased_at)::int::text, 'NULL'), ' ' "
                "ORDER BY task_id, attempt) FROM task_runs WHERE execution_id = 'e1'"),
            "a#1:1 b#1:0 c#1:0 c#2:0")
      << "a started a second after its lease (attempt_started); the others reported no start "
         "(a builtin, or a process that ended within the agent's start_report_delay): started "
         "their 5 s wall time before the result, and not before the lease";
  EXPECT_EQ(One(tx, "SELECT count(*) FROM resource_observations"), "4");

  EXPECT_EQ(One(tx,
                "SELECT string_agg(sequence || ':' || kind, ' ' ORDER BY sequence) "
                "FROM events WHERE execution_id = 'e1'"),
            "1:execution_started 2:task_leased 3:attempt_started 4:task_result 5:task_leased "
            "6:task_leased 7:task_result 8:task_result 9:task_retry_due 10:task_leased "
            "11:task_result");
  EXPECT_EQ(One(tx,
                "SELECT count(*) FROM events WHERE event->'taskResult'->'result' ? "
                "'stdoutTail'"),
            "0")
      << "captured output stays out of events";
  EXPECT_EQ(One(tx,
                "SELECT string_agg(sequence || ':' || kind, ' ' ORDER BY sequence) "
                "FROM events WHERE execution_id = 'e2'"),
            "1:execution_started 2:execution_control 3:execution_control 4:execution_control");

  EXPECT_EQ(One(tx,
                "SELECT (resumed_at - paused_at)::text || ' ' || (tasks->>'a') "
                "FROM pause_checkpoints WHERE execution_id = 'e2'"),
            "00:00:05 READY");
}

// Runs two projectors side by side until `done` (or 60 s), then checks
// that together they projected each of the `records` once, without error,
// into the story's rows.
void ExpectTheRaceProjectsEachRecordOnce(const ScratchDatabase& db, PostgresProjector& one,
                                         PostgresProjector& two, size_t records,
                                         const std::function<bool()>& done) {
  one.Start();
  two.Start();
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up && !done()) absl::SleepFor(absl::Milliseconds(20));
  one.Stop();
  two.Stop();
  EXPECT_TRUE(one.progress().last_error.ok()) << one.progress().last_error;
  EXPECT_TRUE(two.progress().last_error.ok()) << two.progress().last_error;
  EXPECT_EQ(one.progress().records_projected + two.progress().records_projected, records);
  ExpectStoryRows(db);
}

TEST(PostgresProjectorTest, TheRowsSayWhatTheRecordsSaid) {
  ScratchDatabase db;
  Records records = Story();
  auto store = StoreWith(db, records.all());
  PostgresProjector projector(ProjectorOptions(db));
  EXPECT_EQ(CatchUp(projector), 1);
  EXPECT_EQ(projector.progress().position, records.all().size());
  ExpectStoryRows(db);
}

// Retention's ExecutionsExpired deletes every row of the executions it
// names, also when their rows were written in an earlier batch; the others
// stay.
TEST(PostgresProjectorTest, ExecutionsRetentionForgotLeaveEveryTable) {
  ScratchDatabase db;
  Records records = Story();
  records.Add().mutable_task_logs_expired()->add_execution_ids("e1");
  records.Add().mutable_executions_expired()->add_execution_ids("e1");
  auto store = StoreWith(db, records.all());
  PostgresProjector projector(ProjectorOptions(db, /*batch=*/5));
  EXPECT_GT(CatchUp(projector), 1);
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  for (const char* table : {"tasks", "dependencies", "task_runs", "events", "pause_checkpoints",
                            "resource_observations"}) {
    EXPECT_EQ(One(tx, absl::StrCat("SELECT count(*) FROM ", table, " WHERE execution_id = 'e1'")),
              "0")
        << table;
  }
  EXPECT_EQ(One(tx, "SELECT count(*) FROM executions WHERE id = 'e1'"), "0");
  EXPECT_EQ(One(tx, "SELECT count(*) FROM executions WHERE id = 'e2'"), "1");
  EXPECT_NE(One(tx, "SELECT count(*) FROM events WHERE execution_id = 'e2'"), "0");
}

TEST(PostgresProjectorTest, AnEvaluatorsSkipIsFollowed) {
  ScratchDatabase db;
  Records records;
  records.Started("e3");
  records.Leased("e3", "a", 1);
  records.Result("e3", "a", 1, v1::ATTEMPT_SUCCEEDED);
  records.all().back().mutable_task_result()->mutable_decision()->add_skip("b");
  records.all().back().mutable_task_result()->set_output_parsed(true);
  records.Leased("e3", "c", 1);
  auto store = StoreWith(db, records.all());
  PostgresProjector projector(ProjectorOptions(db));
  CatchUp(projector);
  {
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    EXPECT_EQ(One(tx,
                  "SELECT string_agg(task_id || ':' || state, ' ' ORDER BY task_id) "
                  "FROM tasks WHERE execution_id = 'e3'"),
              "a:SUCCEEDED b:SKIPPED c:LEASED");
    EXPECT_EQ(One(tx, "SELECT state FROM executions WHERE id = 'e3'"), "RUNNING");
  }
  Records more;
  more.Result("e3", "c", 1, v1::ATTEMPT_SUCCEEDED);
  absl::Notification done;
  store->Append(more.all(), [&](absl::Status) { done.Notify(); });
  done.WaitForNotification();
  CatchUp(projector);
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx, "SELECT state FROM executions WHERE id = 'e3'"), "SUCCEEDED")
      << "a skipped task does not keep its execution waiting";
}

TEST(PostgresProjectorTest, RestartedMidWayItProjectsEachRecordOnce) {
  ScratchDatabase db;
  Records records = Story();
  auto store = StoreWith(db, records.all());
  {
    PostgresProjector first(ProjectorOptions(db, /*batch=*/3));
    ASSERT_TRUE(first.ProjectBatch().ok());
    ASSERT_TRUE(first.ProjectBatch().ok());
    EXPECT_EQ(first.progress().position, 6u);
  }
  PostgresProjector second(ProjectorOptions(db, /*batch=*/4));
  EXPECT_GT(CatchUp(second), 0);
  EXPECT_EQ(second.progress().position, records.all().size());
  EXPECT_EQ(second.progress().records_projected, records.all().size() - 6);
  ExpectStoryRows(db);
}

// A caught-up projector polls every poll_interval: a poll that finds
// nothing to do must not lock the cursor row (a writing transaction: a WAL
// flush several times a second on an idle orchestrator, in the engine's
// commits' way).
TEST(PostgresProjectorTest, APollThatFindsNothingToDoWritesNothing) {
  ScratchDatabase db;
  Records records = Story();
  auto store = StoreWith(db, records.all());
  PostgresProjector projector(ProjectorOptions(db));
  CatchUp(projector);
  const auto cursor_row_version = [&] {
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    return One(tx, "SELECT xmin::text || '/' || xmax::text FROM projection_cursor");
  };
  const std::string caught_up = cursor_row_version();
  for (int i = 0; i < 3; ++i) {
    const absl::StatusOr<int> projected = projector.ProjectBatch();
    ASSERT_TRUE(projected.ok()) << projected.status();
    EXPECT_EQ(*projected, 0);
  }
  EXPECT_EQ(cursor_row_version(), caught_up) << "an idle poll locked or rewrote the cursor row";
  EXPECT_EQ(projector.progress().position, records.all().size());
}

TEST(PostgresProjectorTest, TwoProjectorsAtOnceProjectEachRecordOnce) {
  ScratchDatabase db;
  Records records = Story();
  auto store = StoreWith(db, records.all());
  PostgresProjector one(ProjectorOptions(db, /*batch=*/2));
  PostgresProjector two(ProjectorOptions(db, /*batch=*/3));
  ExpectTheRaceProjectsEachRecordOnce(db, one, two, records.all().size(), [&] {
    return std::max(one.progress().position, two.progress().position) >= records.all().size();
  });
}

TEST(PostgresProjectorTest, TheThreadFollowsNewRecordsAndReportsItsLag) {
  ScratchDatabase db;
  Records records;
  records.Stored();
  records.Started("e1");
  auto store = StoreWith(db, records.all());
  PostgresProjector projector(ProjectorOptions(db));
  projector.Start();
  auto wait_for = [&](uint64_t position) {
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (absl::Now() < give_up && projector.progress().position < position) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    return projector.progress();
  };
  ProjectionProgress progress = wait_for(2);
  EXPECT_EQ(progress.position, 2u);
  EXPECT_EQ(progress.stream_position, 2u) << "lag 0";

  Records more;
  more.Leased("e1", "a", 1);
  absl::Notification done;
  store->Append(more.all(), [&](absl::Status) { done.Notify(); });
  done.WaitForNotification();
  progress = wait_for(3);
  EXPECT_EQ(progress.position, 3u);
  projector.Stop();
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx, "SELECT state FROM executions WHERE id = 'e1'"), "RUNNING");
  EXPECT_EQ(One(tx, "SELECT position FROM projection_cursor WHERE name = 'relational'"), "3");
}

// The tables after a projection from e1's snapshot (a succeeded with 7 s
// of CPU, b and c ready) and the record after it (b leased).
void ExpectE1AsItsSnapshotLeftItAndBLeased(const ScratchDatabase& db) {
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx, "SELECT state FROM executions WHERE id = 'e1'"), "RUNNING");
  EXPECT_EQ(One(tx,
                "SELECT string_agg(task_id || ':' || state, ' ' ORDER BY task_id) "
                "FROM tasks WHERE execution_id = 'e1'"),
            "a:SUCCEEDED b:LEASED c:READY");
  EXPECT_EQ(One(tx, "SELECT state || ' ' || cpu_seconds FROM task_runs WHERE task_id = 'a'"),
            "SUCCEEDED 7");
  EXPECT_EQ(One(tx, "SELECT count(*) FROM workflow_definitions"), "1");
}

TEST(PostgresProjectorTest, RecordsASnapshotDroppedAreMadeUpForFromIt) {
  ScratchDatabase db;
  Records records;
  records.Stored();
  records.Started("e1");
  records.Leased("e1", "a", 1);
  auto store = StoreWith(db, records.all());
  // The engine's state at position 3, as a snapshot says it: a succeeded.
  v1::EngineSnapshot snapshot;
  *snapshot.add_workflows() = Etl();
  v1::ExecutionSnapshot& saved = *snapshot.add_executions();
  *saved.mutable_started() = records.all()[1].execution_started();
  saved.set_state(v1::EXECUTION_RUNNING);
  saved.mutable_start_time()->set_seconds(kT0 / 1'000'000'000 + 3);
  for (const char* state : {"SUCCEEDED", "READY", "READY"}) {
    v1::TaskSlotSnapshot& slot = *saved.add_tasks();
    v1::TaskState value = v1::TASK_STATE_UNSPECIFIED;
    ASSERT_TRUE(v1::TaskState_Parse(absl::StrCat("TASK_", state), &value));
    slot.set_state(value);
  }
  v1::TaskAttempt& attempt = *saved.mutable_tasks(0)->add_attempts();
  attempt.set_attempt(1);
  attempt.set_agent("agent-1");
  attempt.set_outcome(v1::ATTEMPT_SUCCEEDED);
  attempt.mutable_cpu_time()->set_seconds(7);
  saved.mutable_tasks(0)->set_attempt(1);
  {
    // As with the projection turned off: no cursor keeps the records.
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    tx.exec0("DELETE FROM projection_cursor");
    tx.commit();
  }
  ASSERT_TRUE(store->WriteSnapshot(3, snapshot).ok());
  Records after;
  after.Leased("e1", "b", 1);
  absl::Notification done;
  store->Append(after.all(), [&](absl::Status) { done.Notify(); });
  done.WaitForNotification();

  PostgresProjector projector(ProjectorOptions(db));
  EXPECT_EQ(CatchUp(projector), 2) << "the snapshot, then the record after it";
  EXPECT_EQ(projector.progress().position, 4u);
  ExpectE1AsItsSnapshotLeftItAndBLeased(db);
}

TEST(PostgresProjectorTest, ASnapshotKeepsTheRecordsTheProjectionHasNotRead) {
  ScratchDatabase db;
  Records records = Story();
  auto store = StoreWith(db, records.all());
  PostgresProjector projector(ProjectorOptions(db, /*batch=*/5));
  ASSERT_TRUE(projector.ProjectBatch().ok());
  ASSERT_EQ(projector.progress().position, 5u);
  // The engine's snapshot covers every record; those after 5 stay for the
  // projection, and the store still loads from the snapshot alone.
  v1::EngineSnapshot snapshot;
  snapshot.set_executions_started(2);
  ASSERT_TRUE(store->WriteSnapshot(records.all().size(), snapshot).ok());
  store.reset();
  auto reopened = NewPostgresStateStore(db.options());
  int replayed = 0;
  ASSERT_TRUE(reopened
                  ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                         [&](const v1::StateRecord&) {
                           ++replayed;
                           return absl::OkStatus();
                         })
                  .ok());
  EXPECT_EQ(replayed, 0);
  EXPECT_EQ(reopened->last_position(), records.all().size());

  EXPECT_GT(CatchUp(projector), 0);
  SCOPED_TRACE("every event, none made up from the snapshot");
  ExpectStoryRows(db);
  // Once projected, the next snapshot drops them.
  ASSERT_TRUE(reopened->WriteSnapshot(reopened->last_position(), snapshot).ok());
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx, "SELECT count(*) FROM state_records"), "0");
}

TEST(PostgresProjectorTest, AnUnreachableDatabaseIsAnErrorWithoutThePassword) {
  PostgresProjectorOptions options;
  options.store.dsn = "host=127.0.0.1 port=1 dbname=gyre user=gyre connect_timeout=5";
  options.store.password = "pr0jector-secret";
  PostgresProjector projector(options);
  const absl::StatusOr<int> projected = projector.ProjectBatch();
  ASSERT_FALSE(projected.ok());
  EXPECT_EQ(projected.status().code(), absl::StatusCode::kUnavailable) << projected.status();
  EXPECT_THAT(projected.status().message(), HasSubstr("port=1"));
  EXPECT_THAT(projected.status().message(), ::testing::Not(HasSubstr("pr0jector-secret")));
  EXPECT_FALSE(projector.progress().last_error.ok());
}

// Sharded: the story's executions live in two shards, its definition in
// the definitions stream (shard -1).
const uint32_t kShardOfE1 = ShardOfExecution("e1", kDefaultShardCount);
const uint32_t kShardOfE2 = ShardOfExecution("e2", kDefaultShardCount);

absl::Status AppendNow(StateStore& store, std::vector<v1::StateRecord>& records) {
  absl::Notification done;
  absl::Status appended;
  store.Append(records, [&](absl::Status status) {
    appended = std::move(status);
    done.Notify();
  });
  done.WaitForNotification();
  return appended;
}

// The shard store of orchestrator "orch-a" on `db` holding `shards` (their
// leases granted in SQL, token 1, as a lease round would), with `records`
// appended and durable.
std::unique_ptr<PostgresShardStore> ShardStoreWith(const ScratchDatabase& db,
                                                   const std::vector<uint32_t>& shards,
                                                   std::vector<v1::StateRecord>& records,
                                                   bool keep_records_for_projection = true) {
  PostgresShardStoreOptions options;
  options.store = db.options();
  options.orchestrator_id = "orch-a";
  options.keep_records_for_projection = keep_records_for_projection;
  std::unique_ptr<PostgresShardStore> store = PostgresShardStore::Create(options);
  auto no_snapshot = [](v1::EngineSnapshot) { return absl::OkStatus(); };
  auto ignore = [](const v1::StateRecord&) { return absl::OkStatus(); };
  const absl::Status loaded = store->Load(no_snapshot, ignore);  // migrates
  EXPECT_TRUE(loaded.ok()) << loaded;
  {
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    for (uint32_t shard : shards) {
      tx.exec_params0(
          "UPDATE shard_leases SET owner = 'orch-a', token = 1, "
          "expires_at = now() + interval '1 hour' WHERE shard = $1",
          static_cast<int>(shard));
    }
    tx.commit();
  }
  for (uint32_t shard : shards) {
    const absl::Status status = store->LoadShard(shard, 1, no_snapshot, ignore);
    EXPECT_TRUE(status.ok()) << status;
  }
  const absl::Status appended = AppendNow(*store, records);
  EXPECT_TRUE(appended.ok()) << appended;
  return store;
}

PostgresProjectorOptions ShardedProjectorOptions(const ScratchDatabase& db,
                                                 std::vector<uint32_t> held, int batch = 2000) {
  PostgresProjectorOptions options = ProjectorOptions(db, batch);
  options.held_shards = [held] { return held; };
  return options;
}

// Each cursor row: "name=position", sorted.
std::string Cursors(const ScratchDatabase& db) {
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  return One(tx,
             "SELECT string_agg(name || '=' || position, ' ' ORDER BY name) "
             "FROM projection_cursor WHERE name LIKE 'shard:%'");
}

TEST(ShardedPostgresProjectorTest, EachOwnedShardAndTheDefinitionsAreProjectedOnce) {
  ASSERT_NE(kShardOfE1, kShardOfE2) << "the story needs two shards";
  ScratchDatabase db;
  Records records = Story();
  auto store = ShardStoreWith(db, {kShardOfE1, kShardOfE2}, records.all());
  PostgresProjector projector(ShardedProjectorOptions(db, {kShardOfE1, kShardOfE2}, 4));
  EXPECT_GT(CatchUp(projector), 1) << "batches of 4 records per stream";
  ExpectStoryRows(db);
  EXPECT_EQ(Cursors(db),
            absl::StrCat("shard:-1=1 shard:", kShardOfE1, "=11 shard:", kShardOfE2, "=4"))
      << "one cursor per stream, at its last record";
  EXPECT_EQ(projector.progress().position, records.all().size()) << "summed over the streams";
  EXPECT_EQ(projector.progress().stream_position, records.all().size()) << "lag 0";
  EXPECT_EQ(projector.progress().records_projected, records.all().size());

  const absl::StatusOr<int> again = projector.ProjectBatch();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0) << "caught up: nothing projected twice";
  ExpectStoryRows(db);
}

TEST(ShardedPostgresProjectorTest, OnlyTheShardsHeldAreProjected) {
  ScratchDatabase db;
  Records records = Story();
  auto store = ShardStoreWith(db, {kShardOfE1, kShardOfE2}, records.all());
  PostgresProjector projector(ShardedProjectorOptions(db, {kShardOfE2}));
  CatchUp(projector);
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx, "SELECT string_agg(id || ':' || state, ' ') FROM executions"), "e2:CANCELLED")
      << "e1's shard is another orchestrator's to project";
  EXPECT_EQ(One(tx, "SELECT count(*) FROM workflow_definitions"), "1");
}

TEST(ShardedPostgresProjectorTest, AShardsRecordsItsSnapshotDroppedAreMadeUpForFromIt) {
  ScratchDatabase db;
  Records records;
  records.Stored();
  records.Started("e1");
  records.Leased("e1", "a", 1);
  // The projection off: the snapshot drops every record it covers.
  auto store = ShardStoreWith(db, {kShardOfE1}, records.all(),
                              /*keep_records_for_projection=*/false);
  // The shard's state at its position 2 (e1 started, a leased), as a
  // snapshot says it: a succeeded.
  v1::EngineSnapshot snapshot;
  v1::ExecutionSnapshot& saved = *snapshot.add_executions();
  *saved.mutable_started() = records.all()[1].execution_started();
  saved.set_state(v1::EXECUTION_RUNNING);
  saved.mutable_start_time()->set_seconds(kT0 / 1'000'000'000 + 3);
  for (v1::TaskState state : {v1::TASK_SUCCEEDED, v1::TASK_READY, v1::TASK_READY}) {
    saved.add_tasks()->set_state(state);
  }
  v1::TaskAttempt& attempt = *saved.mutable_tasks(0)->add_attempts();
  attempt.set_attempt(1);
  attempt.set_agent("agent-1");
  attempt.set_outcome(v1::ATTEMPT_SUCCEEDED);
  attempt.mutable_cpu_time()->set_seconds(7);
  saved.mutable_tasks(0)->set_attempt(1);
  ASSERT_EQ(store->last_shard_position(kShardOfE1), 2u);
  ASSERT_TRUE(store->WriteShardSnapshot(kShardOfE1, 2, snapshot).ok());
  Records after;
  after.Leased("e1", "b", 1);
  ASSERT_TRUE(AppendNow(*store, after.all()).ok());

  PostgresProjector projector(ShardedProjectorOptions(db, {kShardOfE1}));
  EXPECT_EQ(CatchUp(projector), 2) << "the definition and the snapshot, then the record after it";
  EXPECT_EQ(Cursors(db), absl::StrCat("shard:-1=1 shard:", kShardOfE1, "=3"));
  ExpectE1AsItsSnapshotLeftItAndBLeased(db);
}

TEST(ShardedPostgresProjectorTest, AShardsSnapshotKeepsTheRecordsItsProjectionHasNotRead) {
  ScratchDatabase db;
  Records records = Story();
  auto store = ShardStoreWith(db, {kShardOfE1, kShardOfE2}, records.all());
  PostgresProjector projector(ShardedProjectorOptions(db, {kShardOfE1, kShardOfE2}, 3));
  ASSERT_TRUE(projector.ProjectBatch().ok());
  // e1's shard's snapshot covers its 11 records; the 8 after the cursor stay
  // for the projection.
  v1::EngineSnapshot snapshot;
  ASSERT_EQ(store->last_shard_position(kShardOfE1), 11u);
  ASSERT_TRUE(store->WriteShardSnapshot(kShardOfE1, 11, snapshot).ok());
  {
    pqxx::connection connection(db.dsn());
    pqxx::work tx(connection);
    EXPECT_EQ(
        One(tx, absl::StrCat("SELECT min(position) || '-' || max(position) FROM shard_records "
                             "WHERE shard = ",
                             kShardOfE1)),
        "4-11");
  }
  EXPECT_GT(CatchUp(projector), 0);
  SCOPED_TRACE("every event, none made up from the snapshot");
  ExpectStoryRows(db);
  // Once projected, the shard's next snapshot drops them.
  ASSERT_TRUE(store->WriteShardSnapshot(kShardOfE1, 11, snapshot).ok());
  pqxx::connection connection(db.dsn());
  pqxx::work tx(connection);
  EXPECT_EQ(One(tx, absl::StrCat("SELECT count(*) FROM shard_records WHERE shard = ", kShardOfE1)),
            "0");
}

TEST(ShardedPostgresProjectorTest, AStreamAnotherProjectorHoldsIsSkippedNotWaitedFor) {
  ScratchDatabase db;
  Records records = Story();
  auto store = ShardStoreWith(db, {kShardOfE1, kShardOfE2}, records.all());
  // Another projector in the middle of e1's shard's batch: its cursor row
  // locked.
  pqxx::connection holder(db.dsn());
  {
    pqxx::work made(holder);
    made.exec_params0("INSERT INTO projection_cursor (name, position) VALUES ($1, 0)",
                      absl::StrCat("shard:", kShardOfE1));
    made.commit();
  }
  auto holding = std::make_unique<pqxx::work>(holder);
  holding->exec_params1("SELECT 1 FROM projection_cursor WHERE name = $1 FOR UPDATE",
                        absl::StrCat("shard:", kShardOfE1));

  PostgresProjector projector(ShardedProjectorOptions(db, {kShardOfE1, kShardOfE2}));
  absl::Notification returned;
  absl::StatusOr<int> projected;
  std::thread batch([&] {
    projected = projector.ProjectBatch();
    returned.Notify();
  });
  const bool in_time = returned.WaitForNotificationWithTimeout(absl::Seconds(30));
  if (!in_time) holding->abort();  // lets it go, so the thread can be joined
  batch.join();
  ASSERT_TRUE(in_time) << "ProjectBatch waited for the stream another projector holds";
  ASSERT_TRUE(projected.ok()) << projected.status();
  EXPECT_EQ(*projected, 5) << "the definition and e2's 4 records";
  // Its lag counts the stream it skipped (not yet projected by anyone).
  EXPECT_EQ(projector.progress().stream_position - projector.progress().position, 11u);

  holding->commit();
  EXPECT_EQ(CatchUp(projector), 1) << "e1's shard, once free";
  ExpectStoryRows(db);
}

TEST(ShardedPostgresProjectorTest, TwoProjectorsOnOneDatabaseProjectEachRecordOnce) {
  ScratchDatabase db;
  Records records = Story();
  auto store = ShardStoreWith(db, {kShardOfE1, kShardOfE2}, records.all());
  // Both think they hold both shards (one of them a former owner).
  PostgresProjector one(ShardedProjectorOptions(db, {kShardOfE1, kShardOfE2}, 2));
  PostgresProjector two(ShardedProjectorOptions(db, {kShardOfE2, kShardOfE1}, 3));
  ExpectTheRaceProjectsEachRecordOnce(db, one, two, records.all().size(), [&] {
    return std::min(one.progress().position, two.progress().position) >= records.all().size();
  });
}

}  // namespace
}  // namespace gyre::orchestrator
