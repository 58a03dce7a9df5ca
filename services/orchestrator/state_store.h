#ifndef GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_H_
#define GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gyre/v1/state_record.pb.h"

namespace gyre::orchestrator {

// Where the orchestrator's acknowledged changes are kept. The engine appends
// a StateRecord for every change it acknowledges and now and then stores a
// snapshot of its whole state; at start it loads the newest snapshot and
// replays the records appended after it (event sourcing).
//
// Records have positions 1, 2, 3... in append order, kept across reopen.
//
// This header is the seam between the engine and storage: the engine's
// library depends on it alone; whoever creates a store links the backend it
// creates. The backends are siblings: memory_state_store.h (tests) and
// embedded_state_store.h (the event log); each passes the conformance suite
// in state_store_conformance.h (docs/architecture.md, "Storage", says how a
// new backend plugs in).
//
// Contract (checked by the conformance suite for every backend):
//  - Load() is called once, before the first Append: it hands the newest
//    snapshot to `restore` (if there is one), then every record after the
//    snapshot's position whose Append completed OK to `apply`, in order;
//  - Append() never blocks on I/O and is done with `records` when it
//    returns (the caller keeps them); `done` runs once the records are durable
//    (or with the error that prevented it); records appended earlier are
//    durable no later than records appended after them;
//  - after an error, later appends fail too (no holes);
//  - last_position() is the position of the last record appended (durable
//    or not); callers that serialize their Appends can read it in the same
//    critical section to learn the position their state corresponds to;
//  - AwaitDurable(position) returns once the records up to `position` are
//    durable, or with the error that keeps them from being so (a position
//    past last_position() is an error); it may block on I/O;
//  - WriteSnapshot(position, snapshot) waits until the records up to
//    `position` are durable, then stores the snapshot durably; it may then
//    drop the records it covers. It does I/O on the calling thread: never
//    call it under a lock the hot path needs.
// Implementations are thread-safe.
class StateStore {
 public:
  using Completion = std::function<void(absl::Status)>;
  // Gets the snapshot to keep (moved in: restoring a large state must not
  // copy it).
  using RestoreFn = std::function<absl::Status(gyre::v1::EngineSnapshot)>;
  using ApplyFn = std::function<absl::Status(const gyre::v1::StateRecord&)>;

  virtual ~StateStore() = default;
  virtual absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) = 0;
  virtual void Append(absl::Span<const gyre::v1::StateRecord> records, Completion done) = 0;
  virtual uint64_t last_position() = 0;
  virtual absl::Status AwaitDurable(uint64_t position) = 0;
  virtual absl::Status WriteSnapshot(uint64_t position,
                                     const gyre::v1::EngineSnapshot& snapshot) = 0;

  // Between HoldCommits() and the matching ReleaseCommits() the store does
  // not start committing appends (one already under way finishes): the
  // appends of one change of the engine (a submission and the leases it led
  // to, a result and the next leases) then go to the store's writer
  // together, in one commit, instead of two when the writer woke between
  // them. Holds nest; one is taken and released within one critical section
  // of the engine, with no I/O between. Not a wait: a writer with nothing
  // held commits at once. The default (stores with no writer thread) does
  // nothing.
  virtual void HoldCommits() {}
  virtual void ReleaseCommits() {}

  // Whether the store can make records durable now: OK, or UNAVAILABLE
  // saying why and since when (a lost database connection being retried,
  // appends waiting meanwhile). Cheap (no I/O): readiness and write paths
  // ask it. Backends that never wait for their storage always say OK.
  virtual absl::Status Availability() { return absl::OkStatus(); }
  // `observer(available)` runs each time Availability() turns, on the
  // store's own thread with none of its locks held; it must not block nor
  // call the store. Set once, before Load.
  virtual void SetAvailabilityObserver(std::function<void(bool available)> observer) {
    (void)observer;
  }
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_STATE_STORE_H_
