#include "services/gateway/rest_api.h"

#include <atomic>

#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "absl/algorithm/container.h"
#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/server/api_service_module.h"
#include "libs/workflow/workflow_parser.h"
#include "services/gateway/auth_failure.h"
#include "services/gateway/json_body.h"
#include "services/gateway/openapi_document.h"
#include "services/gateway/orchestrator_call.h"

namespace gyre::gateway {

namespace {

constexpr absl::string_view kApiPrefix = "/api/v1";
// Path parameters become resource names: bounded, and never a '/' that
// would name a different resource.
constexpr size_t kMaxParamBytes = 256;
constexpr size_t kMaxRequestIdBytes = 128;
// Workflows and executions one optimizer request may name (a workflow or an
// execution and the optimizer's 100 history executions).
constexpr size_t kMaxNamedResources = 101;

bool IsValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

std::string NewRequestId() {
  thread_local absl::BitGen random;
  return absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(random), absl::kZeroPad16),
                      absl::Hex(absl::Uniform<uint64_t>(random), absl::kZeroPad16));
}

// The media type of a Content-Type header, lower case, without parameters.
std::string MediaType(absl::string_view content_type) {
  return absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
}

bool IsYaml(absl::string_view media_type) {
  return media_type == "application/yaml" || media_type == "application/x-yaml" ||
         media_type == "text/yaml";
}

// The body's media type must be JSON (or, where `yaml_too`, YAML); an
// empty body passes when `empty_ok`.
absl::Status CheckBodyType(const HttpRequest& request, bool yaml_too, bool empty_ok) {
  if (request.body.empty() && empty_ok) return absl::OkStatus();
  const std::string type = MediaType(request.Header("content-type"));
  if (type == "application/json" || (yaml_too && IsYaml(type))) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported Content-Type \"", type.empty() ? "(none)" : type,
                   "\"; send application/json", yaml_too ? " or application/yaml" : ""));
}

HttpReply UnsupportedMediaType(const absl::Status& status) {
  return JsonError(415, absl::StatusCode::kInvalidArgument, status.message());
}

// A definition the validator refused: 422 with the report.
HttpReply InvalidDefinition(absl::string_view message) {
  return JsonError(
      422, absl::StatusCode::kInvalidArgument,
      absl::StrCat("invalid workflow definition: ", message),
      absl::StrCat("{\"validation\":{\"valid\":false,\"errors\":[", JsonString(message), "]}}"));
}

absl::StatusOr<int32_t> IntQuery(const ApiCall& call, absl::string_view name) {
  const std::string value = call.Query(name);
  int32_t number = 0;
  if (value.empty()) return 0;
  if (!absl::SimpleAtoi(value, &number)) {
    return absl::InvalidArgumentError(
        absl::StrCat("query parameter ", name, "=\"", value, "\" is not an integer"));
  }
  return number;
}

std::string RfcTime(const google::protobuf::Timestamp& time) {
  return absl::FormatTime(absl::RFC3339_full,
                          absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos()),
                          absl::UTCTimeZone());
}

// "workflows/etl" -> "etl".
absl::string_view IdOf(absl::string_view name) {
  const size_t slash = name.rfind('/');
  return slash == absl::string_view::npos ? name : name.substr(slash + 1);
}

// The reply to a started execution: where to follow it.
std::string StartedExecutionJson(const v1::Execution& execution) {
  const absl::string_view id = IdOf(execution.name());
  return absl::StrCat("{\"execution_id\":", JsonString(id),
                      ",\"name\":", JsonString(execution.name()),
                      ",\"state\":", JsonString(v1::ExecutionState_Name(execution.state())),
                      ",\"url\":", JsonString(absl::StrCat(kApiPrefix, "/executions/", id)),
                      ",\"execution\":", ToJson(execution), "}");
}

// Moves the members of a body's "options" object up beside "context", so
// {"context": {...}, "options": {"priority": 80}} reads as the
// StartExecutionRequest it stands for.
absl::StatusOr<std::string> FlattenOptions(absl::string_view body) {
  if (body.empty()) return std::string("{}");
  boost::json::error_code error;
  boost::json::value value =
      boost::json::parse(boost::json::string_view(body.data(), body.size()), error);
  if (error || !value.is_object()) {
    return absl::InvalidArgumentError("request body must be a JSON object");
  }
  boost::json::object& object = value.as_object();
  if (auto* options = object.if_contains("options")) {
    if (!options->is_object()) return absl::InvalidArgumentError("\"options\" must be an object");
    boost::json::object lifted = options->as_object();
    object.erase("options");
    for (auto& [key, member] : lifted) object[key] = member;
  }
  return boost::json::serialize(value);
}

// How POST and PUT /workflows answer: the stored version with its
// validation report, or 422 with the report when the orchestrator found it
// invalid.
HttpReply StoredWorkflowReply(int status, const absl::StatusOr<v1::WorkflowDefinition>& stored) {
  if (!stored.ok()) {
    return stored.status().code() == absl::StatusCode::kInvalidArgument
               ? InvalidDefinition(stored.status().message())
               : JsonError(stored.status());
  }
  return JsonReply(
      status,
      absl::StrCat("{\"id\":", JsonString(IdOf(stored->name())),
                   ",\"name\":", JsonString(stored->name()), ",\"version\":", stored->version(),
                   ",\"status\":\"validated\",\"validation\":{\"valid\":true,"
                   "\"tasks\":",
                   stored->tasks_size(), ",\"errors\":[]},\"workflow\":", ToJson(*stored), "}"));
}

}  // namespace

HttpReply JsonReply(int status, std::string body) {
  return HttpReply{status, "application/json", std::move(body), {}};
}

