#ifndef GYRE_SERVICES_ORCHESTRATOR_CLUSTER_BACKLOG_H_
#define GYRE_SERVICES_ORCHESTRATOR_CLUSTER_BACKLOG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace gyre::orchestrator {

// Tasks of one queue (worker type) waiting for an agent and leased or
// running: what desired workers are computed from.
struct QueueBacklog {
  int64_t queued = 0;
  int64_t running = 0;
  // The member's own orchestrator_forecast_workers before clamping (the
  // peak within 60 s and within 300 s), when it has a forecaster; summed
  // over the members as the counts are.
  double forecast_workers_60s = 0;
  double forecast_workers_300s = 0;
  bool empty() const {
    return queued == 0 && running == 0 && forecast_workers_60s == 0 && forecast_workers_300s == 0;
  }
  friend bool operator==(const QueueBacklog&, const QueueBacklog&) = default;
};

// Per queue name.
using QueueBacklogs = absl::flat_hash_map<std::string, QueueBacklog>;

// The backlog of the whole cluster when several orchestrators share a
// PostgreSQL database (postgres_sharding, issue 21): each owns about 1/N of
// the executions, so a desired-workers figure from its own backlog alone
// would scale the pools to about 1/N of what the work needs.
//
// Sits between the engine's Dispatcher and the ShardLeaseManager:
//  - the dispatcher publishes this member's counts per queue whenever it
//    exports its gauges (under the engine lock: one short lock here, no I/O)
//    and gets back the cluster's totals: its own plus the others';
//  - the lease manager reads this member's counts for its heartbeat and
//    stores the sums over the other live members that the same round read.
// The others' part is as old as the last lease round (at most ttl/3); a
// member that stops heartbeating drops out of it after the ttl, as it drops
// out of the membership.
//
// Thread-safe. One orchestrator alone (embedded store, or PostgreSQL without
// sharding) has none: the dispatcher then uses its own counts and pays
// nothing.
class ClusterBacklog {
 public:
  // This member's counts of one queue, as the dispatcher passes them.
  struct OwnQueue {
    absl::string_view name;
    QueueBacklog backlog;
  };

  // --- The dispatcher's side ---

  // Replaces this member's counts by `own` (one entry per queue it knows;
  // any other queue counts zero) and sets `cluster` to each queue's totals
  // over the cluster, in the order of `own`. Queues that only other members
  // have a backlog in go to `elsewhere` (name, their totals). Both outputs
  // are cleared first (pass the same vectors each time to keep their
  // capacity).
  void Publish(absl::Span<const OwnQueue> own, std::vector<QueueBacklog>* cluster,
               std::vector<std::pair<std::string, QueueBacklog>>* elsewhere)
      ABSL_LOCKS_EXCLUDED(mutex_);

  // The other live members' totals per queue, as the last lease round read
  // them (queues with no backlog left out).
  QueueBacklogs Others() const ABSL_LOCKS_EXCLUDED(mutex_);

  // --- The load forecaster's side ---

  // This member's own forecast per queue (peak workers within 60 s and
  // 300 s, unclamped), replacing the previous round's: a queue left out
  // forecasts zero. Published with the counts in the heartbeat.
  struct OwnForecast {
    double workers_60s = 0;
    double workers_300s = 0;
  };
  void SetOwnForecasts(std::map<std::string, OwnForecast> forecasts) ABSL_LOCKS_EXCLUDED(mutex_);

  // --- The lease manager's side ---

  // This member's counts as last published, queues with no backlog left
  // out; ordered by name.
  std::map<std::string, QueueBacklog> Own() const ABSL_LOCKS_EXCLUDED(mutex_);

  // The sums over the other live members that a lease round read; replaces
  // the previous ones. Queues with no backlog may be left out.
  void SetOthers(QueueBacklogs others) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct OwnEntry {
    QueueBacklog backlog;
    uint64_t pass = 0;  // the Publish that last named the queue
  };

  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, OwnEntry> own_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, OwnForecast> own_forecasts_ ABSL_GUARDED_BY(mutex_);
  uint64_t pass_ ABSL_GUARDED_BY(mutex_) = 0;
  QueueBacklogs others_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_CLUSTER_BACKLOG_H_
