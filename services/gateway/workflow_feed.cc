#include "services/gateway/workflow_feed.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/tenant.h"
#include "services/gateway/orchestrator_call.h"

namespace gyre::gateway {

namespace {

// Wait before opening the shared stream again after it failed: the
// orchestrator may be down, and a failed call returns at once.
constexpr absl::Duration kRestartDelay = absl::Seconds(1);

}  // namespace

// The shared Watch of every execution. Owns itself from Start to OnDone.
class WorkflowFeeds::Upstream : public grpc::ClientReadReactor<v1::EventBatch> {
 public:
  explicit Upstream(WorkflowFeeds* owner) : owner_(owner) {}

  void Start(v1::OrchestratorService::Stub* stub) {
    // Live events only: what happened before is read with ListExecutions.
    stub->async()->WatchBatches(&context_, &request_, this);
    StartRead(&batch_);
    StartCall();
  }

  // Called with the owner's lock held; OnDone never runs inline.
  void Cancel() {
    cancelled_ = true;
    context_.TryCancel();
  }
  bool cancelled() const { return cancelled_; }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    owner_->OnEvents(batch_);
    batch_.Clear();
    StartRead(&batch_);
  }

  void OnDone(const grpc::Status&) override {
    owner_->OnUpstreamDone(this, cancelled_);
    delete this;
  }

 private:
  WorkflowFeeds* const owner_;
  grpc::ClientContext context_;
  v1::WatchRequest request_;
  v1::EventBatch batch_;
  bool cancelled_ = false;  // guarded by the owner's lock
};

WorkflowFeeds::WorkflowFeeds(v1::OrchestratorService::Stub* watcher,
                             v1::OrchestratorService::Stub* api, FeedRegistry* feeds,
                             absl::Duration backend_timeout)
    : watcher_(watcher), api_(api), feeds_(feeds), backend_timeout_(backend_timeout) {}

WorkflowFeeds::~WorkflowFeeds() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  listeners_.clear();
  if (upstream_ != nullptr) upstream_->Cancel();
  if (restart_ != nullptr) restart_->Cancel();
  // The stream's and the alarm's callbacks use this object: wait them out.
  mu_.Await(absl::Condition(
      +[](WorkflowFeeds* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return self->live_upstreams_ == 0 && self->restart_ == nullptr;
      },
      this));
}

int64_t WorkflowFeeds::Listen(const std::string& workflow, const std::string& tenant,
                              std::function<void(const std::string&)> announce) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_listener_++;
  listeners_.emplace(id, Listener{workflow, tenant, std::move(announce)});
  if (upstream_ == nullptr && restart_ == nullptr && !stopping_) StartUpstreamLocked();
  return id;
}

void WorkflowFeeds::Unlisten(int64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
  // Nobody to tell: the orchestrator need not send every event any more.
  if (listeners_.empty() && upstream_ != nullptr && !upstream_->cancelled()) upstream_->Cancel();
}

void WorkflowFeeds::StartUpstreamLocked() {
  upstream_ = new Upstream(this);
  ++live_upstreams_;
  upstream_->Start(watcher_);
}

void WorkflowFeeds::OnEvents(const v1::EventBatch& batch) {
  std::vector<std::pair<std::function<void(const std::string&)>, const std::string*>> calls;
  {
    absl::MutexLock lock(&mu_);
    if (listeners_.empty()) return;
    for (const v1::Event& event : batch.events()) {
      if (!event.has_execution_snapshot()) continue;
      const v1::Execution& execution = event.execution_snapshot();
      for (const auto& [id, listener] : listeners_) {
        if (listener.workflow != execution.workflow()) continue;
        if (!listener.tenant.empty() && TenantOrDefault(execution.tenant()) != listener.tenant) {
          continue;
        }
        calls.emplace_back(listener.announce, &event.execution());
      }
    }
  }
  for (const auto& [announce, execution] : calls) announce(*execution);
}

void WorkflowFeeds::OnUpstreamDone(Upstream* upstream, bool cancelled) {
  {
    absl::MutexLock lock(&mu_);
    --live_upstreams_;
    if (upstream_ == upstream) upstream_ = nullptr;
    if (stopping_ || listeners_.empty()) return;
    if (cancelled) {
      // Cancelled when the last listener left, and a new one came since.
      StartUpstreamLocked();
      for (const auto& [id, listener] : listeners_) listener.announce("");
    } else if (restart_ == nullptr) {
      restart_ = std::make_unique<grpc::Alarm>();
      restart_->Set(absl::ToChronoTime(absl::Now() + kRestartDelay), [this](bool fired) {
        // All under the lock: the destructor waits for restart_ to go, and
        // the announcements only post to the subscribers' strands.
        absl::MutexLock lock(&mu_);
        // The fired alarm is kept (not destroyed inside its own callback)
        // until the next one replaces it or this object goes.
        spent_restart_ = std::move(restart_);
        if (!fired || stopping_ || listeners_.empty() || upstream_ != nullptr) return;
        StartUpstreamLocked();
        for (const auto& [id, listener] : listeners_) listener.announce("");
      });
    }
  }
}

void WorkflowFeeds::List(const std::string& workflow, const std::string& tenant, size_t max,
                         std::function<void(absl::StatusOr<std::vector<v1::Execution>>)> done) {
  struct State {
    v1::OrchestratorService::Stub* api;
    absl::Duration timeout;
    std::string workflow;
    std::string tenant;
    size_t max;
    std::vector<v1::Execution> executions;
    std::function<void(absl::StatusOr<std::vector<v1::Execution>>)> done;
    std::function<void(std::string)> next;
  };
  auto state = std::make_shared<State>();
  *state = State{api_, backend_timeout_, workflow, tenant, max, {}, std::move(done), nullptr};
  std::weak_ptr<State> weak = state;
  state->next = [weak](std::string page_token) {
    std::shared_ptr<State> state = weak.lock();
    if (state == nullptr) return;
    v1::ListExecutionsRequest request;
    request.set_workflow(state->workflow);
    request.set_page_size(1000);
    request.set_page_token(std::move(page_token));
    StartUnaryCall<v1::OrchestratorService::Stub::async_interface, v1::ListExecutionsRequest,
                   v1::ListExecutionsResponse>(
        state->api->async(), &v1::OrchestratorService::Stub::async_interface::ListExecutions,
        std::move(request), CallMetadata{"", state->tenant}, state->timeout,
        [state](absl::StatusOr<v1::ListExecutionsResponse> page) {
          if (!page.ok()) {
            auto done = std::move(state->done);
            state->next = nullptr;  // breaks the cycle
            return done(page.status());
          }
          for (v1::Execution& execution : *page->mutable_executions()) {
            if (state->executions.size() >= state->max) break;
            state->executions.push_back(std::move(execution));
          }
          if (!page->next_page_token().empty() && state->executions.size() < state->max) {
            return state->next(page->next_page_token());
          }
          auto done = std::move(state->done);
          auto executions = std::move(state->executions);
          state->next = nullptr;
          done(std::move(executions));
        });
  };
  state->next("");
}

}  // namespace gyre::gateway