RestApi::RestApi(std::shared_ptr<grpc::Channel> orchestrator,
                 std::shared_ptr<const Authenticator> authenticator, Options options,
                 GatewayMetrics* metrics, std::shared_ptr<grpc::Channel> watch_channel)
    : channel_(std::move(orchestrator)),
      orchestrator_(v1::OrchestratorService::NewStub(channel_)),
      watcher_(
          v1::OrchestratorService::NewStub(watch_channel != nullptr ? watch_channel : channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)),
      authenticator_(std::move(authenticator)),
      options_(options),
      feeds_(watcher_.get(), metrics != nullptr ? &metrics->execution_streams() : nullptr),
      workflows_(watcher_.get(), orchestrator_.get(), &feeds_, options_.backend_timeout),
      metrics_(metrics),
      rate_limiter_(options_.rate_limit_per_minute, options_.rate_limit_burst),
      password_workers_(std::max(1, options_.password_workers)) {
  if (options_.optimizer != nullptr) optimizer_ = v1::OptimizerService::NewStub(options_.optimizer);
  if (options_.predictor != nullptr) predictor_ = v1::PredictorService::NewStub(options_.predictor);
  if (metrics_ != nullptr) open_websockets_->gauge = &metrics_->websocket_subscribers();
  AddRoutes();
}

void RestApi::AddRoutes() {
  auto add = [this](const char* method, const std::string& path, Role role,
                    void (RestApi::*handler)(const Call&)) {
    routes_.Add({method, absl::StrCat(kApiPrefix, path), role,
                 [this, handler](Call call) { (this->*handler)(call); }});
  };
  auto fixed = [this](const char* method, const std::string& path, Role role, ApiHandler handler) {
    routes_.Add({method, absl::StrCat(kApiPrefix, path), role, std::move(handler)});
  };
  add("POST", "/workflows", Role::kOperator, &RestApi::CreateWorkflow);
  add("GET", "/workflows", Role::kViewer, &RestApi::ListWorkflows);
  add("GET", "/workflows/{id}", Role::kViewer, &RestApi::GetWorkflow);
  add("PUT", "/workflows/{id}", Role::kOperator, &RestApi::UpdateWorkflow);
  add("DELETE", "/workflows/{id}", Role::kAdmin, &RestApi::DeleteWorkflow);
  add("POST", "/workflows/{id}/execute", Role::kOperator, &RestApi::ExecuteWorkflow);
  add("GET", "/workflows/{id}/status", Role::kViewer, &RestApi::WorkflowStatus);
  add("GET", "/executions", Role::kViewer, &RestApi::ListExecutions);
  add("GET", "/executions/{id}", Role::kViewer, &RestApi::GetExecution);
  add("POST", "/executions/{id}/pause", Role::kOperator, &RestApi::PauseExecution);
  add("POST", "/executions/{id}/resume", Role::kOperator, &RestApi::ResumeExecution);
  add("POST", "/executions/{id}/cancel", Role::kOperator, &RestApi::CancelExecution);
  add("GET", "/executions/{id}/tasks/{task}/logs", Role::kViewer, &RestApi::GetTaskLogs);
  add("POST", "/scheduling", Role::kOperator, &RestApi::ScheduleOutcome);
  add("PUT", "/scheduling/{execution}/{task}/priority", Role::kOperator, &RestApi::UpdatePriority);
  fixed("GET", "/queues", Role::kViewer,
        [this](Call call) { Forward(call, &AsyncApi::ListQueues, v1::ListQueuesRequest()); });
  fixed("GET", "/agents", Role::kViewer,
        [this](Call call) { Forward(call, &AsyncApi::ListAgents, v1::ListAgentsRequest()); });
  if (optimizer_ != nullptr) {
    add("POST", "/optimization/analyze", Role::kOperator, &RestApi::AnalyzeWorkflow);
    add("POST", "/optimization/apply", Role::kOperator, &RestApi::ApplyOptimizations);
  }
  if (predictor_ != nullptr) {
    add("POST", "/resources/predict", Role::kOperator, &RestApi::PredictResources);
  }
  // Without their service's address these answer UNIMPLEMENTED: say so
  // plainly rather than forward a body nowhere or pretend success.
  std::vector<std::pair<std::string, std::string>> unbuilt;
  if (predictor_ == nullptr) {
    unbuilt.push_back(
        {"/resources/predict", "the predictor's PredictResources (no predictor_address)"});
  }
  if (optimizer_ == nullptr) {
    unbuilt.push_back(
        {"/optimization/analyze", "the optimizer's AnalyzeWorkflow (no optimizer_address)"});
    unbuilt.push_back(
        {"/optimization/apply", "the optimizer's ApplyOptimizations (no optimizer_address)"});
  }
  for (const auto& [path, what] : unbuilt) {
    fixed("POST", path, Role::kOperator, [path = path, what = what](Call call) {
      call->respond(JsonError(absl::UnimplementedError(
          absl::StrCat("POST ", kApiPrefix, path, ": ", what,
                       " is not built yet in this version of Gyre; nothing was done"))));
    });
  }
  fixed("GET", "/openapi.json", Role::kViewer,
        [](Call call) { call->respond(JsonReply(200, std::string(OpenApiDocument()))); });
  fixed("GET", "/health", Role::kViewer,
        [](Call call) { call->respond(JsonReply(200, "{\"status\":\"ok\"}")); });
  add("GET", "/ready", Role::kViewer, &RestApi::Ready);
  add("GET", "/workflow-capacity", Role::kViewer, &RestApi::WorkflowCapacity);
}

absl::StatusOr<Principal> RestApi::Authenticate(const HttpRequest& request) const {
  return authenticator_->Authenticate(request.Header("x-api-key"), request.Header("authorization"),
                                      absl::Now());
}

std::vector<std::pair<std::string, std::string>> RestApi::CorsHeaders(
    absl::string_view origin) const {
  if (origin.empty()) return {};
  const bool allowed = absl::c_any_of(options_.cors_origins, [origin](const std::string& entry) {
    return entry == "*" || entry == origin;
  });
  if (!allowed) return {};
  return {{"Access-Control-Allow-Origin", std::string(origin)},
          {"Vary", "Origin"},
          {"Access-Control-Expose-Headers", "X-Request-Id, Retry-After"}};
}

