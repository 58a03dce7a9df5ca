#ifndef GYRE_SERVICES_AGENT_DEFERRED_STARTS_H_
#define GYRE_SERVICES_AGENT_DEFERRED_STARTS_H_

#include <cstddef>
#include <deque>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "services/agent/result_batching.h"

namespace gyre::agent {

// The task_started messages of one orchestrator stream, held back until
// each task has run for a moment (the agent's start_report_delay). Most
// subprocess tasks of a busy agent end sooner: such a task's start is
// dropped and its result, which the orchestrator records as start and end
// (a result for a leased attempt that never reported a start), is the only
// message. Each start the agent writes costs it a gRPC write of its own
// (the writer's largest cost in the profile, bench/README.md), and the
// orchestrator an engine-lock section, a state change with its event and a
// journal record.
//
// Not thread-safe: the stream's out_mutex guards it.
class DeferredStarts {
 public:
  // Holds `started` (a task_started message) for `attempt` until `due`.
  void Hold(std::string attempt, QueuedMessage started, absl::Time due);
  // The attempt ended before its start was released: the start is
  // forgotten (the result says it all). Whether one was held.
  bool Drop(const std::string& attempt);
  // Appends the starts due at `now` to `out`, in the order they were held,
  // and forgets them. InfiniteFuture releases all.
  void Release(absl::Time now, std::deque<QueuedMessage>* out);
  // When the earliest held start falls due; InfiniteFuture when none is
  // held. May be the due time of a start dropped since (an early look
  // releases nothing).
  absl::Time next_due() const {
    return order_.empty() ? absl::InfiniteFuture() : order_.front().first;
  }
  size_t size() const { return held_.size(); }

 private:
  absl::flat_hash_map<std::string, QueuedMessage> held_;
  // Due times and attempts in the order held; an attempt dropped since is
  // skipped when its turn comes.
  std::deque<std::pair<absl::Time, std::string>> order_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_DEFERRED_STARTS_H_
