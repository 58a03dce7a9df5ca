#ifndef GYRE_SERVICES_ORCHESTRATOR_SHARD_OWNERSHIP_H_
#define GYRE_SERVICES_ORCHESTRATOR_SHARD_OWNERSHIP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/orchestrator/shard_directory.h"

namespace gyre::orchestrator {

// The payload (type URL) of the typed answer for an execution whose shard
// this engine does not own; its value is the shard number in decimal. The
// service layer turns it into a redirect to the shard's owner (not built
// yet: the engine does not know the owner), an agent re-sends a refused
// result to another orchestrator.
inline constexpr char kShardNotOwnedPayload[] = "type.gyre.dev/gyre.ShardNotOwned";

// FAILED_PRECONDITION carrying kShardNotOwnedPayload: `execution` (a name
// or id) belongs to `shard`, which this engine does not own; `what` says
// what was asked ("get execution", "task result", ...).
absl::Status ShardNotOwnedError(uint32_t shard, absl::string_view execution, absl::string_view what,
                                const std::optional<OrchestratorMember>& owner = std::nullopt);
// What a watcher of an execution of `shard` ends with when the shard moves
// to another orchestrator: FAILED_PRECONDITION with kShardNotOwnedPayload.
absl::Status ShardMovedError(uint32_t shard);
// The shard a ShardNotOwnedError (or ShardMovedError) names; nullopt for any other status.
std::optional<uint32_t> NotOwnedShard(const absl::Status& status);

// The execution id in "executions/{id}", "executions/{id}/tasks/{t}" or a
// bare id.
absl::string_view ExecutionIdOf(absl::string_view name);

// Which of the shards this engine owns (issue 21, docs/architecture.md
// "Engine and shards"). Owning every shard (the default: one orchestrator)
// is a single flag, so that nothing on a hot path hashes an id then.
// Owns: the owned set and the typed "not owned" answer. Must not touch:
// executions (ShardHandover drops and adopts them).
// Not thread-safe: used under the engine lock.
class ShardOwnership {
 public:
  // `owned`: the shards owned at first; nullopt owns them all. Shards not
  // below `shard_count` are left out (the caller validates config).
  ShardOwnership(uint32_t shard_count, const std::optional<std::vector<uint32_t>>& owned);

  uint32_t shard_count() const { return shard_count_; }
  // Every shard owned: no check is needed anywhere.
  bool all() const { return owned_count_ == shard_count_; }
  bool none() const { return owned_count_ == 0; }
  uint32_t owned_count() const { return owned_count_; }
  bool owns(uint32_t shard) const { return shard < shard_count_ && owned_[shard]; }
  // The shard of `execution` (any name form, ExecutionIdOf).
  uint32_t ShardOf(absl::string_view execution) const;
  // OK when the execution's shard is owned, else ShardNotOwnedError.
  absl::Status Check(absl::string_view execution, absl::string_view what) const {
    if (all()) return absl::OkStatus();
    return CheckSlow(execution, what);
  }

  // False when it was owned already (Add) or not owned (Remove), or out of
  // range.
  bool Add(uint32_t shard);
  bool Remove(uint32_t shard);

  // Names the owner in "not owned" answers when it knows it (null: not).
  void set_directory(const ShardDirectory* directory) { directory_ = directory; }

 private:
  absl::Status CheckSlow(absl::string_view execution, absl::string_view what) const;

  uint32_t shard_count_;
  uint32_t owned_count_ = 0;
  std::vector<bool> owned_;
  const ShardDirectory* directory_ = nullptr;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SHARD_OWNERSHIP_H_