void RestApi::Handle(HttpRequest request, HttpResponder respond) {
  const absl::Time start = absl::Now();
  std::string request_id(request.Header("x-request-id"));
  if (!IsValidRequestId(request_id)) request_id = NewRequestId();
  // The route template once known, for the metrics' bounded label.
  auto route_label = std::make_shared<std::string>("unmatched");
  auto method_label = std::make_shared<std::string>("other");
  // A mutating call is audited: who asked (once known) and what, by route.
  // Reads, most of the traffic, allocate nothing for it.
  const bool audited =
      options_.audit_log != nullptr && (request.method == "POST" || request.method == "PUT" ||
                                        request.method == "PATCH" || request.method == "DELETE");
  auto who = audited ? std::make_shared<Principal>() : nullptr;
  auto action =
      audited ? std::make_shared<std::string>(absl::StrCat(request.method, " unmatched")) : nullptr;
  // Every answer echoes the request id, carries the CORS headers of an
  // allowed origin, and is counted (and audited when it changes something).
  respond = [respond = std::move(respond), request_id, start, route_label, method_label, who,
             action, audit = audited ? options_.audit_log : nullptr,
             target = audited ? request.target.substr(0, request.target.find('?')) : std::string(),
             cors = CorsHeaders(request.Header("origin")), metrics = metrics_](HttpReply reply) {
    reply.headers.emplace_back("X-Request-Id", request_id);
    for (const auto& header : cors) reply.headers.push_back(header);
    if (metrics != nullptr) {
      metrics->Request(*route_label, *method_label, reply.status, absl::Now() - start);
    }
    if (audit != nullptr) {
      audit->Record(
          {absl::Now(), who->name, who->tenant, *action, target, reply.status, request_id});
    }
    respond(std::move(reply));
  };
  if (request.method == "OPTIONS" && !request.Header("access-control-request-method").empty()) {
    // A browser's preflight carries no credentials: answered before auth.
    HttpReply reply{204, "", "", {}};
    if (!CorsHeaders(request.Header("origin")).empty()) {
      reply.headers = {
          {"Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS"},
          {"Access-Control-Allow-Headers", "Authorization, X-API-Key, Content-Type, X-Request-Id"},
          {"Access-Control-Max-Age", "600"}};
    }
    respond(std::move(reply));
    return;
  }

  auto url = boost::urls::parse_origin_form(request.target);
  if (!url) {
    respond(JsonError(absl::InvalidArgumentError("the request target is not a valid URL path")));
    return;
  }
  std::vector<std::string> segments;
  for (auto segment : url->segments()) segments.emplace_back(segment);
  const std::string path = url->path();
  if (path == "/healthz" || path == "/readyz") {
    // Probes of the process itself: no credentials, nothing revealed.
    respond(JsonReply(200, "{\"status\":\"ok\"}"));
    return;
  }

  if (audited) {
    // Named by its route even when refused before routing (401): the
    // action label stays bounded by the route table.
    if (auto match = routes_.Find(request.method, segments); match.ok()) {
      *action = absl::StrCat(request.method, " ", match->route->path_template);
    }
  }
  const bool websocket = !segments.empty() && segments[0] == "ws";
  if (websocket) {
    *route_label = segments.size() > 1 && segments[1] == "workflows" ? "/ws/workflows/{id}"
                                                                     : "/ws/executions/{id}";
  }
  if (websocket && request.Header("x-api-key").empty() && request.Header("authorization").empty()) {
    // Browsers cannot set headers on a WebSocket: the key may come as
    // ?access_token= (never logged, like every credential).
    for (auto param : url->params()) {
      if (param.key == "access_token") request.headers["x-api-key"] = std::string(param.value);
    }
  }
  Admission admission{start, std::move(request_id), route_label, method_label, who, websocket};
  if (authenticator_->NeedsPasswordHash(request.Header("x-api-key"),
                                        request.Header("authorization"))) {
    // Argon2id is slow on purpose: hash on a password worker and continue
    // there (respond may be called from any thread), the I/O thread free.
    boost::asio::post(
        password_workers_, [this, request = std::move(request), respond = std::move(respond),
                            admission = std::move(admission)]() mutable {
          absl::StatusOr<Principal> principal = Authenticate(request);
          Admit(std::move(request), std::move(respond), std::move(principal), std::move(admission));
        });
    return;
  }
  absl::StatusOr<Principal> principal = Authenticate(request);
  Admit(std::move(request), std::move(respond), std::move(principal), std::move(admission));
}

void RestApi::Admit(HttpRequest request, HttpResponder respond, absl::StatusOr<Principal> principal,
                    Admission admission) {
  const absl::Time start = admission.start;
  std::string request_id = std::move(admission.request_id);
  const std::shared_ptr<std::string>& route_label = admission.route_label;
  const std::shared_ptr<std::string>& method_label = admission.method_label;
  const std::shared_ptr<Principal>& who = admission.who;
  const bool websocket = admission.websocket;
  // Parsed again (Handle checked it): the view points into request.target.
  auto url = boost::urls::parse_origin_form(request.target);
  std::vector<std::string> segments;
  for (auto segment : url->segments()) segments.emplace_back(segment);
  if (!principal.ok()) {
    if (metrics_ != nullptr) metrics_->AuthFailure(AuthFailureReason(principal.status()));
    HttpReply reply = JsonError(principal.status());
    reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"gyre\"");
    respond(std::move(reply));
    return;
  }
  if (who != nullptr) *who = *principal;
  // Past authentication, so the bucket is the principal's.
  auto rate_limited = [&]() {
    if (absl::Duration wait = rate_limiter_.Take(principal->name, start);
        wait > absl::ZeroDuration()) {
      if (metrics_ != nullptr) metrics_->RateLimited();
      const int64_t seconds =
          std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))));
      HttpReply reply = JsonError(absl::ResourceExhaustedError(
          absl::StrCat("rate limit of ", options_.rate_limit_per_minute,
                       " requests a minute (burst ", options_.rate_limit_burst, ") reached for ",
                       principal->name, "; retry in ", seconds, " s")));
      reply.headers.emplace_back("Retry-After", absl::StrCat(seconds));
      respond(std::move(reply));
      return true;
    }
    return false;
  };
  if (websocket) {
    if (rate_limited()) return;
    auto call = std::make_shared<ApiCall>();
    for (auto param : url->params()) {
      call->query[param.key].push_back(param.has_value ? std::string(param.value) : std::string());
    }
    call->request = std::move(request);
    call->principal = *std::move(principal);
    call->request_id = std::move(request_id);
    call->respond = std::move(respond);
    HandleWebSocket(segments, call);
    return;
  }
  absl::StatusOr<RouteTable::Match> match = routes_.Find(request.method, segments);
  if (!match.ok()) {
    if (rate_limited()) return;  // unknown paths count too
    respond(match.status().code() == absl::StatusCode::kFailedPrecondition
                ? JsonError(405, absl::StatusCode::kInvalidArgument, match.status().message())
                : JsonError(match.status()));
    return;
  }
  const Route& route = *match->route;
  *route_label = route.path_template;
  *method_label = route.method;
  if (rate_limited()) return;
  if (principal->role < route.min_role) {
    respond(JsonError(absl::PermissionDeniedError(absl::StrCat(
        request.method, " ", route.path_template, " needs the ", RoleName(route.min_role),
        " role; ", principal->name, " has ", RoleName(principal->role)))));
    return;
  }
  for (const auto& [name, value] : match->params) {
    if (value.size() > kMaxParamBytes || absl::StrContains(value, '/')) {
      respond(JsonError(
          absl::InvalidArgumentError(absl::StrCat("path parameter ", name, " must be at most ",
                                                  kMaxParamBytes, " bytes and contain no '/'"))));
      return;
    }
  }

  auto call = std::make_shared<ApiCall>();
  for (auto param : url->params()) {
    call->query[param.key].push_back(param.has_value ? std::string(param.value) : std::string());
  }
  call->params = std::move(match->params);
  call->request = std::move(request);
  call->principal = *std::move(principal);
  call->request_id = std::move(request_id);
  call->route = route.path_template;
  call->respond = std::move(respond);
  route.handler(std::move(call));
}

