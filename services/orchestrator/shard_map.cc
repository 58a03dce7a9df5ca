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

std::optional<uint32_t> ShardOfRecord(const v1::StateRecord& record, uint32_t shard_count) {
  auto of = [shard_count](absl::string_view execution) -> std::optional<uint32_t> {
    return ShardOfExecution(execution, shard_count);
  };
  switch (record.kind_case()) {
    case v1::StateRecord::kWorkflowStored:
    case v1::StateRecord::kWorkflowDeleted:
    case v1::StateRecord::KIND_NOT_SET:
      return std::nullopt;
    case v1::StateRecord::kExecutionStarted:
      return of(record.execution_started().execution_id());
    case v1::StateRecord::kTaskLeased:
      return of(record.task_leased().execution_id());
    case v1::StateRecord::kTaskResult:
      return of(record.task_result().result().ref().execution());
    case v1::StateRecord::kExecutionControl:
      return of(record.execution_control().execution_id());
    case v1::StateRecord::kAttemptStarted:
      return of(record.attempt_started().execution_id());
    case v1::StateRecord::kAttemptLost:
      return of(record.attempt_lost().execution_id());
    case v1::StateRecord::kTaskRetryDue:
      return of(record.task_retry_due().execution_id());
    case v1::StateRecord::kAttemptNotStarted:
      return of(record.attempt_not_started().execution_id());
    case v1::StateRecord::kPriorityChanged:
      return of(record.priority_changed().execution_id());
    // Retention splits its batches per shard: the first id names them all.
    case v1::StateRecord::kExecutionsExpired:
      if (record.executions_expired().execution_ids().empty()) return std::nullopt;
      return of(record.executions_expired().execution_ids(0));
    case v1::StateRecord::kTaskLogsExpired:
      if (record.task_logs_expired().execution_ids().empty()) return std::nullopt;
      return of(record.task_logs_expired().execution_ids(0));
  }
  return std::nullopt;
}

}  // namespace gyre::orchestrator
