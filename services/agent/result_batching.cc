#include "services/agent/result_batching.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

// The variable-size parts of a result plus a generous allowance for the rest;
// cheaper than ByteSizeLong, which serialization computes again anyway.
size_t EstimatedBytes(const v1::TaskResult& result) {
  return 256 + result.ref().execution().size() + result.ref().task_id().size() +
         result.output_json().size() + result.error().size() + result.stdout_tail().size() +
         result.stderr_tail().size();
}

}  // namespace

ResultBatches::ResultBatches(std::deque<QueuedMessage> queued, ResultBatchLimits limits)
    : queued_(std::move(queued)) {
  // The current run of results is the task_result messages among
  // queued_[run_begin, run_end) (task starts may sit between them): no list
  // of its own (a list of a thousand pointers is an allocation large enough
  // to make glibc consolidate its free lists, once per batch).
  size_t run_begin = 0;
  size_t run_end = 0;
  size_t run_size = 0;
  size_t run_bytes = 0;
  auto flush = [&] {
    if (run_size == 1) {
      for (size_t i = run_begin; i < run_end; ++i) {
        if (queued_[i]->has_task_result()) messages_.push_back(queued_[i].get());
      }
    } else if (run_size > 1) {
      auto* results = batches_.emplace_back().mutable_task_results()->mutable_results();
      results->Reserve(static_cast<int>(run_size));
      for (size_t i = run_begin; i < run_end; ++i) {
        if (!queued_[i]->has_task_result()) continue;
        // Only read (serialized), and taken back in the destructor.
        results->UnsafeArenaAddAllocated(const_cast<v1::TaskResult*>(&queued_[i]->task_result()));
      }
      messages_.push_back(&batches_.back());
    }
    run_begin = run_end;
    run_size = 0;
    run_bytes = 0;
  };
  // Task starts go first: each was queued before its own task's result and
  // log, so moving it ahead keeps that order, and the results it would sit
  // between travel in one message (under load a start and a result
  // alternated, and every result went alone).
  for (const QueuedMessage& message : queued_) {
    if (message->has_task_started()) messages_.push_back(message.get());
  }
  for (size_t i = 0; i < queued_.size(); ++i) {
    const v1::AgentMessage& message = *queued_[i];
    if (message.has_task_started()) continue;  // sent above; a run goes on across it
    if (!message.has_task_result()) {
      flush();
      messages_.push_back(&message);
      run_begin = run_end = i + 1;
      continue;
    }
    const size_t bytes = EstimatedBytes(message.task_result());
    if (run_size > 0 && (run_size >= limits.max_results || run_bytes + bytes > limits.max_bytes)) {
      run_end = i;
      flush();
    }
    run_end = i + 1;
    run_size++;
    run_bytes += bytes;
  }
  flush();
}

bool ResultBatches::AttachCredit(int32_t credit) {
  for (size_t i = messages_.size(); i-- > 0;) {
    const v1::AgentMessage* message = messages_[i];
    if (message->has_task_results()) {
      // Every results message here is one of batches_: only read elsewhere.
      const_cast<v1::AgentMessage*>(message)->mutable_task_results()->set_credit(credit);
      return true;
    }
    if (message->has_task_result()) {
      v1::AgentMessage& batch = batches_.emplace_back();
      v1::TaskResults* results = batch.mutable_task_results();
      // Lent as the batches' results are, and taken back in the destructor.
      results->mutable_results()->UnsafeArenaAddAllocated(
          const_cast<v1::TaskResult*>(&message->task_result()));
      results->set_credit(credit);
      messages_[i] = &batch;
      return true;
    }
  }
  return false;
}

ResultBatches::~ResultBatches() {
  for (v1::AgentMessage& batch : batches_) {
    auto* results = batch.mutable_task_results()->mutable_results();
    results->UnsafeArenaExtractSubrange(0, results->size(), nullptr);
  }
}

}  // namespace gyre::agent