void RestApi::HandleWebSocket(const std::vector<std::string>& segments, const Call& call) {
  if (segments.size() == 3 && segments[1] == "workflows" && !segments[2].empty() &&
      segments[2].size() <= kMaxParamBytes && !absl::StrContains(segments[2], '/')) {
    return HandleWorkflowWebSocket(segments[2], call);
  }
  if (segments.size() != 3 || segments[1] != "executions" || segments[2].empty() ||
      segments[2].size() > kMaxParamBytes || absl::StrContains(segments[2], '/')) {
    return call->respond(JsonError(absl::NotFoundError(
        "no WebSocket route here: follow an execution at /ws/executions/{id} or every "
        "execution of a workflow at /ws/workflows/{id}")));
  }
  if (!call->request.upgrade) {
    return call->respond(JsonError(426, absl::StatusCode::kFailedPrecondition,
                                   "this is a WebSocket endpoint: send an Upgrade request"));
  }
  int64_t since = 0;
  if (const std::string value = call->Query("since");
      !value.empty() && (!absl::SimpleAtoi(value, &since) || since < 0)) {
    return call->respond(JsonError(absl::InvalidArgumentError(
        absl::StrCat("since=\"", value, "\": expected a sequence number >= 0"))));
  }
  v1::GetExecutionRequest request;
  request.set_name(absl::StrCat("executions/", segments[2]));
  // Checked before the upgrade, so a wrong id is a plain 404.
  Orchestrator<v1::GetExecutionRequest, v1::Execution>(
      call, &AsyncApi::GetExecution, std::move(request),
      [this, call, since](absl::StatusOr<v1::Execution> execution) {
        if (!execution.ok()) return call->respond(JsonError(execution.status()));
        std::shared_ptr<ExecutionFeed> feed =
            feeds_.Get(execution->name(), std::string(IdOf(execution->workflow())));
        call->request.upgrade(
            [feed, since, options = options_.websocket, open = open_websockets_](
                HttpStream stream,
                boost::beast::http::request<boost::beast::http::string_body> request) mutable {
              StartEventSubscriber(std::move(stream), std::move(request), std::move(feed), since,
                                   options, std::move(open));
            });
      });
}

void RestApi::HandleWorkflowWebSocket(const std::string& id, const Call& call) {
  if (!call->request.upgrade) {
    return call->respond(JsonError(426, absl::StatusCode::kFailedPrecondition,
                                   "this is a WebSocket endpoint: send an Upgrade request"));
  }
  WorkflowSubscription subscription;
  subscription.workflow = absl::StrCat("workflows/", id);
  subscription.workflow_id = id;
  subscription.tenant = call->principal.tenant;
  // since=ID:N,ID:N: per execution, as sequences are.
  if (const std::string value = call->Query("since"); !value.empty()) {
    for (absl::string_view entry : absl::StrSplit(value, ',')) {
      std::pair<absl::string_view, absl::string_view> pair = absl::StrSplit(entry, ':');
      int64_t sequence = 0;
      if (pair.first.empty() || pair.first.size() > kMaxParamBytes ||
          !absl::SimpleAtoi(pair.second, &sequence) || sequence < 0) {
        return call->respond(JsonError(absl::InvalidArgumentError(absl::StrCat(
            "since=\"", value.substr(0, 200),
            "\": expected EXECUTION_ID:SEQUENCE[,EXECUTION_ID:SEQUENCE...] with sequences >= 0"))));
      }
      subscription.since[pair.first] = sequence;
    }
    if (static_cast<int>(subscription.since.size()) > options_.websocket.max_workflow_executions) {
      return call->respond(JsonError(absl::InvalidArgumentError(
          absl::StrCat("since names ", subscription.since.size(), " executions; at most ",
                       options_.websocket.max_workflow_executions,
                       " (max_workflow_executions) are followed at once"))));
    }
  }
  v1::GetWorkflowRequest request;
  request.set_name(subscription.workflow);
  // Checked before the upgrade, so an unknown workflow (or another
  // tenant's) is a plain 404.
  Orchestrator<v1::GetWorkflowRequest, v1::WorkflowDefinition>(
      call, &AsyncApi::GetWorkflow, std::move(request),
      [this, call, subscription = std::move(subscription)](
          absl::StatusOr<v1::WorkflowDefinition> workflow) mutable {
        if (!workflow.ok()) return call->respond(JsonError(workflow.status()));
        call->request.upgrade(
            [this, subscription = std::move(subscription), options = options_.websocket,
             open = open_websockets_](
                HttpStream stream,
                boost::beast::http::request<boost::beast::http::string_body> request) mutable {
              StartWorkflowSubscriber(std::move(stream), std::move(request), &workflows_,
                                      std::move(subscription), options, std::move(open));
            });
      });
}

