#ifndef GYRE_SERVICES_AGENT_RESULT_BATCHING_H_
#define GYRE_SERVICES_AGENT_RESULT_BATCHING_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "gyre/v1/agent_service.pb.h"

namespace gyre::agent {

// A message queued for the orchestrator. Shared, because a result is also
// kept among the unacknowledged ones until the orchestrator has it durably:
// the message kept and the message sent are one.
using QueuedMessage = std::shared_ptr<const gyre::v1::AgentMessage>;

// Bounds of one task_results message: the orchestrator accepts at most 4096
// results per message, and gRPC messages are capped at 4 MiB by default.
struct ResultBatchLimits {
  size_t max_results = 1024;
  size_t max_bytes = 1 << 20;  // estimated from the results' variable parts
};

// The messages to write for queued ones: runs of consecutive task_result
// messages become task_results messages (within the limits); everything
// else, and the order, is kept, and a lone result stays a task_result.
// The batches lend the queued results instead of copying them, so this
// keeps the queued messages alive and must outlive the writes.
class ResultBatches {
 public:
  explicit ResultBatches(std::deque<QueuedMessage> queued, ResultBatchLimits limits = {});
  // Gives the lent results back.
  ~ResultBatches();

  ResultBatches(const ResultBatches&) = delete;
  ResultBatches& operator=(const ResultBatches&) = delete;

  // In order; valid while this lives.
  const std::vector<const gyre::v1::AgentMessage*>& messages() const { return messages_; }

  // Puts `credit` on the last results message (a lone result becomes a
  // batch of one), for an orchestrator that takes TaskResults.credit: the
  // slots those results freed travel with them instead of in a message of
  // their own. False, and nothing changed, when there is no result to
  // carry it.
  bool AttachCredit(int32_t credit);

 private:
  const std::deque<QueuedMessage> queued_;
  std::deque<gyre::v1::AgentMessage> batches_;  // stable addresses
  std::vector<const gyre::v1::AgentMessage*> messages_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_RESULT_BATCHING_H_
