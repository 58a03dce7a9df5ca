#ifndef GYRE_SERVICES_AGENT_RESULT_BATCHING_H_
#define GYRE_SERVICES_AGENT_RESULT_BATCHING_H_

#include <cstddef>
#include <deque>
#include <vector>

#include "gyre/v1/agent_service.pb.h"

namespace gyre::agent {

// Bounds of one task_results message: the orchestrator accepts at most 4096
// results per message, and gRPC messages are capped at 4 MiB by default.
struct ResultBatchLimits {
  size_t max_results = 1024;
  size_t max_bytes = 1 << 20;  // estimated from the results' variable parts
};

// Turns queued outgoing messages into the messages to write: runs of
// consecutive task_result messages become task_results messages (within
// `limits`); everything else, and the order, is kept. A lone result stays
// a task_result.
std::vector<gyre::v1::AgentMessage> BatchResults(std::deque<gyre::v1::AgentMessage> messages,
                                                 ResultBatchLimits limits = {});

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_RESULT_BATCHING_H_