template <typename Request, typename Response>
void RestApi::Orchestrator(const Call& call,
                           void (AsyncApi::*method)(grpc::ClientContext*, const Request*, Response*,
                                                    std::function<void(grpc::Status)>),
                           Request request, std::function<void(absl::StatusOr<Response>)> done) {
  StartUnaryCall<AsyncApi, Request, Response>(
      orchestrator_->async(), method, std::move(request),
      CallMetadata{call->request_id, call->principal.tenant}, options_.backend_timeout,
      std::move(done));
}

template <typename Request, typename Response>
void RestApi::Forward(const Call& call,
                      void (AsyncApi::*method)(grpc::ClientContext*, const Request*, Response*,
                                               std::function<void(grpc::Status)>),
                      Request request, int http_status) {
  Orchestrator<Request, Response>(call, method, std::move(request),
                                  [call, http_status](absl::StatusOr<Response> response) {
                                    if (!response.ok())
                                      return call->respond(JsonError(response.status()));
                                    call->respond(JsonReply(http_status, ToJson(*response)));
                                  });
}

void RestApi::DecodeDefinition(const Call& call,
                               std::function<void(absl::StatusOr<v1::WorkflowDefinition>)> done) {
  const std::string type = MediaType(call->request.Header("content-type"));
  if (!IsYaml(type)) {
    v1::WorkflowDefinition definition;
    absl::Status status = FromJson(call->request.body, &definition);
    if (!status.ok()) return done(status);
    return done(std::move(definition));
  }
  // The same parser and positions as `gyre validate`.
  absl::StatusOr<v1::WorkflowDefinition> alone =
      workflow::ParseWorkflowYaml(call->request.body, "request.yaml");
  if (alone.ok() || !absl::StrContains(alone.status().message(), "unknown dependency")) {
    return done(std::move(alone));
  }
  // Only a dependency the body does not define can be the library's.
  Orchestrator<v1::GetTaskLibraryRequest, v1::WorkflowDefinition>(
      call, &AsyncApi::GetTaskLibrary, v1::GetTaskLibraryRequest(),
      [call, done, alone = alone.status()](absl::StatusOr<v1::WorkflowDefinition> library) {
        if (!library.ok()) return done(alone);
        done(workflow::ParseWorkflowYaml(call->request.body, "request.yaml", &*library));
      });
}

void RestApi::CreateWorkflow(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, true, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  DecodeDefinition(call, [this, call](absl::StatusOr<v1::WorkflowDefinition> definition) {
    if (!definition.ok()) return call->respond(InvalidDefinition(definition.status().message()));
    v1::CreateWorkflowRequest request;
    *request.mutable_workflow() = *std::move(definition);
    Orchestrator<v1::CreateWorkflowRequest, v1::WorkflowDefinition>(
        call, &AsyncApi::CreateWorkflow, std::move(request),
        [call](absl::StatusOr<v1::WorkflowDefinition> stored) {
          call->respond(StoredWorkflowReply(201, stored));
        });
  });
}

void RestApi::ListWorkflows(const Call& call) {
  v1::ListWorkflowsRequest request;
  absl::StatusOr<int32_t> page_size = IntQuery(*call, "page_size");
  if (!page_size.ok()) return call->respond(JsonError(page_size.status()));
  request.set_page_size(*page_size);
  request.set_page_token(call->Query("page_token"));
  Forward(call, &AsyncApi::ListWorkflows, std::move(request));
}

void RestApi::GetWorkflow(const Call& call) {
  v1::GetWorkflowRequest request;
  request.set_name(absl::StrCat("workflows/", call->params["id"]));
  Orchestrator<v1::GetWorkflowRequest, v1::WorkflowDefinition>(
      call, &AsyncApi::GetWorkflow, std::move(request),
      [this, call](absl::StatusOr<v1::WorkflowDefinition> latest) {
        if (!latest.ok()) return call->respond(JsonError(latest.status()));
        v1::ListWorkflowVersionsRequest versions;
        versions.set_name(latest->name());
        versions.set_page_size(1000);
        Orchestrator<v1::ListWorkflowVersionsRequest, v1::ListWorkflowsResponse>(
            call, &AsyncApi::ListWorkflowVersions, std::move(versions),
            [call, latest = *std::move(latest)](absl::StatusOr<v1::ListWorkflowsResponse> list) {
              if (!list.ok()) return call->respond(JsonError(list.status()));
              std::string body = absl::StrCat("{\"workflow\":", ToJson(latest), ",\"versions\":[");
              for (int i = 0; i < list->workflows_size(); ++i) {
                const v1::WorkflowDefinition& version = list->workflows(i);
                absl::StrAppend(&body, i == 0 ? "" : ",", "{\"version\":", version.version(),
                                ",\"create_time\":", JsonString(RfcTime(version.create_time())),
                                ",\"tasks\":", version.tasks_size(), "}");
              }
              body.append("]}");
              call->respond(JsonReply(200, std::move(body)));
            });
      });
}

void RestApi::UpdateWorkflow(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, true, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  DecodeDefinition(call, [this, call](absl::StatusOr<v1::WorkflowDefinition> definition) {
    if (!definition.ok()) return call->respond(InvalidDefinition(definition.status().message()));
    const std::string name = absl::StrCat("workflows/", call->params["id"]);
    if (!definition->name().empty() && definition->name() != name &&
        IdOf(definition->name()) != call->params["id"]) {
      return call->respond(JsonError(absl::InvalidArgumentError(absl::StrCat(
          "the body names workflow \"", definition->name(), "\" but the path names ", name))));
    }
    v1::UpdateWorkflowRequest request;
    *request.mutable_workflow() = *std::move(definition);
    request.mutable_workflow()->set_name(name);
    Orchestrator<v1::UpdateWorkflowRequest, v1::WorkflowDefinition>(
        call, &AsyncApi::UpdateWorkflow, std::move(request),
        [call](absl::StatusOr<v1::WorkflowDefinition> stored) {
          call->respond(StoredWorkflowReply(200, stored));
        });
  });
}

