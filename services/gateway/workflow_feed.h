#ifndef GYRE_SERVICES_GATEWAY_WORKFLOW_FEED_H_
#define GYRE_SERVICES_GATEWAY_WORKFLOW_FEED_H_

#include <grpcpp/alarm.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "services/gateway/execution_feed.h"

namespace gyre::gateway {

// What /ws/workflows/{id} needs besides the per-execution feeds: which
// executions a workflow has, and which start later.
//
// Learning of new executions takes one orchestrator Watch of every
// execution (live events only), shared by every workflow subscriber of the
// gateway and open only while there is one; of its events only the
// EXECUTION_* ones (which carry the execution's workflow and tenant) are
// looked at. When that stream ends (the orchestrator cut it off because the
// gateway fell behind, or restarted), it is opened again after a second and
// every listener is told to list the workflow's executions again, so an
// execution that started in the gap is still found.
//
// Thread-safety: thread-safe; announcements run on gRPC threads, some with
// the lock held: they must only hand the news on (post it), never call back.
class WorkflowFeeds {
 public:
  // `watcher` carries the streams, `api` the unary calls; both outlive this.
  WorkflowFeeds(v1::OrchestratorService::Stub* watcher, v1::OrchestratorService::Stub* api,
                FeedRegistry* feeds, absl::Duration backend_timeout);
  ~WorkflowFeeds();
  WorkflowFeeds(const WorkflowFeeds&) = delete;
  WorkflowFeeds& operator=(const WorkflowFeeds&) = delete;

  // Calls `announce` with an execution's name ("executions/{id}") whenever
  // an execution of `workflow` ("workflows/{w}") and of `tenant` (empty:
  // any) changes state, its creation included; with an empty name when
  // announcements may have been missed (list again). Returns the id for
  // Unlisten.
  int64_t Listen(const std::string& workflow, const std::string& tenant,
                 std::function<void(const std::string& execution)> announce);
  void Unlisten(int64_t id);

  // Lists every execution of `workflow` that `tenant` may see (BASIC view),
  // page after page, at most `max` of them (the newest pages last).
  void List(const std::string& workflow, const std::string& tenant, size_t max,
            std::function<void(absl::StatusOr<std::vector<v1::Execution>>)> done);

  // The shared feed of one execution.
  std::shared_ptr<ExecutionFeed> Feed(const std::string& execution,
                                      const std::string& workflow_id) {
    return feeds_->Get(execution, workflow_id);
  }

 private:
  class Upstream;
  struct Listener {
    std::string workflow;
    std::string tenant;
    std::function<void(const std::string&)> announce;
  };
  void OnEvents(const v1::EventBatch& batch);
  void OnUpstreamDone(Upstream* upstream, bool cancelled);
  void StartUpstreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  v1::OrchestratorService::Stub* const watcher_;
  v1::OrchestratorService::Stub* const api_;
  FeedRegistry* const feeds_;
  const absl::Duration backend_timeout_;
  absl::Mutex mu_;
  absl::flat_hash_map<int64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 0;
  // The live stream, owned by itself until its OnDone; null when none.
  Upstream* upstream_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Set while a restart is pending (after a failed stream).
  std::unique_ptr<grpc::Alarm> restart_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> spent_restart_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Upstreams whose OnDone has not run yet: the destructor waits for them.
  int live_upstreams_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_WORKFLOW_FEED_H_
