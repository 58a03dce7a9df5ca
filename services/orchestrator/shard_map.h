#ifndef GYRE_SERVICES_ORCHESTRATOR_SHARD_MAP_H_
#define GYRE_SERVICES_ORCHESTRATOR_SHARD_MAP_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "gyre/v1/state_record.pb.h"

namespace gyre::orchestrator {

// Several orchestrators share the work by executions: each execution belongs
// to one of a fixed number of virtual shards, and each shard is owned by one
// orchestrator at a time (a lease with a fencing token in PostgreSQL; issue
// 21, docs/architecture.md "Shards"). The count is fixed when a database is
// created: changing it would move executions between shards.
inline constexpr uint32_t kDefaultShardCount = 256;

// The shard of an execution, from its bare id ("e-…") or its resource name
// ("executions/e-…"; both give the same shard). A stable hash (FNV-1a, 64
// bit), not absl::Hash, which is seeded per process: every orchestrator and
// every version must agree. `shard_count` > 0.
uint32_t ShardOfExecution(absl::string_view execution, uint32_t shard_count);

// The one execution a record is about (its bare id, "e-…"), or empty for a
// record about none (WorkflowStored, WorkflowDeleted) or several
// (ExecutionsExpired, TaskLogsExpired). A view into `record`.
absl::string_view ExecutionOfRecord(const gyre::v1::StateRecord& record);

// The shard a record belongs to, or nullopt for a record every shard's owner
// needs (workflow definitions: WorkflowStored, WorkflowDeleted). Every other
// kind names executions of exactly one shard (ExecutionsExpired and
// TaskLogsExpired list several ids, all of one shard: nullopt when empty).
std::optional<uint32_t> ShardOfRecord(const gyre::v1::StateRecord& record, uint32_t shard_count);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SHARD_MAP_H_
