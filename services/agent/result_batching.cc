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
  messages_.reserve(queued_.size());
  std::vector<const v1::AgentMessage*> run;  // the current run of results
  size_t run_bytes = 0;
  auto flush = [&] {
    if (run.size() == 1) {
      messages_.push_back(run.front());
    } else if (!run.empty()) {
      auto* results = batches_.emplace_back().mutable_task_results()->mutable_results();
      results->Reserve(static_cast<int>(run.size()));
      for (const v1::AgentMessage* message : run) {
        // Only read (serialized), and taken back in the destructor.
        results->UnsafeArenaAddAllocated(const_cast<v1::TaskResult*>(&message->task_result()));
      }
      messages_.push_back(&batches_.back());
    }
    run.clear();
    run_bytes = 0;
  };
  for (const QueuedMessage& message : queued_) {
    if (!message->has_task_result()) {
      flush();
      messages_.push_back(message.get());
      continue;
    }
    const size_t bytes = EstimatedBytes(message->task_result());
    if (!run.empty() &&
        (run.size() >= limits.max_results || run_bytes + bytes > limits.max_bytes)) {
      flush();
    }
    run.push_back(message.get());
    run_bytes += bytes;
  }
  flush();
}

ResultBatches::~ResultBatches() {
  for (v1::AgentMessage& batch : batches_) {
    auto* results = batch.mutable_task_results()->mutable_results();
    results->UnsafeArenaExtractSubrange(0, results->size(), nullptr);
  }
}

}  // namespace gyre::agent
