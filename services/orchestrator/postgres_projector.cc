#include "services/orchestrator/postgres_projector.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/logging/logger.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/orchestrator/postgres_connection.h"
#include "services/orchestrator/shard_map.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;
namespace pb = ::google::protobuf;

namespace {

// The cursor row of the single-writer projection in projection_cursor
// (sharded: "shard:<n>" per stream).
constexpr char kCursorName[] = "relational";
// The stream of workflow definitions in shard_records (every owner's).
constexpr int kDefinitionsShard = -1;

std::string Iso(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
}

std::optional<absl::Time> ToTime(const pb::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return std::nullopt;
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

double Seconds(const pb::Duration& duration) {
  return static_cast<double>(duration.seconds()) + duration.nanos() / 1e9;
}

std::string Json(const pb::Message& message) {
  std::string out;
  if (!pb::util::MessageToJsonString(message, &out).ok()) return "{}";
  return out;
}

// The state names the tables use: the enum's without its prefix.
std::string TaskStateName(v1::TaskState state) {
  return std::string(absl::StripPrefix(v1::TaskState_Name(state), "TASK_"));
}
std::string ExecutionStateName(v1::ExecutionState state) {
  return std::string(absl::StripPrefix(v1::ExecutionState_Name(state), "EXECUTION_"));
}
std::string OutcomeName(v1::AttemptOutcome outcome) {
  return std::string(absl::StripPrefix(v1::AttemptOutcome_Name(outcome), "ATTEMPT_"));
}

// One row for jsonb_to_recordset: integers go as strings (exact for
// int64), doubles as numbers, times as ISO 8601.
class Row {
 public:
  Row& Text(const char* column, const std::string& value) {
    (*row_.mutable_fields())[column].set_string_value(value);
    return *this;
  }
  Row& Int(const char* column, int64_t value) { return Text(column, absl::StrCat(value)); }
  Row& Double(const char* column, double value) {
    (*row_.mutable_fields())[column].set_number_value(value);
    return *this;
  }
  Row& Time(const char* column, std::optional<absl::Time> value) {
    if (value) return Text(column, Iso(*value));
    (*row_.mutable_fields())[column].set_null_value(pb::NULL_VALUE);
    return *this;
  }
  // A JSON document, as a string the SQL casts to jsonb.
  Row& Document(const char* column, std::string json) { return Text(column, std::move(json)); }
  const pb::Struct& fields() const { return row_; }
  void MergeFrom(const Row& later) {
    for (const auto& [key, value] : later.row_.fields()) (*row_.mutable_fields())[key] = value;
  }

 private:
  pb::Struct row_;
};

std::string RowsJson(const std::vector<Row>& rows) {
  pb::ListValue list;
  for (const Row& row : rows) *list.add_values()->mutable_struct_value() = row.fields();
  pb::Value value;
  *value.mutable_list_value() = std::move(list);
  std::string out;
  if (!pb::util::MessageToJsonString(value, &out).ok()) return "[]";
  return out;
}

// A task as the projection keeps it (a row of `tasks`).
struct TaskRow {
  std::string id;
  std::string queue;
  std::string state;
  std::string identity;
  int priority = 50;
  int64_t attempts = 0;
  int retries_used = 0;
  int max_retries = 0;
  std::optional<absl::Time> ready_time;
  int unmet = 0;                   // dependencies not yet succeeded
  std::vector<size_t> dependants;  // indexes into ExecutionRow::tasks
  bool dirty = false;
};

// An execution with its tasks: the working set one batch changes.
struct ExecutionRow {
  std::string id;
  std::string workflow;
  int64_t workflow_version = 0;
  std::string tenant;
  std::string state;
  std::string reason;
  int priority = 50;
  std::string parent;
  std::string request_id;
  absl::Time create_time;
  std::optional<absl::Time> start_time;
  std::optional<absl::Time> end_time;
  std::string context = "{}";
  std::vector<TaskRow> tasks;
  absl::flat_hash_map<std::string, size_t> task_index;
  std::vector<std::pair<std::string, std::string>> new_dependencies;  // (task, depends_on)
  bool dirty = false;

  TaskRow* Task(const std::string& task_id) {
    auto it = task_index.find(task_id);
    return it == task_index.end() ? nullptr : &tasks[it->second];
  }
  bool final() const { return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED"; }
};

bool Waiting(const std::string& state) {
  return state == "PENDING" || state == "READY" || state == "LEASED" || state == "RUNNING";
}

// What one batch writes: built from records (or a snapshot) in memory,
// then written with one statement per table.
class Batch {
 public:
  explicit Batch(pqxx::work& tx) : tx_(tx) {}

  // Loads the executions (and their tasks) the records refer to that are
  // not started in the batch itself.
  void Load(const absl::flat_hash_set<std::string>& ids) {
    if (ids.empty()) return;
    pb::ListValue list;
    for (const std::string& id : ids) list.add_values()->set_string_value(id);
    std::string json;
    pb::Value value;
    *value.mutable_list_value() = list;
    (void)pb::util::MessageToJsonString(value, &json);
    const pqxx::result executions = tx_.exec_params(
        "SELECT id, workflow, workflow_version, tenant, state, reason, priority, parent, "
        "request_id, extract(epoch FROM create_time)::float8, "
        "extract(epoch FROM start_time)::float8, extract(epoch FROM end_time)::float8, "
        "context::text FROM executions WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
        json);
    for (const pqxx::row& row : executions) {
      ExecutionRow& exec = executions_[row[0].as<std::string>()];
      exec.id = row[0].as<std::string>();
      exec.workflow = row[1].as<std::string>();
      exec.workflow_version = row[2].as<int64_t>();
      exec.tenant = row[3].as<std::string>();
      exec.state = row[4].as<std::string>();
      exec.reason = row[5].as<std::string>();
      exec.priority = row[6].as<int>();
      exec.parent = row[7].as<std::string>();
      exec.request_id = row[8].as<std::string>();
      exec.create_time = absl::FromUnixMicros(static_cast<int64_t>(row[9].as<double>() * 1e6));
      if (!row[10].is_null()) {
        exec.start_time = absl::FromUnixMicros(static_cast<int64_t>(row[10].as<double>() * 1e6));
      }
      if (!row[11].is_null()) {
        exec.end_time = absl::FromUnixMicros(static_cast<int64_t>(row[11].as<double>() * 1e6));
      }
      exec.context = row[12].as<std::string>();
    }
    const pqxx::result tasks = tx_.exec_params(
        "SELECT execution_id, task_id, queue, priority, state, attempts, retries_used, "
        "max_retries, identity, extract(epoch FROM ready_time)::float8 FROM tasks "
        "WHERE execution_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
        json);
    for (const pqxx::row& row : tasks) {
      ExecutionRow& exec = executions_[row[0].as<std::string>()];
      TaskRow task;
      task.id = row[1].as<std::string>();
      task.queue = row[2].as<std::string>();
      task.priority = row[3].as<int>();
      task.state = row[4].as<std::string>();
      task.attempts = row[5].as<int64_t>();
      task.retries_used = row[6].as<int>();
      task.max_retries = row[7].as<int>();
      task.identity = row[8].as<std::string>();
      if (!row[9].is_null()) {
        task.ready_time = absl::FromUnixMicros(static_cast<int64_t>(row[9].as<double>() * 1e6));
      }
      exec.task_index[task.id] = exec.tasks.size();
      exec.tasks.push_back(std::move(task));
    }
    const pqxx::result dependencies = tx_.exec_params(
        "SELECT execution_id, task_id, depends_on FROM dependencies "
        "WHERE execution_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
        json);
    for (const pqxx::row& row : dependencies) {
      ExecutionRow& exec = executions_[row[0].as<std::string>()];
      TaskRow* task = exec.Task(row[1].as<std::string>());
      TaskRow* upstream = exec.Task(row[2].as<std::string>());
      if (task == nullptr || upstream == nullptr) continue;
      upstream->dependants.push_back(exec.task_index[task->id]);
      if (upstream->state != "SUCCEEDED") task->unmet++;
    }
    // Rows of executions that are not in the table (a stream projected
    // from its middle) are not invented.
    for (auto it = executions_.begin(); it != executions_.end();) {
      auto next = std::next(it);
      if (it->second.id.empty()) executions_.erase(it);
      it = next;
    }
  }

  void Apply(const v1::StateRecord& record) {
    const absl::Time at =
        record.unix_nanos() != 0 ? absl::FromUnixNanos(record.unix_nanos()) : absl::Now();
    switch (record.kind_case()) {
      case v1::StateRecord::kWorkflowStored:
        AddDefinition(record.workflow_stored().definition());
        return;
      case v1::StateRecord::kWorkflowDeleted:
        deleted_.push_back(
            Row()
                .Text("workflow", std::string(absl::StripPrefix(record.workflow_deleted().name(),
                                                                "workflows/")))
                .Time("at", at));
        return;
      case v1::StateRecord::kExecutionStarted:
        StartExecution(record.execution_started(), ExecutionStateName(v1::EXECUTION_PENDING));
        break;
      case v1::StateRecord::kTaskLeased: {
        const v1::TaskLeased& leased = record.task_leased();
        Run(leased.execution_id(), leased.task_id(), leased.attempt())
            .Text("state", "LEASED")
            .Text("agent_id", leased.agent_id())
            .Time("leased_at", at);
        if (ExecutionRow* exec = Find(leased.execution_id())) {
          if (TaskRow* task = exec->Task(leased.task_id())) {
            SetTask(*task, "LEASED");
            task->attempts = std::max(task->attempts, leased.attempt());
          }
          if (exec->state == "PENDING") {
            exec->state = "RUNNING";
            exec->start_time = at;
            exec->dirty = true;
          }
        }
        break;
      }
      case v1::StateRecord::kAttemptStarted: {
        const v1::AttemptStarted& started = record.attempt_started();
        Run(started.execution_id(), started.task_id(), started.attempt())
            .Text("state", "RUNNING")
            .Time("started_at", at);
        if (TaskRow* task = FindTask(started.execution_id(), started.task_id())) {
          if (task->state == "LEASED") SetTask(*task, "RUNNING");
        }
        break;
      }
      case v1::StateRecord::kTaskResult:
        RecordResult(record.task_result(), at);
        break;
      case v1::StateRecord::kAttemptLost: {
        const v1::AttemptLost& lost = record.attempt_lost();
        Run(lost.execution_id(), lost.task_id(), lost.attempt())
            .Text("state", "LOST")
            .Time("ended_at", at)
            .Text("error", lost.error());
        ExecutionRow* exec = Find(lost.execution_id());
        TaskRow* task = FindTask(lost.execution_id(), lost.task_id());
        if (exec != nullptr && task != nullptr && !exec->final() &&
            (task->state == "LEASED" || task->state == "RUNNING")) {
          SetTask(*task, "READY");
          task->ready_time = at;
        }
        break;
      }
      case v1::StateRecord::kTaskRetryDue:
        if (TaskRow* task = FindTask(record.task_retry_due().execution_id(),
                                     record.task_retry_due().task_id())) {
          if (task->state == "PENDING") {
            SetTask(*task, "READY");
            task->ready_time = at;
          }
        }
        break;
      case v1::StateRecord::kAttemptNotStarted: {
        const v1::AttemptNotStarted& failed = record.attempt_not_started();
        Run(failed.execution_id(), failed.task_id(), failed.attempt())
            .Text("state", "FAILED")
            .Text("agent_id", failed.agent_id())
            .Time("ended_at", at)
            .Text("error", failed.error());
        if (ExecutionRow* exec = Find(failed.execution_id())) {
          if (TaskRow* task = exec->Task(failed.task_id())) FailTask(*exec, *task, "FAILED");
          Settle(*exec, at);
        }
        break;
      }
      case v1::StateRecord::kExecutionControl:
        Control(record.execution_control(), at);
        break;
      case v1::StateRecord::kPriorityChanged: {
        const v1::PriorityChanged& changed = record.priority_changed();
        ExecutionRow* exec = Find(changed.execution_id());
        if (exec == nullptr) break;
        if (changed.task_id().empty()) {
          exec->priority = changed.priority();
          exec->dirty = true;
        }
        for (TaskRow& task : exec->tasks) {
          if ((changed.task_id().empty() || task.id == changed.task_id()) &&
              (task.state == "PENDING" || task.state == "READY")) {
            task.priority = changed.priority();
            task.dirty = true;
          }
        }
        break;
      }
      case v1::StateRecord::kExecutionsExpired:
        // Retention forgot them: their rows go too (deleted last in Write,
        // after anything this batch wrote for them).
        for (const std::string& id : record.executions_expired().execution_ids()) {
          expired_.push_back(id);
          executions_.erase(id);
        }
        return;
      case v1::StateRecord::kTaskLogsExpired:
        return;  // logs are not in the relational tables
      case v1::StateRecord::KIND_NOT_SET:
        return;
    }
    AddEvent(record, at);
  }

  // Makes up for records a snapshot dropped: its whole state, as rows.
  void ApplySnapshot(const v1::EngineSnapshot& snapshot) {
    for (const v1::WorkflowDefinition& definition : snapshot.workflows()) AddDefinition(definition);
    for (const v1::ExecutionSnapshot& saved : snapshot.executions()) {
      ExecutionRow& exec = StartExecution(saved.started(), ExecutionStateName(saved.state()));
      exec.reason = saved.reason();
      exec.start_time = ToTime(saved.start_time());
      exec.end_time = ToTime(saved.end_time());
      for (int i = 0; i < saved.tasks_size() && i < static_cast<int>(exec.tasks.size()); ++i) {
        const v1::TaskSlotSnapshot& slot = saved.tasks(i);
        TaskRow& task = exec.tasks[i];
        task.state = TaskStateName(slot.state());
        task.attempts = slot.attempt();
        task.retries_used = slot.retries_used();
        task.identity = slot.identity();
        if (slot.priority() != 0) task.priority = slot.priority();
        task.ready_time = ToTime(slot.ready_time());
        for (const v1::TaskAttempt& attempt : slot.attempts()) {
          Row& run = Run(exec.id, task.id, attempt.attempt());
          run.Text("agent_id", std::string(absl::StripPrefix(attempt.agent(), "agents/")))
              .Time("leased_at", ToTime(attempt.lease_time()))
              .Time("started_at", ToTime(attempt.start_time()))
              .Time("ended_at", ToTime(attempt.end_time()))
              .Text("identity", task.identity);
          if (attempt.outcome() != v1::ATTEMPT_OUTCOME_UNSPECIFIED) {
            run.Text("state", OutcomeName(attempt.outcome()))
                .Int("exit_code", attempt.exit_code())
                .Int("signal", attempt.signal())
                .Double("wall_seconds", Seconds(attempt.wall_time()))
                .Double("cpu_seconds", Seconds(attempt.cpu_time()))
                .Int("peak_memory_bytes", attempt.peak_rss_bytes())
                .Text("error", attempt.error());
          } else {
            run.Text("state", ToTime(attempt.start_time()) ? "RUNNING" : "LEASED");
          }
        }
      }
    }
  }

  // Writes the batch; the caller advances the cursor and commits.
  void Write() {
    if (!definitions_.empty()) {
      tx_.exec_params0(
          "INSERT INTO workflow_definitions (workflow, version, tenant, definition, create_time) "
          "SELECT workflow, version, tenant, definition::jsonb, create_time FROM "
          "jsonb_to_recordset($1::jsonb) AS r(workflow text, version bigint, tenant text, "
          "definition text, create_time timestamptz) "
          "ON CONFLICT (workflow, version) DO UPDATE SET definition = EXCLUDED.definition, "
          "tenant = EXCLUDED.tenant, create_time = EXCLUDED.create_time",
          RowsJson(definitions_));
    }
    if (!deleted_.empty()) {
      tx_.exec_params0(
          "UPDATE workflow_definitions d SET deleted_at = r.at FROM "
          "jsonb_to_recordset($1::jsonb) AS r(workflow text, at timestamptz) "
          "WHERE d.workflow = r.workflow AND d.deleted_at IS NULL",
          RowsJson(deleted_));
    }
    std::vector<Row> executions;
    std::vector<Row> tasks;
    std::vector<Row> dependencies;
    for (auto& [id, exec] : executions_) {
      if (exec.dirty) {
        executions.push_back(Row()
                                 .Text("id", exec.id)
                                 .Text("workflow", exec.workflow)
                                 .Int("workflow_version", exec.workflow_version)
                                 .Text("tenant", exec.tenant)
                                 .Text("state", exec.state)
                                 .Text("reason", exec.reason)
                                 .Int("priority", exec.priority)
                                 .Text("parent", exec.parent)
                                 .Text("request_id", exec.request_id)
                                 .Int("task_count", static_cast<int64_t>(exec.tasks.size()))
                                 .Time("create_time", exec.create_time)
                                 .Time("start_time", exec.start_time)
                                 .Time("end_time", exec.end_time)
                                 .Document("context", exec.context));
      }
      for (const TaskRow& task : exec.tasks) {
        if (!task.dirty) continue;
        tasks.push_back(Row()
                            .Text("execution_id", exec.id)
                            .Text("task_id", task.id)
                            .Text("queue", task.queue)
                            .Int("priority", task.priority)
                            .Text("state", task.state)
                            .Int("attempts", task.attempts)
                            .Int("retries_used", task.retries_used)
                            .Int("max_retries", task.max_retries)
                            .Text("identity", task.identity)
                            .Time("ready_time", task.ready_time));
      }
      for (const auto& [task, upstream] : exec.new_dependencies) {
        dependencies.push_back(
            Row().Text("execution_id", exec.id).Text("task_id", task).Text("depends_on", upstream));
      }
    }
    if (!executions.empty()) {
      tx_.exec_params0(
          "INSERT INTO executions (id, workflow, workflow_version, tenant, state, reason, "
          "priority, parent, request_id, task_count, create_time, start_time, end_time, context) "
          "SELECT id, workflow, workflow_version, tenant, state, reason, priority, parent, "
          "request_id, task_count, create_time, start_time, end_time, context::jsonb FROM "
          "jsonb_to_recordset($1::jsonb) AS r(id text, workflow text, workflow_version bigint, "
          "tenant text, state text, reason text, priority int, parent text, request_id text, "
          "task_count int, create_time timestamptz, start_time timestamptz, end_time timestamptz, "
          "context text) "
          "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, "
          "priority = EXCLUDED.priority, start_time = EXCLUDED.start_time, "
          "end_time = EXCLUDED.end_time",
          RowsJson(executions));
    }
    if (!tasks.empty()) {
      tx_.exec_params0(
          "INSERT INTO tasks (execution_id, task_id, queue, priority, state, attempts, "
          "retries_used, max_retries, identity, ready_time) "
          "SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(execution_id text, task_id text, "
          "queue text, priority int, state text, attempts bigint, retries_used int, "
          "max_retries int, identity text, ready_time timestamptz) "
          "ON CONFLICT (execution_id, task_id) DO UPDATE SET priority = EXCLUDED.priority, "
          "state = EXCLUDED.state, attempts = EXCLUDED.attempts, "
          "retries_used = EXCLUDED.retries_used, identity = EXCLUDED.identity, "
          "ready_time = EXCLUDED.ready_time",
          RowsJson(tasks));
    }
    if (!dependencies.empty()) {
      tx_.exec_params0(
          "INSERT INTO dependencies (execution_id, task_id, depends_on) "
          "SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(execution_id text, task_id text, "
          "depends_on text) ON CONFLICT DO NOTHING",
          RowsJson(dependencies));
    }
    if (!runs_.empty()) {
      std::vector<Row> runs;
      runs.reserve(runs_.size());
      for (auto& [key, row] : runs_) runs.push_back(std::move(row));
      // A run's columns arrive over several batches (leased, started,
      // ended): what a later batch does not say is kept.
      tx_.exec_params0(
          "INSERT INTO task_runs (execution_id, task_id, attempt, agent_id, state, identity, "
          "leased_at, started_at, ended_at, exit_code, signal, wall_seconds, cpu_seconds, "
          "peak_memory_bytes, error) "
          "SELECT execution_id, task_id, attempt, coalesce(agent_id, ''), "
          "coalesce(state, 'LEASED'), coalesce(identity, ''), leased_at, "
          "CASE WHEN started_at IS NULL THEN NULL ELSE greatest(started_at, leased_at) END, "
          "ended_at, "
          "exit_code, signal, wall_seconds, cpu_seconds, peak_memory_bytes, coalesce(error, '') "
          "FROM jsonb_to_recordset($1::jsonb) AS r(execution_id text, task_id text, "
          "attempt bigint, agent_id text, state text, identity text, leased_at timestamptz, "
          "started_at timestamptz, ended_at timestamptz, exit_code int, signal int, "
          "wall_seconds float8, cpu_seconds float8, peak_memory_bytes bigint, error text) "
          "ON CONFLICT (execution_id, task_id, attempt) DO UPDATE SET "
          "agent_id = CASE WHEN EXCLUDED.agent_id = '' THEN task_runs.agent_id "
          "ELSE EXCLUDED.agent_id END, state = EXCLUDED.state, "
          "identity = CASE WHEN EXCLUDED.identity = '' THEN task_runs.identity "
          "ELSE EXCLUDED.identity END, "
          "leased_at = coalesce(EXCLUDED.leased_at, task_runs.leased_at), "
          "started_at = CASE WHEN EXCLUDED.started_at IS NULL THEN task_runs.started_at "
          "ELSE greatest(EXCLUDED.started_at, task_runs.leased_at) END, "
          "ended_at = coalesce(EXCLUDED.ended_at, task_runs.ended_at), "
          "exit_code = coalesce(EXCLUDED.exit_code, task_runs.exit_code), "
          "signal = coalesce(EXCLUDED.signal, task_runs.signal), "
          "wall_seconds = coalesce(EXCLUDED.wall_seconds, task_runs.wall_seconds), "
          "cpu_seconds = coalesce(EXCLUDED.cpu_seconds, task_runs.cpu_seconds), "
          "peak_memory_bytes = coalesce(EXCLUDED.peak_memory_bytes, task_runs.peak_memory_bytes), "
          "error = CASE WHEN EXCLUDED.error = '' THEN task_runs.error ELSE EXCLUDED.error END",
          RowsJson(runs));
    }
    if (!events_.empty()) {
      // Sequences continue each execution's: its ordinal in the batch on top
      // of the highest stored.
      tx_.exec_params0(
          "INSERT INTO events (execution_id, sequence, kind, time, event) "
          "SELECT r.execution_id, coalesce(m.last, 0) + r.ordinal, r.kind, r.time, r.event::jsonb "
          "FROM jsonb_to_recordset($1::jsonb) AS r(execution_id text, ordinal bigint, kind text, "
          "time timestamptz, event text) "
          "LEFT JOIN LATERAL (SELECT max(sequence) AS last FROM events e "
          "WHERE e.execution_id = r.execution_id) m ON true",
          RowsJson(events_));
    }
    if (!pauses_.empty()) {
      tx_.exec_params0(
          "INSERT INTO pause_checkpoints (execution_id, paused_at, reason, tasks) "
          "SELECT execution_id, paused_at, reason, tasks::jsonb FROM "
          "jsonb_to_recordset($1::jsonb) AS r(execution_id text, paused_at timestamptz, "
          "reason text, tasks text) ON CONFLICT DO NOTHING",
          RowsJson(pauses_));
    }
    if (!resumes_.empty()) {
      tx_.exec_params0(
          "UPDATE pause_checkpoints p SET resumed_at = r.at FROM "
          "jsonb_to_recordset($1::jsonb) AS r(execution_id text, at timestamptz) "
          "WHERE p.execution_id = r.execution_id AND p.resumed_at IS NULL AND p.paused_at <= r.at",
          RowsJson(resumes_));
    }
    if (!observations_.empty()) {
      tx_.exec_params0(
          "INSERT INTO resource_observations (execution_id, task_id, attempt, identity, "
          "observed_at, cpu_seconds, peak_memory_bytes, wall_seconds, source) "
          "SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(execution_id text, task_id text, "
          "attempt bigint, identity text, observed_at timestamptz, cpu_seconds float8, "
          "peak_memory_bytes bigint, wall_seconds float8, source text)",
          RowsJson(observations_));
    }
    if (!expired_.empty()) {
      pb::Value ids;
      for (const std::string& id : expired_) {
        ids.mutable_list_value()->add_values()->set_string_value(id);
      }
      std::string json;
      (void)pb::util::MessageToJsonString(ids, &json);
      for (const char* table : {"executions", "tasks", "dependencies", "task_runs", "events",
                                "pause_checkpoints", "resource_observations"}) {
        const char* column = std::string_view(table) == "executions" ? "id" : "execution_id";
        tx_.exec_params0(absl::StrCat("DELETE FROM ", table, " WHERE ", column,
                                      " IN (SELECT jsonb_array_elements_text($1::jsonb))"),
                         json);
      }
    }
  }

 private:
  ExecutionRow* Find(const std::string& id) {
    auto it = executions_.find(id);
    return it == executions_.end() ? nullptr : &it->second;
  }
  TaskRow* FindTask(const std::string& execution, const std::string& task) {
    ExecutionRow* exec = Find(execution);
    return exec == nullptr ? nullptr : exec->Task(task);
  }
  static void SetTask(TaskRow& task, const std::string& state) {
    task.state = state;
    task.dirty = true;
  }

  void AddDefinition(const v1::WorkflowDefinition& definition) {
    definitions_.push_back(
        Row()
            .Text("workflow", std::string(absl::StripPrefix(definition.name(), "workflows/")))
            .Int("version", definition.version())
            .Text("tenant", definition.tenant())
            .Document("definition", Json(definition))
            .Time("create_time", ToTime(definition.create_time())));
  }

  ExecutionRow& StartExecution(const v1::ExecutionStarted& started, std::string state) {
    ExecutionRow& exec = executions_[started.execution_id()];
    exec = ExecutionRow();
    const v1::WorkflowDefinition& definition = started.definition();
    exec.id = started.execution_id();
    exec.workflow = std::string(absl::StripPrefix(definition.name(), "workflows/"));
    exec.workflow_version = definition.version();
    exec.tenant = definition.tenant();
    exec.state = std::move(state);
    exec.priority = started.priority() != 0 ? started.priority() : 50;
    exec.parent = std::string(absl::StripPrefix(started.parent(), "executions/"));
    exec.request_id = started.request_id();
    exec.create_time = ToTime(started.create_time()).value_or(absl::Now());
    pb::Struct context;
    const absl::flat_hash_set<std::string> secret(started.secret_keys().begin(),
                                                  started.secret_keys().end());
    // Sorted, so the document does not depend on the map's order.
    const std::map<std::string, std::string> sorted(started.context().begin(),
                                                    started.context().end());
    for (const auto& [key, value] : sorted) {
      (*context.mutable_fields())[key].set_string_value(secret.contains(key) ? "***" : value);
    }
    exec.context = Json(context);
    exec.dirty = true;
    for (const v1::TaskSpec& spec : definition.tasks()) {
      TaskRow task;
      task.id = spec.id();
      task.queue = !spec.queue().empty()                 ? spec.queue()
                   : !definition.default_queue().empty() ? definition.default_queue()
                                                         : "default";
      task.priority = spec.priority() != 0 ? spec.priority() : exec.priority;
      task.max_retries = spec.retry().max_retries();
      task.dirty = true;
      exec.task_index[task.id] = exec.tasks.size();
      exec.tasks.push_back(std::move(task));
    }
    for (size_t i = 0; i < exec.tasks.size(); ++i) {
      for (const std::string& upstream : definition.tasks(static_cast<int>(i)).depends_on()) {
        exec.new_dependencies.emplace_back(exec.tasks[i].id, upstream);
        auto it = exec.task_index.find(upstream);
        if (it == exec.task_index.end()) continue;  // not in this graph: nothing to wait for
        exec.tasks[it->second].dependants.push_back(i);
        exec.tasks[i].unmet++;
      }
    }
    for (TaskRow& task : exec.tasks) {
      task.state = task.unmet == 0 ? "READY" : "PENDING";
      if (task.unmet == 0) task.ready_time = exec.create_time;
    }
    return exec;
  }

  Row& Run(const std::string& execution, const std::string& task, int64_t attempt) {
    Row& row = runs_[std::make_tuple(execution, task, attempt)];
    row.Text("execution_id", execution).Text("task_id", task).Int("attempt", attempt);
    return row;
  }

  void RecordResult(const v1::TaskResultRecorded& recorded, absl::Time at) {
    const v1::TaskResult& result = recorded.result();
    const std::string execution =
        std::string(absl::StripPrefix(result.ref().execution(), "executions/"));
    const std::string& error =
        !recorded.output_error().empty() ? recorded.output_error() : result.error();
    const bool succeeded =
        result.outcome() == v1::ATTEMPT_SUCCEEDED && recorded.output_error().empty();
    ExecutionRow* exec = Find(execution);
    TaskRow* task = exec == nullptr ? nullptr : exec->Task(result.ref().task_id());
    const std::string identity = task == nullptr ? "" : task->identity;
    Row& run = Run(execution, result.ref().task_id(), result.ref().attempt());
    if (task != nullptr && task->state == "LEASED") {
      // No start was recorded (a builtin, or a process that ended within
      // the agent's start_report_delay): it began its wall time before the
      // result, and not before its lease (the upsert takes the later), as
      // the engine records it.
      run.Time("started_at", at - absl::Seconds(Seconds(result.wall_time())));
    }
    run.Text("state",
             succeeded ? "SUCCEEDED"
                       : OutcomeName(result.outcome() == v1::ATTEMPT_SUCCEEDED ? v1::ATTEMPT_FAILED
                                                                               : result.outcome()))
        .Text("agent_id", recorded.agent_id())
        .Time("ended_at", at)
        .Int("exit_code", result.exit_code())
        .Int("signal", result.signal())
        .Double("wall_seconds", Seconds(result.wall_time()))
        .Double("cpu_seconds", Seconds(result.cpu_time()))
        .Int("peak_memory_bytes", result.peak_rss_bytes())
        .Text("error", error);
    observations_.push_back(Row()
                                .Text("execution_id", execution)
                                .Text("task_id", result.ref().task_id())
                                .Int("attempt", result.ref().attempt())
                                .Text("identity", identity)
                                .Time("observed_at", at)
                                .Double("cpu_seconds", Seconds(result.cpu_time()))
                                .Int("peak_memory_bytes", result.peak_rss_bytes())
                                .Double("wall_seconds", Seconds(result.wall_time()))
                                .Text("source", result.peak_memory_source()));
    if (task == nullptr || exec->final()) return;
    if (succeeded) {
      // An evaluator's decision skips before its dependants become ready
      // (EvaluatorDecisions::Apply).
      for (const std::string& id : recorded.decision().skip()) {
        TaskRow* skipped = exec->Task(id);
        if (skipped == nullptr || skipped->state != "PENDING") continue;
        SetTask(*skipped, "SKIPPED");
        SkipDependants(*exec, *skipped);
      }
      SetTask(*task, "SUCCEEDED");
      for (size_t dependant : task->dependants) {
        TaskRow& next = exec->tasks[dependant];
        if (next.unmet > 0) next.unmet--;
        if (next.unmet == 0 && next.state == "PENDING") {
          SetTask(next, "READY");
          next.ready_time = at;
        }
      }
    } else if (result.outcome() != v1::ATTEMPT_CANCELLED && !recorded.output_error_final() &&
               task->retries_used < task->max_retries) {
      // Waits out its retry backoff (TaskRetryDue makes it ready).
      task->retries_used++;
      SetTask(*task, "PENDING");
    } else {
      FailTask(*exec, *task,
               result.outcome() == v1::ATTEMPT_TIMED_OUT   ? "TIMED_OUT"
               : result.outcome() == v1::ATTEMPT_CANCELLED ? "CANCELLED"
                                                           : "FAILED");
    }
    Settle(*exec, at);
  }

  // A task that failed for good; the tasks waiting for it are skipped
  // (TaskStateMachine::SkipDependants).
  void FailTask(ExecutionRow& exec, TaskRow& task, const std::string& state) {
    SetTask(task, state);
    SkipDependants(exec, task);
  }

  // TaskStateMachine::SkipDependants: every task still waiting downstream.
  static void SkipDependants(ExecutionRow& exec, const TaskRow& task) {
    std::vector<size_t> stack(task.dependants);
    while (!stack.empty()) {
      TaskRow& next = exec.tasks[stack.back()];
      stack.pop_back();
      if (next.state != "PENDING") continue;
      SetTask(next, "SKIPPED");
      stack.insert(stack.end(), next.dependants.begin(), next.dependants.end());
    }
  }

  // TaskStateMachine::UpdateExecutionState: over when nothing waits or runs.
  void Settle(ExecutionRow& exec, absl::Time at) {
    if (exec.final()) return;
    int failed = 0;
    for (const TaskRow& task : exec.tasks) {
      if (Waiting(task.state)) return;
      if (task.state == "FAILED" || task.state == "TIMED_OUT") failed++;
    }
    exec.end_time = at;
    exec.state = failed > 0 ? "FAILED" : "SUCCEEDED";
    if (failed > 0) exec.reason = absl::StrCat(failed, " task(s) failed");
    exec.dirty = true;
  }

  void Control(const v1::ExecutionControl& control, absl::Time at) {
    ExecutionRow* exec = Find(control.execution_id());
    if (exec == nullptr || exec->final()) return;
    switch (control.action()) {
      case v1::ExecutionControl::PAUSE: {
        exec->state = "PAUSED";
        pb::Struct tasks;
        for (const TaskRow& task : exec->tasks) {
          (*tasks.mutable_fields())[task.id].set_string_value(task.state);
        }
        pauses_.push_back(Row()
                              .Text("execution_id", exec->id)
                              .Time("paused_at", at)
                              .Text("reason", control.reason())
                              .Document("tasks", Json(tasks)));
        break;
      }
      case v1::ExecutionControl::RESUME:
        exec->state = exec->start_time ? "RUNNING" : "PENDING";
        resumes_.push_back(Row().Text("execution_id", exec->id).Time("at", at));
        break;
      case v1::ExecutionControl::CANCEL:
        exec->state = "CANCELLED";
        exec->reason = control.reason();
        exec->end_time = at;
        for (TaskRow& task : exec->tasks) {
          if (Waiting(task.state)) SetTask(task, "CANCELLED");
        }
        break;
      default:
        return;
    }
    exec->dirty = true;
  }

  void AddEvent(const v1::StateRecord& record, absl::Time at) {
    const std::string execution(ExecutionOfRecord(record));
    if (execution.empty()) return;
    std::string json;
    if (record.has_task_result()) {
      // The captured output is the logs' (GetTaskLogs), not the event's.
      v1::StateRecord slim = record;
      slim.mutable_task_result()->mutable_result()->clear_stdout_tail();
      slim.mutable_task_result()->mutable_result()->clear_stderr_tail();
      json = Json(slim);
    } else if (record.has_execution_started()) {
      // The definition is in workflow_definitions; the context in executions
      // (secrets masked).
      v1::StateRecord slim = record;
      slim.mutable_execution_started()->clear_definition();
      slim.mutable_execution_started()->clear_context();
      json = Json(slim);
    } else {
      json = Json(record);
    }
    const pb::FieldDescriptor* field =
        v1::StateRecord::descriptor()->FindFieldByNumber(record.kind_case());
    events_.push_back(Row()
                          .Text("execution_id", execution)
                          .Int("ordinal", ++ordinals_[execution])
                          .Text("kind", field == nullptr ? "unknown" : field->name())
                          .Time("time", at)
                          .Document("event", std::move(json)));
  }

  pqxx::work& tx_;
  std::map<std::string, ExecutionRow> executions_;
  std::map<std::tuple<std::string, std::string, int64_t>, Row> runs_;
  absl::flat_hash_map<std::string, int64_t> ordinals_;
  std::vector<Row> definitions_;
  std::vector<Row> deleted_;
  std::vector<Row> events_;
  std::vector<Row> pauses_;
  std::vector<Row> resumes_;
  std::vector<Row> observations_;
  std::vector<std::string> expired_;  // execution ids retention forgot
};

// The executions `record` changes (its events aside).
void ReferencedExecution(const v1::StateRecord& record, absl::flat_hash_set<std::string>* ids,
                         const absl::flat_hash_set<std::string>& started) {
  if (record.has_execution_started()) return;
  std::string id(ExecutionOfRecord(record));
  if (id.empty()) return;
  if (!started.contains(id)) ids->insert(std::move(id));
}

}  // namespace

PostgresProjector::PostgresProjector(PostgresProjectorOptions options)
    : options_(std::move(options)), where_(DescribeDsn(options_.store.dsn)) {
  absl::StatusOr<std::string> conninfo = postgres::ConnectionString(options_.store);
  if (conninfo.ok()) {
    conninfo_ = *std::move(conninfo);
  } else {
    conninfo_error_ = conninfo.status();
  }
  if (options_.metrics != nullptr) {
    lag_gauge_ = &prometheus::BuildGauge()
                      .Name("gyre_projection_lag_records")
                      .Help(
                          "Records of the PostgreSQL store not yet projected into the "
                          "relational tables.")
                      .Register(*options_.metrics)
                      .Add({});
    position_gauge_ = &prometheus::BuildGauge()
                           .Name("gyre_projection_position")
                           .Help("The last record position projected into the relational tables.")
                           .Register(*options_.metrics)
                           .Add({});
  }
}

PostgresProjector::~PostgresProjector() { Stop(); }

void PostgresProjector::Start() {
  absl::MutexLock lock(&mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void PostgresProjector::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

ProjectionProgress PostgresProjector::progress() const {
  absl::MutexLock lock(&mutex_);
  return progress_;
}

void PostgresProjector::Loop() {
  absl::Duration backoff = absl::Milliseconds(100);
  std::string last_logged;
  for (;;) {
    const absl::StatusOr<int> projected = ProjectBatch();
    absl::Duration wait = absl::ZeroDuration();
    if (!projected.ok()) {
      // Logged once per distinct error: a database that is down for a
      // while would otherwise fill the log.
      if (projected.status().message() != last_logged) {
        last_logged = std::string(projected.status().message());
        logging::Warn("projection behind: retrying",
                      {{"database", where_}, {"error", last_logged}});
      }
      wait = backoff;
      backoff = std::min(backoff * 2, absl::Seconds(5));
    } else {
      if (!last_logged.empty()) {
        logging::Info("projection resumed", {{"database", where_}});
        last_logged.clear();
      }
      backoff = absl::Milliseconds(100);
      if (*projected == 0) wait = options_.poll_interval;
    }
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    if (wait > absl::ZeroDuration()) wake_.WaitWithTimeout(&mutex_, wait);
    if (stopping_) return;
  }
}

absl::StatusOr<int> PostgresProjector::ProjectBatch() {
  if (!conninfo_error_.ok()) return conninfo_error_;
  absl::StatusOr<int> projected = options_.held_shards ? ProjectShards() : ProjectSingleWriter();
  absl::MutexLock lock(&mutex_);
  progress_.last_error = projected.status();
  return projected;
}

template <typename Body>
absl::Status PostgresProjector::Guard(const std::string& what, Body&& body) {
  absl::Status status =
      postgres::GuardAs("postgres projection", what, where_, postgres::Secrets(options_.store),
                        std::forward<Body>(body));
  if (status.code() == absl::StatusCode::kUnavailable) connection_.reset();
  return status;
}

absl::StatusOr<int> PostgresProjector::ProjectSingleWriter() {
  const Stream stream{kCursorName, "state_records", "snapshots", "true", /*skip_locked=*/false};
  StreamStep step;
  absl::Status status = Guard("project records", [&]() -> absl::Status {
    absl::StatusOr<StreamStep> done = ProjectStreamOnce(stream);
    if (!done.ok()) return done.status();
    step = *done;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  Report(step.cursor, step.end, step.projected, /*sharded=*/false);
  return step.projected;
}

absl::StatusOr<int> PostgresProjector::ProjectShards() {
  std::vector<int> shards = {kDefinitionsShard};
  for (uint32_t shard : options_.held_shards()) shards.push_back(static_cast<int>(shard));
  // Where each stream is, in one statement: a projector holding many idle
  // shards then costs one query per poll, not a transaction per shard.
  struct Surveyed {
    int shard;
    int64_t cursor;
    int64_t end;
  };
  std::vector<Surveyed> survey;
  absl::Status status = Guard("survey the shards", [&]() -> absl::Status {
    if (connection_ == nullptr) connection_ = std::make_unique<pqxx::connection>(conninfo_);
    pqxx::read_transaction tx(*connection_);
    const pqxx::result rows = tx.exec_params(
        "SELECT s.shard, coalesce((SELECT position FROM projection_cursor "
        "WHERE name = 'shard:' || s.shard), 0), "
        "greatest((SELECT max(position) FROM shard_records r WHERE r.shard = s.shard), "
        "(SELECT max(position) FROM shard_snapshots p WHERE p.shard = s.shard), 0) "
        "FROM unnest($1::int[]) AS s(shard)",
        postgres::IntArrayLiteral(shards));
    for (const pqxx::row& row : rows) {
      survey.push_back({row[0].as<int>(), row[1].as<int64_t>(), row[2].as<int64_t>()});
    }
    tx.commit();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  int projected = 0;
  uint64_t position = 0;
  uint64_t stream_position = 0;
  absl::Status first_error;
  for (Surveyed& stream : survey) {
    // A stream that fails (an undecodable record) does not hold the others
    // up; a lost connection ends the round.
    if (stream.end > stream.cursor && first_error.code() != absl::StatusCode::kUnavailable) {
      const Stream sharded{absl::StrCat("shard:", stream.shard), "shard_records", "shard_snapshots",
                           absl::StrCat("shard = ", stream.shard),
                           /*skip_locked=*/true};
      status = Guard(absl::StrCat("project shard ", stream.shard), [&]() -> absl::Status {
        absl::StatusOr<StreamStep> done = ProjectStreamOnce(sharded);
        if (!done.ok()) return done.status();
        if (done->skipped) return absl::OkStatus();  // the survey's figures stand
        projected += done->projected;
        stream.cursor = done->cursor;
        stream.end = done->end;
        return absl::OkStatus();
      });
      if (!status.ok() && first_error.ok()) first_error = status;
    }
    position += static_cast<uint64_t>(stream.cursor);
    stream_position += static_cast<uint64_t>(std::max(stream.end, stream.cursor));
  }
  Report(position, stream_position, projected, /*sharded=*/true);
  if (!first_error.ok()) return first_error;
  return projected;
}

void PostgresProjector::Report(uint64_t position, uint64_t stream_position, int projected,
                               bool sharded) {
  stream_position = std::max(stream_position, position);
  {
    absl::MutexLock lock(&mutex_);
    progress_.position = position;
    progress_.stream_position = stream_position;
    progress_.records_projected += static_cast<uint64_t>(projected);
  }
  if (lag_gauge_ != nullptr) lag_gauge_->Set(static_cast<double>(stream_position - position));
  // Sharded, the positions of different shards do not add up to one: the
  // gauge stays 0 (docs/metrics.md).
  if (position_gauge_ != nullptr && !sharded) position_gauge_->Set(static_cast<double>(position));
}

absl::StatusOr<PostgresProjector::StreamStep> PostgresProjector::ProjectStreamOnce(
    const Stream& stream) {
  if (connection_ == nullptr) connection_ = std::make_unique<pqxx::connection>(conninfo_);
  constexpr char kMakeCursor[] =
      "INSERT INTO projection_cursor (name, position) VALUES ($1, 0) ON CONFLICT DO NOTHING";
  if (stream.skip_locked && !cursors_made_.contains(stream.cursor)) {
    // Committed on its own: inserting a row another projector's open
    // batch inserted would wait for that whole batch.
    pqxx::work make(*connection_);
    make.exec_params0(kMakeCursor, stream.cursor);
    make.commit();
    cursors_made_.insert(stream.cursor);
  }
  pqxx::work tx(*connection_);
  // The rows are derived from the records and the cursor advances in the
  // same transaction: a commit lost in a crash is projected again, never
  // half. So the projection need not wait for its commits to reach the
  // disk, and does not queue its WAL flushes ahead of the engine's.
  tx.exec0("SET LOCAL synchronous_commit = off");
  const std::string stream_end = absl::StrCat(
      "SELECT greatest((SELECT max(position) FROM ", stream.records, " WHERE ", stream.where,
      "), (SELECT max(position) FROM ", stream.snapshots, " WHERE ", stream.where, "), 0)");
  if (!stream.skip_locked) {
    // Caught up (the common case, every poll_interval): answered without
    // locking the cursor row, which would make this a writing transaction.
    // (Sharded, ProjectShards' survey already asked, read-only.)
    const pqxx::result seen = tx.exec_params(
        absl::StrCat("SELECT position, (", stream_end, ") FROM projection_cursor WHERE name = $1"),
        stream.cursor);
    if (!seen.empty() && seen[0][0].as<int64_t>() >= seen[0][1].as<int64_t>()) {
      tx.commit();
      StreamStep idle;
      idle.cursor = seen[0][0].as<int64_t>();
      idle.end = idle.cursor;
      return idle;
    }
  }
  if (!stream.skip_locked) tx.exec_params0(kMakeCursor, stream.cursor);
  // Locked. Single-writer, a second projector on this database waits here,
  // then starts after what this one projected; sharded, it skips the stream
  // (its owner, or its former owner, is projecting it).
  const pqxx::result locked = tx.exec_params(
      absl::StrCat("SELECT position FROM projection_cursor WHERE name = $1 FOR UPDATE",
                   stream.skip_locked ? " SKIP LOCKED" : ""),
      stream.cursor);
  if (locked.empty()) {
    // Locked by another projector, or deleted (made again next time).
    if (tx.exec_params("SELECT 1 FROM projection_cursor WHERE name = $1", stream.cursor).empty()) {
      cursors_made_.erase(stream.cursor);
    }
    tx.commit();
    StreamStep skipped;
    skipped.skipped = true;
    return skipped;
  }
  const int64_t cursor = locked[0][0].as<int64_t>();
  const int64_t end = tx.exec1(stream_end)[0].as<int64_t>();
  const pqxx::result rows =
      tx.exec_params(absl::StrCat("SELECT position, record FROM ", stream.records, " WHERE ",
                                  stream.where, " AND position > $1 ORDER BY position LIMIT $2"),
                     cursor, options_.max_batch_records);
  // Messages name a shard's stream ("shard:17: record 9 ..."), not the
  // single writer's.
  const std::string prefix = stream.skip_locked ? absl::StrCat(stream.cursor, ": ") : "";
  Batch batch(tx);
  int64_t next = cursor;
  const bool dropped = !rows.empty() ? rows[0][0].as<int64_t>() != cursor + 1 : end > cursor;
  if (dropped) {
    // A snapshot dropped records this projection had not read: it starts
    // again from that snapshot's state.
    const pqxx::result saved = tx.exec_params(
        absl::StrCat("SELECT position, snapshot FROM ", stream.snapshots, " WHERE ", stream.where,
                     " AND position > $1 ORDER BY position DESC LIMIT 1"),
        cursor);
    if (saved.empty()) {
      return absl::DataLossError(absl::StrCat(prefix, "record ", cursor + 1, " is neither in ",
                                              stream.records, " nor covered by a snapshot"));
    }
    const pqxx::binarystring bytes(saved[0][1]);
    v1::EngineSnapshot snapshot;
    if (!snapshot.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(
          absl::StrCat(prefix, "undecodable snapshot at position ", saved[0][0].as<int64_t>()));
    }
    batch.ApplySnapshot(snapshot);
    next = saved[0][0].as<int64_t>();
    logging::Info(
        "projection caught up from a snapshot",
        {{"database", where_}, {"stream", stream.cursor}, {"from", cursor}, {"to", next}});
  } else {
    std::vector<v1::StateRecord> records(rows.size());
    absl::flat_hash_set<std::string> started;
    absl::flat_hash_set<std::string> referenced;
    for (size_t i = 0; i < rows.size(); ++i) {
      const pqxx::binarystring bytes(rows[i][1]);
      if (!records[i].ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(
            absl::StrCat(prefix, "undecodable record ", rows[i][0].as<int64_t>()));
      }
      if (records[i].has_execution_started()) {
        started.insert(records[i].execution_started().execution_id());
      }
    }
    for (const v1::StateRecord& record : records) {
      ReferencedExecution(record, &referenced, started);
    }
    batch.Load(referenced);
    for (const v1::StateRecord& record : records) batch.Apply(record);
    if (!rows.empty()) next = rows[rows.size() - 1][0].as<int64_t>();
  }
  if (next != cursor) {
    batch.Write();
    tx.exec_params0(
        "UPDATE projection_cursor SET position = $2, updated_at = now() WHERE name = $1",
        stream.cursor, next);
  }
  tx.commit();
  StreamStep step;
  step.projected = static_cast<int>(next - cursor);
  step.cursor = next;
  step.end = std::max(end, next);
  return step;
}

}  // namespace gyre::orchestrator
