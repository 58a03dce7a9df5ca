#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_STATIC_SHARD_DIRECTORY_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_STATIC_SHARD_DIRECTORY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/orchestrator/shard_directory.h"

namespace gyre::orchestrator::testing {

// A ShardDirectory the test sets by hand (the real one follows the leases
// in PostgreSQL): members, and each shard's owner. Thread-safe.
class StaticShardDirectory final : public ShardDirectory {
 public:
  explicit StaticShardDirectory(std::string self_id) : self_id_(std::move(self_id)) {}

  // Adds `member`, or changes its address.
  void SetMember(const OrchestratorMember& member) {
    absl::MutexLock lock(&mutex_);
    members_[member.id] = member.address;
  }
  // `member` owns shards [from, to); it is made a member.
  void SetOwner(uint32_t from, uint32_t to, const OrchestratorMember& member) {
    SetMember(member);
    absl::MutexLock lock(&mutex_);
    for (uint32_t shard = from; shard < to; ++shard) owners_[shard] = member.id;
  }
  // Nobody owns shards [from, to).
  void ClearOwner(uint32_t from, uint32_t to) {
    absl::MutexLock lock(&mutex_);
    for (uint32_t shard = from; shard < to; ++shard) owners_.erase(shard);
  }

  std::optional<OrchestratorMember> OwnerOf(uint32_t shard) const override {
    absl::MutexLock lock(&mutex_);
    auto owner = owners_.find(shard);
    if (owner == owners_.end()) return std::nullopt;
    auto member = members_.find(owner->second);
    return OrchestratorMember{owner->second, member == members_.end() ? "" : member->second};
  }
  std::vector<OrchestratorMember> Members() const override {
    absl::MutexLock lock(&mutex_);
    std::vector<OrchestratorMember> members;
    for (const auto& [id, address] : members_) members.push_back({id, address});
    return members;
  }
  const std::string& self_id() const override { return self_id_; }

 private:
  const std::string self_id_;
  mutable absl::Mutex mutex_;
  std::map<std::string, std::string> members_ ABSL_GUARDED_BY(mutex_);  // id -> address
  std::map<uint32_t, std::string> owners_ ABSL_GUARDED_BY(mutex_);      // shard -> id
};

}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_STATIC_SHARD_DIRECTORY_H_
