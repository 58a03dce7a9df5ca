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

std::vector<v1::AgentMessage> BatchResults(std::deque<v1::AgentMessage> messages,
                                           ResultBatchLimits limits) {
  std::vector<v1::AgentMessage> out;
  out.reserve(messages.size());
  std::vector<v1::TaskResult*> run;  // the current run of results, in `messages`
  size_t run_bytes = 0;
  auto flush = [&] {
    if (run.size() == 1) {
      out.emplace_back().mutable_task_result()->Swap(run.front());
    } else if (!run.empty()) {
      v1::TaskResults* batch = out.emplace_back().mutable_task_results();
      batch->mutable_results()->Reserve(static_cast<int>(run.size()));
      for (v1::TaskResult* result : run) batch->add_results()->Swap(result);
    }
    run.clear();
    run_bytes = 0;
  };
  for (v1::AgentMessage& message : messages) {
    if (!message.has_task_result()) {
      flush();
      out.push_back(std::move(message));
      continue;
    }
    const size_t bytes = EstimatedBytes(message.task_result());
    if (!run.empty() &&
        (run.size() >= limits.max_results || run_bytes + bytes > limits.max_bytes)) {
      flush();
    }
    run.push_back(message.mutable_task_result());
    run_bytes += bytes;
  }
  flush();
  return out;
}

}  // namespace gyre::agent
