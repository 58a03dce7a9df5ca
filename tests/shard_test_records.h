#ifndef GYRE_TESTS_SHARD_TEST_RECORDS_H_
#define GYRE_TESTS_SHARD_TEST_RECORDS_H_

// Records the shard tests write: one TaskLeased per append, in an execution
// of the chosen shard, its task id saying who wrote it ("holder:<token>:<n>").

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "gyre/v1/state_record.pb.h"
#include "services/orchestrator/shard_map.h"

namespace gyre::testing {

// An execution id of `shard` (the first "e-s<shard>-<i>" that hashes there).
inline std::string ExecutionInShard(uint32_t shard) {
  for (int i = 0;; ++i) {
    std::string id = absl::StrCat("e-s", shard, "-", i);
    if (orchestrator::ShardOfExecution(id, orchestrator::kDefaultShardCount) == shard) return id;
  }
}

inline gyre::v1::StateRecord TaskLeasedIn(uint32_t shard, const std::string& task) {
  gyre::v1::StateRecord record;
  record.mutable_task_leased()->set_execution_id(ExecutionInShard(shard));
  record.mutable_task_leased()->set_task_id(task);
  return record;
}

}  // namespace gyre::testing

#endif  // GYRE_TESTS_SHARD_TEST_RECORDS_H_
