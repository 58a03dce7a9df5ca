#ifndef GYRE_SERVICES_ORCHESTRATOR_RETENTION_H_
#define GYRE_SERVICES_ORCHESTRATOR_RETENTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/orchestrator/engine_journal.h"
#include "services/orchestrator/execution_table.h"

namespace gyre::orchestrator {

// How long finished executions and their logs are kept
// (docs/operations.md, "Retention"; the retention_* configuration keys).
struct RetentionOptions {
  // A finished execution (with its task runs, attempts, outputs, events and
  // request id) is forgotten this long after its end; 0: kept for ever.
  absl::Duration finished_executions = absl::Hours(24 * 90);
  // The stdout/stderr tails kept with a finished execution's attempts are
  // dropped this long after its end; 0: kept for ever.
  absl::Duration task_logs = absl::Hours(24 * 7);
  // Executions one pass forgets (and, apart, whose logs it drops) at most:
  // what bounds one hold of the engine lock.
  int64_t batch = 500;
  // Between background passes; a pass that left more due runs again at
  // once (a new lock hold). 0: no background passes.
  absl::Duration interval = absl::Minutes(1);
};

// Retention of finished executions and their logs. Owns: choosing what is
// due (from ExecutionTable's index by end time, oldest first, never a scan
// of every execution), the ExecutionsExpired and TaskLogsExpired records
// (one per shard: a record's ids all belong to one shard, as
// ShardOfRecord needs) and applying them. Replay applies the same records
// through ExecutionTable::Forget/DropLogs (EngineRecovery). Must not touch:
// task states, agents. Not thread-safe: used under the engine lock, one
// batch per call so that the lock is held briefly.
class Retention {
 public:
  Retention(const RetentionOptions& options, ExecutionTable& executions, EngineJournal& journal)
      : options_(options), executions_(executions), journal_(journal) {}

  const RetentionOptions& options() const { return options_; }

  struct Pass {
    int64_t forgotten = 0;     // executions forgotten
    int64_t logs_dropped = 0;  // executions whose logs were dropped
    bool more = false;         // more was due than one batch: run again
  };
  // One batch of each kind at journal().now(): records appended (after
  // the change is applied, under the same lock, as every change), and a
  // snapshot requested when executions were forgotten, so that the store
  // can let go of what it kept of them.
  Pass RunPass();

 private:
  // Finished executions of `index` that ended at or before `cutoff`, at most
  // a batch, oldest first, passing over those `keep` says must stay for
  // now; `*more` is set when more were due.
  template <typename Keep>
  std::vector<std::string> Due(const ExecutionTable::EndIndex& index, absl::Time cutoff, Keep keep,
                               bool* more) const;
  // Appends one record per shard of `ids`, made by `fill`.
  template <typename Fill>
  void Persist(const std::vector<std::string>& ids, Fill fill);

  const RetentionOptions options_;
  ExecutionTable& executions_;
  EngineJournal& journal_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_RETENTION_H_
