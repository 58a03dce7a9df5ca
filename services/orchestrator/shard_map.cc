#include "services/orchestrator/shard_map.h"

#include "absl/strings/strip.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

uint32_t ShardOfExecution(absl::string_view execution, uint32_t shard_count) {
  absl::ConsumePrefix(&execution, "executions/");
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a offset basis
  for (const char c : execution) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;  // FNV prime
  }
  return static_cast<uint32_t>(hash % shard_count);
}

absl::string_view ExecutionOfRecord(const v1::StateRecord& record) {
  switch (record.kind_case()) {
    case v1::StateRecord::kExecutionStarted:
      return record.execution_started().execution_id();
    case v1::StateRecord::kTaskLeased:
      return record.task_leased().execution_id();
    case v1::StateRecord::kTaskResult:
      return absl::StripPrefix(record.task_result().result().ref().execution(), "executions/");
    case v1::StateRecord::kExecutionControl:
      return record.execution_control().execution_id();
    case v1::StateRecord::kAttemptStarted:
      return record.attempt_started().execution_id();
    case v1::StateRecord::kAttemptLost:
      return record.attempt_lost().execution_id();
    case v1::StateRecord::kTaskRetryDue:
      return record.task_retry_due().execution_id();
    case v1::StateRecord::kAttemptNotStarted:
      return record.attempt_not_started().execution_id();
    case v1::StateRecord::kPriorityChanged:
      return record.priority_changed().execution_id();
    default:
      return {};
  }
}

std::optional<uint32_t> ShardOfRecord(const v1::StateRecord& record, uint32_t shard_count) {
  // Retention splits its batches per shard: the first id names them all.
  if (record.has_executions_expired()) {
    if (record.executions_expired().execution_ids().empty()) return std::nullopt;
    return ShardOfExecution(record.executions_expired().execution_ids(0), shard_count);
  }
  if (record.has_task_logs_expired()) {
    if (record.task_logs_expired().execution_ids().empty()) return std::nullopt;
    return ShardOfExecution(record.task_logs_expired().execution_ids(0), shard_count);
  }
  const absl::string_view execution = ExecutionOfRecord(record);
  if (execution.empty()) return std::nullopt;
  return ShardOfExecution(execution, shard_count);
}

}  // namespace gyre::orchestrator
