#include "services/orchestrator/testing/fake_state_stores.h"

#include <utility>

#include "absl/strings/match.h"

namespace gyre::orchestrator::testing {

namespace v1 = ::gyre::v1;

FailingStore::FailingStore(std::shared_ptr<MemoryStateStoreData> data)
    : store_(NewMemoryStateStore(std::move(data))) {}

absl::Status FailingStore::Load(const RestoreFn& restore, const ApplyFn& apply) {
  return store_->Load(restore, apply);
}

void FailingStore::Append(absl::Span<const v1::StateRecord> records, Completion done) {
  if (failing_) {
    done(absl::DataLossError("disk full (test)"));
    return;
  }
  store_->Append(records, std::move(done));
}

uint64_t FailingStore::last_position() { return store_->last_position(); }

absl::Status FailingStore::AwaitDurable(uint64_t position) {
  if (failing_) return absl::DataLossError("disk full (test)");
  return store_->AwaitDurable(position);
}

absl::Status FailingStore::WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) {
  if (failing_) return absl::DataLossError("disk full (test)");
  return store_->WriteSnapshot(position, snapshot);
}

OutageStore::OutageStore() : inner_(NewMemoryStateStore(NewMemoryStateStoreData())) {}

absl::Status OutageStore::Load(const RestoreFn& restore, const ApplyFn& apply) {
  return inner_->Load(restore, apply);
}

void OutageStore::Append(absl::Span<const v1::StateRecord> records, Completion done) {
  inner_->Append(records, [this, done = std::move(done)](absl::Status status) mutable {
    {
      absl::MutexLock lock(&mutex_);
      if (down_) {
        held_.push_back(std::move(done));
        return;
      }
    }
    if (done) done(std::move(status));
  });
}

uint64_t OutageStore::last_position() { return inner_->last_position(); }

absl::Status OutageStore::AwaitDurable(uint64_t position) {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(
      +[](bool* down) { return !*down; }, &down_));
  return inner_->AwaitDurable(position);
}

absl::Status OutageStore::WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) {
  if (absl::Status status = AwaitDurable(position); !status.ok()) return status;
  return inner_->WriteSnapshot(position, snapshot);
}

absl::Status OutageStore::Availability() {
  absl::MutexLock lock(&mutex_);
  if (down_ && say_unavailable_) {
    return absl::UnavailableError(
        "state store unavailable: reconnecting to host=test since 1s (test)");
  }
  return absl::OkStatus();
}

void OutageStore::GoDown(bool say_unavailable) {
  absl::MutexLock lock(&mutex_);
  down_ = true;
  say_unavailable_ = say_unavailable;
}

void OutageStore::ComeBack() {
  std::vector<Completion> held;
  {
    absl::MutexLock lock(&mutex_);
    down_ = false;
    held.swap(held_);
  }
  for (Completion& done : held) {
    if (done) done(absl::OkStatus());
  }
}

HeldStore::HeldStore() : inner_(NewMemoryStateStore(NewMemoryStateStoreData())) {}

absl::Status HeldStore::Load(const RestoreFn& restore, const ApplyFn& apply) {
  return inner_->Load(restore, apply);
}

void HeldStore::Append(absl::Span<const v1::StateRecord> records, Completion done) {
  inner_->Append(records, std::move(done));
}

uint64_t HeldStore::last_position() { return inner_->last_position(); }

absl::Status HeldStore::AwaitDurable(uint64_t position) {
  absl::MutexLock lock(&mutex_);
  awaited_ = true;
  auto durable = [this, position]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return durable_through_ >= position; };
  mutex_.Await(absl::Condition(&durable));
  return absl::OkStatus();
}

absl::Status HeldStore::WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) {
  return inner_->WriteSnapshot(position, snapshot);
}

void HeldStore::MakeDurable() {
  absl::MutexLock lock(&mutex_);
  durable_through_ = inner_->last_position();
}

bool HeldStore::awaited() {
  absl::MutexLock lock(&mutex_);
  return awaited_;
}

absl::Status DropChildStarts::Load(const RestoreFn& restore, const ApplyFn& apply) {
  return inner_->Load(restore, apply);
}

void DropChildStarts::Append(absl::Span<const v1::StateRecord> records, Completion done) {
  for (const v1::StateRecord& record : records) {
    crashed_ = crashed_ || absl::StartsWith(record.execution_started().request_id(), "child/");
  }
  inner_->Append(crashed_ ? absl::Span<const v1::StateRecord>() : records, std::move(done));
}

uint64_t DropChildStarts::last_position() { return inner_->last_position(); }

absl::Status DropChildStarts::AwaitDurable(uint64_t position) {
  return inner_->AwaitDurable(position);
}

absl::Status DropChildStarts::WriteSnapshot(uint64_t position, const v1::EngineSnapshot& snapshot) {
  return inner_->WriteSnapshot(position, snapshot);
}

}  // namespace gyre::orchestrator::testing
