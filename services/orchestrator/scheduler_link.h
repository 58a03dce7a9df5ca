#ifndef GYRE_SERVICES_ORCHESTRATOR_SCHEDULER_LINK_H_
#define GYRE_SERVICES_ORCHESTRATOR_SCHEDULER_LINK_H_

#include <grpcpp/channel.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gyre/v1/scheduler_service.grpc.pb.h"
#include "services/orchestrator/scheduler_batch.h"

namespace gyre::orchestrator {

// The orchestrator's link to gyre-scheduler (scheduler_address): a
// background thread that, when the ready set changed, takes a batch of ready
// tasks and the agents' free capacity from the engine (under its lock, no
// I/O), asks RankAndPlace off the lock with a deadline, and hands the answer
// back to be applied under the lock as the order of the ready queues.
// Rounds are coalesced: one call in flight, at most one round per
// min_interval, none while the head of the queues is what was last ranked.
// A late, failed or missing answer changes nothing but the order: local
// dispatch never waits for it (docs/scheduler.md, "The orchestrator's
// link"). Thread-safe: Wake from any thread, the engine's lock held or not.
class SchedulerLink {
 public:
  struct Options {
    // How long one RankAndPlace may take; past it the round is dropped.
    absl::Duration deadline = absl::Seconds(2);
    // Least time between two rounds (the coalescing window).
    absl::Duration min_interval = absl::Milliseconds(100);
    // Ready tasks per batch, from the head of the queues.
    size_t max_batch_tasks = 1000;
  };
  // What the link asks of the engine (WorkflowEngine::TakeSchedulerBatch
  // and ApplySchedulerOrder); each takes the engine's lock itself.
  struct Engine {
    std::function<bool(size_t, gyre::v1::RankAndPlaceRequest*, std::vector<BatchedTask>*)>
        take_batch;
    // The order (indexes into the batch, best first) and, per batched task,
    // the rest of the answer (placement, effective priority).
    std::function<size_t(absl::Span<const BatchedTask>, absl::Span<const uint32_t>,
                         absl::Span<const TaskAnswer>)>
        apply;
  };

  // `metrics` may be null (tests). Start() begins the rounds.
  SchedulerLink(std::shared_ptr<grpc::Channel> channel, Options options, Engine engine,
                prometheus::Registry* metrics);
  ~SchedulerLink();  // Stop()
  SchedulerLink(const SchedulerLink&) = delete;
  SchedulerLink& operator=(const SchedulerLink&) = delete;

  void Start();
  // Cancels a call in flight and joins the thread; idempotent.
  void Stop();
  // The ready set may have changed: a round is due. Only signals (it runs
  // under the engine lock on the dispatch path).
  void Wake();

 private:
  void Run();
  void Round();
  bool RoundDueOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Engine engine_;
  std::unique_ptr<gyre::v1::SchedulerService::Stub> stub_;
  std::atomic<bool> pending_{false};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* in_flight_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
  // Only the link's thread reads or writes it: a warning when the
  // scheduler becomes unreachable, one line when it answers again.
  bool failing_ = false;

  prometheus::Counter* calls_ok_ = nullptr;
  prometheus::Counter* calls_failed_ = nullptr;
  prometheus::Counter* reordered_ = nullptr;
  prometheus::Histogram* latency_ = nullptr;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_SCHEDULER_LINK_H_
