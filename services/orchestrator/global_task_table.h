#ifndef GYRE_SERVICES_ORCHESTRATOR_GLOBAL_TASK_TABLE_H_
#define GYRE_SERVICES_ORCHESTRATOR_GLOBAL_TASK_TABLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace gyre::orchestrator {

// A global task's shared run, by identity: one execution runs it; the
// others wait for and reuse its result.
struct GlobalTask {
  std::string owner;  // task run name of the run that counts
  bool succeeded = false;
  std::map<std::string, std::string> outputs;
  std::vector<std::pair<uint32_t, uint32_t>> waiters;  // (execution index, task)
};

// Global tasks (TaskSpec.global): one run per identity (spec + context)
// across executions. Owns: who runs each identity, its result once it
// succeeded, and who waits for it. Must not touch: task states — it returns
// verdicts (run it, satisfied, wait; these waiters to wake) and the task
// state machine acts on them. Not thread-safe: used under the engine lock.
class GlobalTaskTable {
 public:
  enum class Verdict {
    kRun,        // the claiming run owns the identity: it runs
    kSatisfied,  // already produced: take the owner's outputs
    kWait,       // being produced by another run: added to its waiters
  };
  // Task run `run` (task `task` of execution `execution`) with `identity`
  // is ready to run. `*global` is the identity's entry (for kSatisfied's
  // outputs and the owner's name).
  Verdict Claim(const std::string& identity, const std::string& run, uint32_t execution,
                uint32_t task, const GlobalTask** global);
  // The run `run` of `identity` ended. Returns the waiters to wake (the
  // first to become ready runs it again when it did not succeed); nothing
  // when `run` does not own the identity.
  std::vector<std::pair<uint32_t, uint32_t>> Settle(
      const std::string& identity, const std::string& run, bool succeeded,
      const std::map<std::string, std::string>& outputs);

  // For snapshots.
  const absl::flat_hash_map<std::string, GlobalTask>& all() const { return globals_; }
  GlobalTask& Restore(const std::string& identity) { return globals_[identity]; }

 private:
  absl::flat_hash_map<std::string, GlobalTask> globals_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_GLOBAL_TASK_TABLE_H_
