#include "services/orchestrator/shard_ownership.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/orchestrator/shard_map.h"

namespace gyre::orchestrator {

absl::Status ShardNotOwnedError(uint32_t shard, absl::string_view execution, absl::string_view what,
                                const std::optional<OrchestratorMember>& owner) {
  absl::Status status = absl::FailedPreconditionError(absl::StrCat(
      what, ": execution ", ExecutionIdOf(execution), " belongs to shard ", shard,
      ", which this orchestrator does not own (it moved to, or belongs to, another "
      "orchestrator); ask the shard's owner",
      owner.has_value() ? absl::StrCat(", orchestrator ", owner->id, " at ",
                                       owner->address.empty() ? std::string("?") : owner->address)
                        : std::string(" (not known here now)")));
  status.SetPayload(kShardNotOwnedPayload, absl::Cord(absl::StrCat(shard)));
  return status;
}

absl::Status ShardMovedError(uint32_t shard) {
  absl::Status status = absl::FailedPreconditionError(
      absl::StrCat("watch ended: the execution's shard ", shard,
                   " moved to another orchestrator; watch it there from the next sequence"));
  status.SetPayload(kShardNotOwnedPayload, absl::Cord(absl::StrCat(shard)));
  return status;
}

std::optional<uint32_t> NotOwnedShard(const absl::Status& status) {
  const auto payload = status.GetPayload(kShardNotOwnedPayload);
  uint32_t shard = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &shard)) return std::nullopt;
  return shard;
}

absl::string_view ExecutionIdOf(absl::string_view name) {
  absl::ConsumePrefix(&name, "executions/");
  return name.substr(0, name.find('/'));
}

ShardOwnership::ShardOwnership(uint32_t shard_count,
                               const std::optional<std::vector<uint32_t>>& owned)
    : shard_count_(shard_count > 0 ? shard_count : 1), owned_(shard_count_, !owned.has_value()) {
  if (!owned.has_value()) {
    owned_count_ = shard_count_;
    return;
  }
  for (const uint32_t shard : *owned) Add(shard);
}

uint32_t ShardOwnership::ShardOf(absl::string_view execution) const {
  return ShardOfExecution(ExecutionIdOf(execution), shard_count_);
}

absl::Status ShardOwnership::CheckSlow(absl::string_view execution, absl::string_view what) const {
  const uint32_t shard = ShardOf(execution);
  if (owned_[shard]) return absl::OkStatus();
  return ShardNotOwnedError(shard, execution, what,
                            directory_ != nullptr ? directory_->OwnerOf(shard) : std::nullopt);
}

bool ShardOwnership::Add(uint32_t shard) {
  if (shard >= shard_count_ || owned_[shard]) return false;
  owned_[shard] = true;
  owned_count_++;
  return true;
}

bool ShardOwnership::Remove(uint32_t shard) {
  if (shard >= shard_count_ || !owned_[shard]) return false;
  owned_[shard] = false;
  owned_count_--;
  return true;
}

}  // namespace gyre::orchestrator
