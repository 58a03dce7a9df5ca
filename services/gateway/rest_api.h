#ifndef GYRE_SERVICES_GATEWAY_REST_API_H_
#define GYRE_SERVICES_GATEWAY_REST_API_H_

#include <grpcpp/grpcpp.h>

#include <boost/asio/thread_pool.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "services/gateway/audit_log.h"
#include "services/gateway/authenticator.h"
#include "services/gateway/event_subscriber.h"
#include "services/gateway/execution_feed.h"
#include "services/gateway/gateway_metrics.h"
#include "services/gateway/http_server.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/route_table.h"

namespace gyre::gateway {

// The REST API under /api/v1: authenticates each request, finds its route,
// checks the principal's role and translates the call to the
// orchestrator's gRPC API (asynchronously: no I/O thread waits for a
// backend). Replies are JSON in the proto messages' canonical mapping; every
// error is {"error": {"code", "status", "message", "details"}} with the HTTP
// status from the one shared mapping (libs/common/status_mapping.h).
//
// Thread-safety: built at start, then Handle() runs concurrently on the
// HTTP server's I/O threads; completions run on gRPC's threads.
class RestApi {
 public:
  struct Options {
    // Deadline of each backend call; past it the client gets 504.
    absl::Duration backend_timeout = absl::Seconds(10);
    // Limits of each WebSocket subscriber.
    SubscriberOptions websocket;
    // Token bucket per principal; 0 requests a minute disables it.
    int64_t rate_limit_per_minute = 1000;
    int64_t rate_limit_burst = 100;
    // Origins allowed to call from a browser (CORS); "*" allows any.
    std::vector<std::string> cors_origins;
    // gyre-optimizer; null: /api/v1/optimization/* answer 501.
    std::shared_ptr<grpc::Channel> optimizer;
    // gyre-predictor; null: /api/v1/resources/predict answers 501.
    std::shared_ptr<grpc::Channel> predictor;
    // Threads that check HTTP Basic passwords not remembered yet (Argon2id
    // takes tens of milliseconds on purpose), off the I/O threads.
    int password_workers = 2;
    // Where every mutating call is recorded; null: nowhere. Must outlive
    // the RestApi.
    AuditLog* audit_log = nullptr;
  };

  // `metrics` may be null (no metrics); it must outlive this. Event
  // streams use `watch_channel` when given, else `orchestrator`.
  RestApi(std::shared_ptr<grpc::Channel> orchestrator,
          std::shared_ptr<const Authenticator> authenticator, Options options,
          GatewayMetrics* metrics = nullptr,
          std::shared_ptr<grpc::Channel> watch_channel = nullptr);

  // The gateway's HttpHandler.
  void Handle(HttpRequest request, HttpResponder respond);

  // Every route, for the API description and its test.
  const RouteTable& routes() const { return routes_; }
  // Open WebSocket subscribers.
  int open_websockets() const { return open_websockets_->open.load(std::memory_order_relaxed); }

 private:
  using Call = std::shared_ptr<ApiCall>;
  using AsyncApi = v1::OrchestratorService::StubInterface::async_interface;

  void AddRoutes();
  // What Handle learnt about a request before authenticating it.
  struct Admission {
    absl::Time start;
    std::string request_id;
    std::shared_ptr<std::string> route_label;
    std::shared_ptr<std::string> method_label;
    std::shared_ptr<Principal> who;  // null: not audited
    bool websocket = false;
  };
  // Handle past authentication: rate limit, route, role, then the route's
  // handler. Runs on the I/O thread, or on a password worker after a hash.
  void Admit(HttpRequest request, HttpResponder respond, absl::StatusOr<Principal> principal,
             Admission admission);
  // /ws/executions/{id}: checks the execution, then upgrades.
  void HandleWebSocket(const std::vector<std::string>& segments, const Call& call);
  // /ws/workflows/{id}: checks the workflow (and its tenant), then upgrades.
  void HandleWorkflowWebSocket(const std::string& id, const Call& call);
  absl::StatusOr<Principal> Authenticate(const HttpRequest& request) const;
  // The CORS headers for `origin`, empty when it is not allowed.
  std::vector<std::pair<std::string, std::string>> CorsHeaders(absl::string_view origin) const;

  // Starts a unary orchestrator call carrying the request id.
  template <typename Request, typename Response>
  void Orchestrator(const Call& call,
                    void (AsyncApi::*method)(grpc::ClientContext*, const Request*, Response*,
                                             std::function<void(grpc::Status)>),
                    Request request, std::function<void(absl::StatusOr<Response>)> done);
  // Replies with the backend's message as JSON (or its error).
  template <typename Request, typename Response>
  void Forward(const Call& call,
               void (AsyncApi::*method)(grpc::ClientContext*, const Request*, Response*,
                                        std::function<void(grpc::Status)>),
               Request request, int http_status = 200);

  // Parses a workflow definition from a JSON or YAML body; with YAML that
  // names unknown dependencies, parses again with the task library.
  void DecodeDefinition(const Call& call,
                        std::function<void(absl::StatusOr<v1::WorkflowDefinition>)> done);

  void CreateWorkflow(const Call& call);
  void ListWorkflows(const Call& call);
  void GetWorkflow(const Call& call);
  void UpdateWorkflow(const Call& call);
  void DeleteWorkflow(const Call& call);
  void ExecuteWorkflow(const Call& call);
  void WorkflowStatus(const Call& call);
  void ListExecutions(const Call& call);
  void GetExecution(const Call& call);
  void PauseExecution(const Call& call);
  void ResumeExecution(const Call& call);
  void CancelExecution(const Call& call);
  void GetTaskLogs(const Call& call);
  void ScheduleOutcome(const Call& call);
  void UpdatePriority(const Call& call);
  void Ready(const Call& call);
  void WorkflowCapacity(const Call& call);
  // POST /optimization/analyze and /apply: the JSON body is the optimizer's
  // request, forwarded once every workflow and execution it names is the
  // principal's tenant's.
  void AnalyzeWorkflow(const Call& call);
  void ApplyOptimizations(const Call& call);
  // POST /resources/predict: the JSON body is the predictor's
  // PredictResourcesRequest, forwarded with its workflow only when that is
  // the principal's tenant's.
  void PredictResources(const Call& call);
  // The optimizer and the predictor know nothing of tenants (the optimizer
  // reads and writes through the orchestrator with no tenant), so the
  // gateway looks up each of `names` ("workflows/{w}[/versions/{v}]",
  // "executions/{e}") as the principal first: `done` gets OK, or the first
  // failure (NOT_FOUND for another tenant's, as on every other route).
  void CheckTenantSees(const Call& call, std::vector<std::string> names,
                       std::function<void(absl::Status)> done);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::OrchestratorService::Stub> orchestrator_;
  std::unique_ptr<v1::OrchestratorService::Stub> watcher_;  // for the feeds
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<v1::OptimizerService::Stub> optimizer_;  // null without one
  std::unique_ptr<v1::PredictorService::Stub> predictor_;  // null without one
  std::shared_ptr<const Authenticator> authenticator_;
  Options options_;
  RouteTable routes_;
  FeedRegistry feeds_;
  // After feeds_ (it uses them), so destroyed before them.
  WorkflowFeeds workflows_;
  GatewayMetrics* const metrics_;
  RateLimiter rate_limiter_;
  std::shared_ptr<SubscriberCount> open_websockets_ = std::make_shared<SubscriberCount>();
  // Last, so joined first: its jobs use the members above.
  boost::asio::thread_pool password_workers_;
};

// Replies with a JSON body.
HttpReply JsonReply(int status, std::string body);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_REST_API_H_