void RestApi::DeleteWorkflow(const Call& call) {
  v1::DeleteWorkflowRequest request;
  request.set_name(absl::StrCat("workflows/", call->params["id"]));
  Orchestrator<v1::DeleteWorkflowRequest, google::protobuf::Empty>(
      call, &AsyncApi::DeleteWorkflow, request,
      [call, name = request.name()](absl::StatusOr<google::protobuf::Empty> deleted) {
        if (!deleted.ok()) return call->respond(JsonError(deleted.status()));
        call->respond(JsonReply(200, absl::StrCat("{\"deleted\":", JsonString(name), "}")));
      });
}

void RestApi::ExecuteWorkflow(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, true); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  absl::StatusOr<std::string> body = FlattenOptions(call->request.body);
  if (!body.ok()) return call->respond(JsonError(body.status()));
  v1::StartExecutionRequest request;
  if (absl::Status status = FromJson(*body, &request); !status.ok()) {
    return call->respond(JsonError(status));
  }
  if (request.source_case() != v1::StartExecutionRequest::SOURCE_NOT_SET) {
    return call->respond(JsonError(absl::InvalidArgumentError(
        "the workflow to execute is the one in the path; the body must not name another")));
  }
  request.set_workflow(absl::StrCat("workflows/", call->params["id"]));
  Orchestrator<v1::StartExecutionRequest, v1::Execution>(
      call, &AsyncApi::StartExecution, std::move(request),
      [call](absl::StatusOr<v1::Execution> execution) {
        if (!execution.ok()) return call->respond(JsonError(execution.status()));
        call->respond(JsonReply(201, StartedExecutionJson(*execution)));
      });
}

void RestApi::WorkflowStatus(const Call& call) {
  v1::GetWorkflowRequest request;
  request.set_name(absl::StrCat("workflows/", call->params["id"]));
  absl::StatusOr<int32_t> limit = IntQuery(*call, "limit");
  if (!limit.ok()) return call->respond(JsonError(limit.status()));
  Orchestrator<v1::GetWorkflowRequest, v1::WorkflowDefinition>(
      call, &AsyncApi::GetWorkflow, std::move(request),
      [this, call, limit = *limit](absl::StatusOr<v1::WorkflowDefinition> latest) {
        if (!latest.ok()) return call->respond(JsonError(latest.status()));
        v1::ListExecutionsRequest list;
        list.set_workflow(latest->name());
        list.set_page_size(limit > 0 ? limit : 20);
        Orchestrator<v1::ListExecutionsRequest, v1::ListExecutionsResponse>(
            call, &AsyncApi::ListExecutions, std::move(list),
            [call, name = latest->name(),
             version = latest->version()](absl::StatusOr<v1::ListExecutionsResponse> recent) {
              if (!recent.ok()) return call->respond(JsonError(recent.status()));
              std::map<std::string, int> counts;
              for (const v1::Execution& execution : recent->executions()) {
                ++counts[v1::ExecutionState_Name(execution.state())];
              }
              std::string body = absl::StrCat("{\"workflow\":", JsonString(name),
                                              ",\"version\":", version, ",\"recent_states\":{");
              bool first = true;
              for (const auto& [state, count] : counts) {
                absl::StrAppend(&body, first ? "" : ",", JsonString(state), ":", count);
                first = false;
              }
              absl::StrAppend(&body, "},\"executions\":", ToJson(*recent), "}");
              call->respond(JsonReply(200, std::move(body)));
            });
      });
}

void RestApi::ListExecutions(const Call& call) {
  v1::ListExecutionsRequest request;
  if (std::string workflow = call->Query("workflow"); !workflow.empty()) {
    request.set_workflow(absl::StartsWith(workflow, "workflows/") ? workflow
                                                                  : "workflows/" + workflow);
  }
  auto states = call->query.find("state");
  if (states != call->query.end()) {
    for (const std::string& value : states->second) {
      for (absl::string_view word : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        std::string name = absl::AsciiStrToUpper(word);
        if (!absl::StartsWith(name, "EXECUTION_")) name = "EXECUTION_" + name;
        v1::ExecutionState state;
        if (!v1::ExecutionState_Parse(name, &state) || state == v1::EXECUTION_STATE_UNSPECIFIED) {
          return call->respond(JsonError(absl::InvalidArgumentError(absl::StrCat(
              "unknown state \"", word,
              "\" (expected pending, running, paused, succeeded, failed or cancelled)"))));
        }
        request.add_states(state);
      }
    }
  }
  absl::StatusOr<int32_t> page_size = IntQuery(*call, "page_size");
  if (!page_size.ok()) return call->respond(JsonError(page_size.status()));
  request.set_page_size(*page_size);
  request.set_page_token(call->Query("page_token"));
  const std::string view = absl::AsciiStrToLower(call->Query("view"));
  if (view == "full") {
    request.set_view(v1::EXECUTION_VIEW_FULL);
  } else if (!view.empty() && view != "basic") {
    return call->respond(JsonError(
        absl::InvalidArgumentError(absl::StrCat("view=\"", view, "\": expected basic or full"))));
  }
  Forward(call, &AsyncApi::ListExecutions, std::move(request));
}

void RestApi::GetExecution(const Call& call) {
  v1::GetExecutionRequest request;
  request.set_name(absl::StrCat("executions/", call->params["id"]));
  const bool with_tasks = call->Query("tasks") != "false";
  Orchestrator<v1::GetExecutionRequest, v1::Execution>(
      call, &AsyncApi::GetExecution, std::move(request),
      [this, call, with_tasks](absl::StatusOr<v1::Execution> execution) {
        if (!execution.ok()) return call->respond(JsonError(execution.status()));
        if (!with_tasks) {
          return call->respond(
              JsonReply(200, absl::StrCat("{\"execution\":", ToJson(*execution), "}")));
        }
        v1::ListTaskRunsRequest tasks;
        tasks.set_parent(execution->name());
        tasks.set_page_token(call->Query("tasks_page_token"));
        Orchestrator<v1::ListTaskRunsRequest, v1::ListTaskRunsResponse>(
            call, &AsyncApi::ListTaskRuns, std::move(tasks),
            [call,
             execution = *std::move(execution)](absl::StatusOr<v1::ListTaskRunsResponse> runs) {
              if (!runs.ok()) return call->respond(JsonError(runs.status()));
              call->respond(JsonReply(200, absl::StrCat("{\"execution\":", ToJson(execution),
                                                        ",\"tasks\":", ToJson(*runs), "}")));
            });
      });
}

