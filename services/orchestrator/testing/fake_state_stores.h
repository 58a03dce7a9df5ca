#ifndef GYRE_SERVICES_ORCHESTRATOR_TESTING_FAKE_STATE_STORES_H_
#define GYRE_SERVICES_ORCHESTRATOR_TESTING_FAKE_STATE_STORES_H_

// StateStores that misbehave on cue, for tests of how the engine and its
// handlers react to storage: each wraps a real store (the in-memory one)
// and changes one thing about it. Thread-safe, like every StateStore.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/state_store.h"

namespace gyre::orchestrator::testing {

// A store over `data` whose appends fail once told to, as a disk error would
// make them (and, as the StateStore contract says, every later one too;
// AwaitDurable and WriteSnapshot fail from then on as well).
class FailingStore : public StateStore {
 public:
  explicit FailingStore(std::shared_ptr<MemoryStateStoreData> data);
  void Fail() { failing_ = true; }

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override;
  void Append(absl::Span<const gyre::v1::StateRecord> records, Completion done) override;
  uint64_t last_position() override;
  absl::Status AwaitDurable(uint64_t position) override;
  absl::Status WriteSnapshot(uint64_t position, const gyre::v1::EngineSnapshot& snapshot) override;

 private:
  std::unique_ptr<StateStore> store_;
  std::atomic<bool> failing_{false};
};

// Appends complete at once (so a submission is acknowledged), but records
// count as durable, for AwaitDurable, only up to what the test allows: as a
// log whose group commit has not reached the disk yet.
class HeldStore : public StateStore {
 public:
  HeldStore();

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override;
  void Append(absl::Span<const gyre::v1::StateRecord> records, Completion done) override;
  uint64_t last_position() override;
  // Blocks until MakeDurable covers `position`.
  absl::Status AwaitDurable(uint64_t position) override;
  absl::Status WriteSnapshot(uint64_t position, const gyre::v1::EngineSnapshot& snapshot) override;

  // Everything appended so far becomes durable.
  void MakeDurable();
  // Whether anyone has waited in AwaitDurable.
  bool awaited();

 private:
  std::unique_ptr<StateStore> inner_;
  absl::Mutex mutex_;
  uint64_t durable_through_ ABSL_GUARDED_BY(mutex_) = 0;
  bool awaited_ ABSL_GUARDED_BY(mutex_) = false;
};

// A store whose storage goes away on cue, as a PostgreSQL store's does
// while it reconnects: while down, appends are kept (in order, counted in
// last_position) but not completed, and Availability says UNAVAILABLE
// unless told to keep quiet (a store that is merely slow); ComeBack
// completes them all, OK, in order.
class OutageStore : public StateStore {
 public:
  OutageStore();

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override;
  void Append(absl::Span<const gyre::v1::StateRecord> records, Completion done) override;
  uint64_t last_position() override;
  absl::Status AwaitDurable(uint64_t position) override;
  absl::Status WriteSnapshot(uint64_t position, const gyre::v1::EngineSnapshot& snapshot) override;
  absl::Status Availability() override;

  void GoDown(bool say_unavailable = true);
  void ComeBack();

 private:
  std::unique_ptr<StateStore> inner_;
  absl::Mutex mutex_;
  bool down_ ABSL_GUARDED_BY(mutex_) = false;
  bool say_unavailable_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<Completion> held_ ABSL_GUARDED_BY(mutex_);
};

// Passes records to `inner` until an evaluator child's ExecutionStarted,
// then drops that one and everything after: as if the orchestrator died
// right after recording the evaluator's result, before the child's start
// reached the log. Appends must be serialized (the engine's lock does).
class DropChildStarts : public StateStore {
 public:
  explicit DropChildStarts(StateStore* inner) : inner_(inner) {}

  absl::Status Load(const RestoreFn& restore, const ApplyFn& apply) override;
  void Append(absl::Span<const gyre::v1::StateRecord> records, Completion done) override;
  uint64_t last_position() override;
  absl::Status AwaitDurable(uint64_t position) override;
  absl::Status WriteSnapshot(uint64_t position, const gyre::v1::EngineSnapshot& snapshot) override;

 private:
  StateStore* inner_;
  bool crashed_ = false;  // Append is serialized by the engine lock
};

}  // namespace gyre::orchestrator::testing

#endif  // GYRE_SERVICES_ORCHESTRATOR_TESTING_FAKE_STATE_STORES_H_
