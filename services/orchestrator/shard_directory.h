#ifndef GYRE_SERVICES_ORCHESTRATOR_SHARD_DIRECTORY_H_
#define GYRE_SERVICES_ORCHESTRATOR_SHARD_DIRECTORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gyre::orchestrator {

// One orchestrator of several sharing a PostgreSQL database (issue 21):
// its id (config orchestrator_id) and the address its gRPC API is reached
// at (config advertised_address).
struct OrchestratorMember {
  std::string id;
  std::string address;
};

// Who owns which shard (as last read; may be stale by up to one lease round).
// The lease coordinator implements it from what each lease round reads; the
// service layer's forwarding (owner_forwarding.h) reads it. Thread-safe.
class ShardDirectory {
 public:
  virtual ~ShardDirectory() = default;
  // The owner of `shard`, or nullopt when no live orchestrator holds it.
  virtual std::optional<OrchestratorMember> OwnerOf(uint32_t shard) const = 0;
  // Every live orchestrator, this one included.
  virtual std::vector<OrchestratorMember> Members() const = 0;
  // This orchestrator's id.
  virtual const std::string& self_id() const = 0;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SHARD_DIRECTORY_H_