void RestApi::PauseExecution(const Call& call) {
  v1::PauseExecutionRequest request;
  request.set_name(absl::StrCat("executions/", call->params["id"]));
  Forward(call, &AsyncApi::PauseExecution, std::move(request));
}

void RestApi::ResumeExecution(const Call& call) {
  v1::ResumeExecutionRequest request;
  request.set_name(absl::StrCat("executions/", call->params["id"]));
  Forward(call, &AsyncApi::ResumeExecution, std::move(request));
}

void RestApi::CancelExecution(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, true); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  v1::CancelExecutionRequest request;
  if (!call->request.body.empty()) {
    if (absl::Status status = FromJson(call->request.body, &request); !status.ok()) {
      return call->respond(JsonError(status));
    }
  }
  request.set_name(absl::StrCat("executions/", call->params["id"]));
  Forward(call, &AsyncApi::CancelExecution, std::move(request));
}

void RestApi::GetTaskLogs(const Call& call) {
  v1::GetTaskLogsRequest request;
  request.set_name(
      absl::StrCat("executions/", call->params["id"], "/tasks/", call->params["task"]));
  absl::StatusOr<int32_t> attempt = IntQuery(*call, "attempt");
  if (!attempt.ok()) return call->respond(JsonError(attempt.status()));
  request.set_attempt(*attempt);
  Orchestrator<v1::GetTaskLogsRequest, v1::GetTaskLogsResponse>(
      call, &AsyncApi::GetTaskLogs, std::move(request),
      [call](absl::StatusOr<v1::GetTaskLogsResponse> logs) {
        if (!logs.ok()) return call->respond(JsonError(logs.status()));
        // Text, not the canonical mapping's base64: logs are read by people
        // (invalid UTF-8 is escaped).
        call->respond(JsonReply(
            200, absl::StrCat("{\"attempt\":", logs->attempt(),
                              ",\"stdout\":", JsonString(logs->stdout()),
                              ",\"stderr\":", JsonString(logs->stderr()),
                              ",\"truncated\":", logs->truncated() ? "true" : "false", "}")));
      });
}

void RestApi::ScheduleOutcome(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  v1::ScheduleOutcomeRequest request;
  if (absl::Status status = FromJson(call->request.body, &request); !status.ok()) {
    return call->respond(JsonError(status));
  }
  Orchestrator<v1::ScheduleOutcomeRequest, v1::Execution>(
      call, &AsyncApi::ScheduleOutcome, std::move(request),
      [call](absl::StatusOr<v1::Execution> execution) {
        if (!execution.ok()) return call->respond(JsonError(execution.status()));
        call->respond(JsonReply(201, StartedExecutionJson(*execution)));
      });
}

namespace {

// What an optimizer request names, to check before it is forwarded.
std::vector<std::string> NamedResources(const v1::AnalyzeWorkflowRequest& request) {
  std::vector<std::string> names;
  if (!request.workflow().empty()) names.push_back(request.workflow());
  if (!request.execution().empty()) names.push_back(request.execution());
  for (const std::string& execution : request.history_executions()) names.push_back(execution);
  return names;
}

}  // namespace

void RestApi::CheckTenantSees(const Call& call, std::vector<std::string> names,
                              std::function<void(absl::Status)> done) {
  if (names.empty()) return done(absl::OkStatus());
  if (names.size() > kMaxNamedResources) {
    return done(absl::InvalidArgumentError(absl::StrCat("the request names ", names.size(),
                                                        " workflows and executions; at most ",
                                                        kMaxNamedResources, " are accepted")));
  }
  // Looked up in parallel; the first failure answers, once all are back.
  struct Pending {
    explicit Pending(size_t count, std::function<void(absl::Status)> done)
        : left(count), done(std::move(done)) {}
    std::atomic<size_t> left;
    absl::Mutex mutex;
    absl::Status first ABSL_GUARDED_BY(mutex);
    std::function<void(absl::Status)> done;
    void Finish(const absl::Status& status) {
      {
        absl::MutexLock lock(&mutex);
        if (first.ok() && !status.ok()) first = status;
      }
      if (left.fetch_sub(1) != 1) return;
      absl::Status result;
      {
        absl::MutexLock lock(&mutex);
        result = first;
      }
      done(result);
    }
  };
  auto pending = std::make_shared<Pending>(names.size(), std::move(done));
  for (const std::string& name : names) {
    const std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
    if (parts.size() >= 2 && parts[0] == "workflows" && !parts[1].empty()) {
      v1::GetWorkflowRequest request;
      request.set_name(absl::StrCat("workflows/", parts[1]));
      Orchestrator<v1::GetWorkflowRequest, v1::WorkflowDefinition>(
          call, &AsyncApi::GetWorkflow, std::move(request),
          [pending](absl::StatusOr<v1::WorkflowDefinition> found) {
            pending->Finish(found.status());
          });
    } else if (parts.size() == 2 && parts[0] == "executions" && !parts[1].empty()) {
      v1::GetExecutionRequest request;
      request.set_name(name);
      Orchestrator<v1::GetExecutionRequest, v1::Execution>(
          call, &AsyncApi::GetExecution, std::move(request),
          [pending](absl::StatusOr<v1::Execution> found) { pending->Finish(found.status()); });
    } else {
      pending->Finish(absl::InvalidArgumentError(
          absl::StrCat("\"", name.substr(0, 200),
                       "\" is neither workflows/{id}[/versions/{v}] nor executions/{id}")));
    }
  }
}

