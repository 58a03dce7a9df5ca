#include "services/orchestrator/result_acks.h"

#include <algorithm>

namespace gyre::orchestrator {

void ResultAcks::Appended() {
  absl::MutexLock lock(&mutex_);
  appends_pending_++;
}

void ResultAcks::Durable(uint64_t through, const absl::Status& status) {
  absl::MutexLock lock(&mutex_);
  appends_pending_--;
  // A failed append is not acknowledged, nor anything after it: the agent
  // sends those results again on its next session.
  if (!status.ok()) {
    sent_through_ = UINT64_MAX;
    return;
  }
  // A stale batch that waited may follow appends still pending, unless
  // none is left.
  if (appends_pending_ == 0) through = std::max(through, waiting_through_);
  SendLocked(through);
}

void ResultAcks::NothingToRecord(uint64_t through) {
  absl::MutexLock lock(&mutex_);
  if (appends_pending_ > 0) {
    waiting_through_ = std::max(waiting_through_, through);
    return;
  }
  SendLocked(through);
}

void ResultAcks::SendLocked(uint64_t through) {
  if (through <= sent_through_ || channel_ == nullptr) return;
  sent_through_ = through;
  gyre::v1::OrchestratorMessage ack;
  ack.mutable_result_ack()->set_through_sequence(through);
  // Under this lock, so acknowledgements go out in increasing order.
  channel_->Send(std::move(ack));
}

}  // namespace gyre::orchestrator
