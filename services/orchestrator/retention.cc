#include "services/orchestrator/retention.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "services/orchestrator/shard_map.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// Whether an agent still holds a lease of one of `exec`'s tasks (a task
// cancelled while running stays leased until its agent answers or is
// declared dead): its slot is still referred to, so it waits.
bool Leased(const ExecutionEntry& exec) {
  return std::any_of(exec.tasks.begin(), exec.tasks.end(),
                     [](const TaskEntry& task) { return !task.agent.empty(); });
}

}  // namespace

template <typename Keep>
std::vector<std::string> Retention::Due(const ExecutionTable::EndIndex& index, absl::Time cutoff,
                                        Keep keep, bool* more) const {
  const auto batch = static_cast<size_t>(std::max<int64_t>(1, options_.batch));
  // Executions kept for now (leased) are passed over, within a bound, so
  // that one of them cannot hold up the rest.
  size_t looked = 0;
  std::vector<std::string> ids;
  const int64_t cutoff_nanos = absl::ToUnixNanos(cutoff);
  for (const auto& [end, slot] : index) {
    if (end > cutoff_nanos) break;
    if (ids.size() == batch || ++looked > 4 * batch) {
      *more = true;
      break;
    }
    const ExecutionEntry& exec = executions_.at(slot);
    if (keep(exec)) continue;
    ids.push_back(exec.id);
  }
  return ids;
}

template <typename Fill>
void Retention::Persist(const std::vector<std::string>& ids, Fill fill) {
  absl::btree_map<uint32_t, v1::StateRecord> by_shard;
  for (const std::string& id : ids) {
    fill(by_shard[ShardOfExecution(id, kDefaultShardCount)])->add_execution_ids(id);
  }
  std::vector<v1::StateRecord> records;
  records.reserve(by_shard.size());
  for (auto& [shard, record] : by_shard) records.push_back(std::move(record));
  journal_.Persist(absl::MakeSpan(records), nullptr);
}

Retention::Pass Retention::RunPass() {
  Pass pass;
  const absl::Time now = journal_.now();
  // Executions first: their logs go with them, not in a record of their own.
  if (options_.finished_executions > absl::ZeroDuration()) {
    std::vector<std::string> ids =
        Due(executions_.ended(), now - options_.finished_executions, Leased, &pass.more);
    for (const std::string& id : ids) executions_.Forget(id);
    if (!ids.empty()) {
      Persist(ids, [](v1::StateRecord& record) { return record.mutable_executions_expired(); });
      journal_.RequestSnapshot();
    }
    pass.forgotten = static_cast<int64_t>(ids.size());
  }
  if (options_.task_logs > absl::ZeroDuration()) {
    std::vector<std::string> ids = Due(
        executions_.ended_with_logs(), now - options_.task_logs,
        [](const ExecutionEntry&) { return false; }, &pass.more);
    for (const std::string& id : ids) executions_.DropLogs(id, now);
    if (!ids.empty()) {
      Persist(ids, [](v1::StateRecord& record) { return record.mutable_task_logs_expired(); });
    }
    pass.logs_dropped = static_cast<int64_t>(ids.size());
  }
  return pass;
}

}  // namespace gyre::orchestrator