void RestApi::AnalyzeWorkflow(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  auto request = std::make_shared<v1::AnalyzeWorkflowRequest>();
  if (absl::Status status = FromJson(call->request.body, request.get()); !status.ok()) {
    return call->respond(JsonError(status));
  }
  CheckTenantSees(call, NamedResources(*request), [this, call, request](absl::Status visible) {
    if (!visible.ok()) return call->respond(JsonError(visible));
    StartUnaryCall<v1::OptimizerService::StubInterface::async_interface, v1::AnalyzeWorkflowRequest,
                   v1::AnalyzeWorkflowResponse>(
        optimizer_->async(), &v1::OptimizerService::StubInterface::async_interface::AnalyzeWorkflow,
        std::move(*request), CallMetadata{call->request_id, call->principal.tenant},
        options_.backend_timeout, [call](absl::StatusOr<v1::AnalyzeWorkflowResponse> response) {
          if (!response.ok()) return call->respond(JsonError(response.status()));
          call->respond(JsonReply(200, ToJson(*response)));
        });
  });
}

void RestApi::ApplyOptimizations(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  auto request = std::make_shared<v1::ApplyOptimizationsRequest>();
  if (absl::Status status = FromJson(call->request.body, request.get()); !status.ok()) {
    return call->respond(JsonError(status));
  }
  // The workflow changed, and whatever its analysis reads.
  std::vector<std::string> names = NamedResources(request->analysis());
  if (!request->workflow().empty()) names.push_back(request->workflow());
  CheckTenantSees(call, std::move(names), [this, call, request](absl::Status visible) {
    if (!visible.ok()) return call->respond(JsonError(visible));
    StartUnaryCall<v1::OptimizerService::StubInterface::async_interface,
                   v1::ApplyOptimizationsRequest, v1::ApplyOptimizationsResponse>(
        optimizer_->async(),
        &v1::OptimizerService::StubInterface::async_interface::ApplyOptimizations,
        std::move(*request), CallMetadata{call->request_id, call->principal.tenant},
        options_.backend_timeout, [call](absl::StatusOr<v1::ApplyOptimizationsResponse> response) {
          if (!response.ok()) return call->respond(JsonError(response.status()));
          call->respond(JsonReply(200, ToJson(*response)));
        });
  });
}

void RestApi::PredictResources(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  auto request = std::make_shared<v1::PredictResourcesRequest>();
  if (absl::Status status = FromJson(call->request.body, request.get()); !status.ok()) {
    return call->respond(JsonError(status));
  }
  auto forward = [this, call, request]() {
    StartUnaryCall<v1::PredictorService::StubInterface::async_interface,
                   v1::PredictResourcesRequest, v1::PredictResourcesResponse>(
        predictor_->async(),
        &v1::PredictorService::StubInterface::async_interface::PredictResources,
        std::move(*request), CallMetadata{call->request_id, call->principal.tenant},
        options_.backend_timeout, [call](absl::StatusOr<v1::PredictResourcesResponse> response) {
          if (!response.ok()) return call->respond(JsonError(response.status()));
          call->respond(JsonReply(200, ToJson(*response)));
        });
  };
  if (request->workflow().empty()) return forward();
  // The workflow only improves matching, and one never stored is allowed
  // (a plan predicted before it is created). Another tenant's is predicted
  // as such an unknown one: its history must not answer, and a 404 would
  // tell that it exists.
  CheckTenantSees(call, {request->workflow()}, [call, request, forward](absl::Status visible) {
    if (visible.code() == absl::StatusCode::kNotFound) {
      request->clear_workflow();
    } else if (!visible.ok()) {
      return call->respond(JsonError(visible));
    }
    forward();
  });
}

void RestApi::UpdatePriority(const Call& call) {
  if (absl::Status type = CheckBodyType(call->request, false, false); !type.ok()) {
    return call->respond(UnsupportedMediaType(type));
  }
  v1::UpdatePriorityRequest request;
  if (absl::Status status = FromJson(call->request.body, &request); !status.ok()) {
    return call->respond(JsonError(status));
  }
  if (request.priority() < 0 || request.priority() > 100) {
    return call->respond(JsonError(absl::InvalidArgumentError(
        absl::StrCat("priority ", request.priority(), " is out of range 0..100"))));
  }
  request.set_name(
      absl::StrCat("executions/", call->params["execution"], "/tasks/", call->params["task"]));
  Forward(call, &AsyncApi::UpdatePriority, std::move(request));
}

void RestApi::Ready(const Call& call) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(server::ComponentHealthName("orchestrator"));
  StartUnaryCall<grpc::health::v1::Health::StubInterface::async_interface,
                 grpc::health::v1::HealthCheckRequest, grpc::health::v1::HealthCheckResponse>(
      health_->async(), &grpc::health::v1::Health::StubInterface::async_interface::Check,
      std::move(request), call->request_id, options_.backend_timeout,
      [call](absl::StatusOr<grpc::health::v1::HealthCheckResponse> health) {
        if (!health.ok()) {
          return call->respond(JsonError(absl::UnavailableError(
              absl::StrCat("the orchestrator cannot be reached: ", health.status().message()))));
        }
        if (health->status() != grpc::health::v1::HealthCheckResponse::SERVING) {
          return call->respond(
              JsonError(absl::UnavailableError("the orchestrator is not serving yet")));
        }
        call->respond(JsonReply(200, "{\"status\":\"ready\",\"orchestrator\":\"serving\"}"));
      });
}

void RestApi::WorkflowCapacity(const Call& call) {
  Orchestrator<v1::ListQueuesRequest, v1::ListQueuesResponse>(
      call, &AsyncApi::ListQueues, v1::ListQueuesRequest(),
      [call](absl::StatusOr<v1::ListQueuesResponse> queues) {
        if (!queues.ok()) return call->respond(JsonError(queues.status()));
        int64_t free_slots = 0;
        int64_t queued = 0;
        std::string items;
        for (const v1::QueueInfo& queue : queues->queues()) {
          free_slots += queue.free_slots();
          queued += queue.depth();
          absl::StrAppend(&items, items.empty() ? "" : ",",
                          "{\"worker_type\":", JsonString(queue.name()),
                          ",\"free_slots\":", queue.free_slots(), ",\"queued\":", queue.depth(),
                          ",\"running\":", queue.running(), ",\"agents\":", queue.agents(),
                          ",\"desired_workers\":", queue.desired_workers(), "}");
        }
        call->respond(JsonReply(200, absl::StrCat("{\"free_slots\":", free_slots, ",\"queued\":",
                                                  queued, ",\"worker_types\":[", items, "]}")));
      });
}

}  // namespace gyre::gateway
