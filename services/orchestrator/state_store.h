#ifndef GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_H_
#define GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gyre/v1/state_record.pb.h"

namespace gyre::orchestrator {

// Where the orchestrator's acknowledged changes are kept. The engine appends
// a StateRecord for every change it acknowledges and, at start, rebuilds its
// whole state by replaying them in order (event sourcing).
//
// Contract (checked by state_store_conformance_test for every backend):
//  - Load() replays every record whose Append completed OK, in append order,
//    and is called once, before the first Append;
//  - Append() never blocks on I/O; `done` runs once the records are durable
//    (or with the error that prevented it); records appended earlier are
//    durable no later than records appended after them;
//  - after an error, later appends fail too (no holes).
// Implementations are thread-safe.
class StateStore {
 public:
  using Completion = std::function<void(absl::Status)>;

  virtual ~StateStore() = default;
  virtual absl::Status Load(
      const std::function<absl::Status(const gyre::v1::StateRecord&)>& apply) = 0;
  virtual void Append(std::vector<gyre::v1::StateRecord> records, Completion done) = 0;
};

// Records kept in memory only: for unit tests and for nothing else. The
// backing vector is shared, so a store "reopened" from it sees the records.
struct MemoryStateStoreData;
std::shared_ptr<MemoryStateStoreData> NewMemoryStateStoreData();
std::unique_ptr<StateStore> NewMemoryStateStore(std::shared_ptr<MemoryStateStoreData> data);

// The embedded durable backend: an append-only event log with group commit
// (one fdatasync per batch) in `data_dir`/events.log.
std::unique_ptr<StateStore> NewEmbeddedStateStore(const std::string& data_dir, bool fsync);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_H_
