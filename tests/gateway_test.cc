// The REST API of gyre-gateway, end to end: a real `gyre dev` (orchestrator,
// agent and gateway in one process) and a standalone gyre-gateway in front
// of it with keys of every role, called over real HTTP from this process.
// Each test proves one route's success and its errors as a client sees them.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "libs/testing/websocket_client.h"
#include "services/gateway/api_key_authenticator.h"
#include "services/gateway/rest_api.h"

namespace gyre {
namespace {

using testing::ChildProcess;
using testing::HttpResponse;
using testing::WebSocketClient;

constexpr char kAdminKey[] = "gyk_gateway-test-admin-key";
constexpr char kViewerKey[] = "gyk_gateway-test-viewer-key";
constexpr char kOperatorKey[] = "gyk_gateway-test-operator-key";

std::string BuildFile(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

// Starts a process and waits for its "http serving" line; returns the port.
std::optional<int> StartServing(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env,
                                std::unique_ptr<ChildProcess>* process) {
  auto started = ChildProcess::Start(argv, env);
  if (!started.ok()) {
    ADD_FAILURE() << started.status();
    return std::nullopt;
  }
  *process = *std::move(started);
  auto line = (*process)->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"http serving\""); },
      absl::Seconds(30));
  if (!line.ok()) {
    ADD_FAILURE() << line.status() << "\n" << (*process)->Output();
    return std::nullopt;
  }
  return testing::JsonIntField(*line, "http_port");
}

void Stop(std::unique_ptr<ChildProcess>& process) {
  if (process == nullptr) return;
  process->Signal(SIGTERM);
  process->WaitForExit(absl::Seconds(15));
  process.reset();
}

class GatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new testing::ScratchDir("gateway_test");
    auto dev_port = StartServing({BuildFile("cmd/gyre/gyre"), "dev", "--grpc_address=127.0.0.1:0",
                                  "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                                  absl::StrCat("--dev_api_key=", kAdminKey),
                                  "--task_library_dir=" + BuildFile("examples/task-library"),
                                  absl::StrCat("--data_dir=", data_dir_->path())},
                                 {}, &dev_);
    if (!dev_port.has_value()) return;
    dev_port_ = *dev_port;
    auto up = dev_->WaitForLine(
        [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"gyre dev is up\""); },
        absl::Seconds(30));
    if (!up.ok()) return;
    const int grpc_port = *testing::JsonIntField(*up, "grpc_port");
    // A standalone gateway in front of the same orchestrator, with one key
    // per role, configured as hashes through the environment.
    using gateway::ApiKeyAuthenticator;
    const std::string keys =
        absl::StrCat("[viewer:viewer:", ApiKeyAuthenticator::HashKey(kViewerKey),
                     ", operator:operator:", ApiKeyAuthenticator::HashKey(kOperatorKey),
                     ", admin:admin:", ApiKeyAuthenticator::HashKey(kAdminKey), "]");
    auto standalone_port =
        StartServing({BuildFile("services/gateway/gyre-gateway"), "--grpc_address=127.0.0.1:0",
                      "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                      absl::StrCat("--orchestrator_address=127.0.0.1:", grpc_port)},
                     {"GYRE_API_KEYS=" + keys, "GYRE_MAX_BODY_BYTES=65536",
                      "GYRE_WS_MAX_LAG_EVENTS=16", "GYRE_WS_STALL_TIMEOUT=300ms",
                      "GYRE_WS_SEND_BUFFER_BYTES=4096", "GYRE_WS_IDLE_TIMEOUT=4s"},
                     &standalone_);
    if (standalone_port.has_value()) standalone_port_ = *standalone_port;
  }
  static void TearDownTestSuite() {
    Stop(standalone_);
    if (dev_ != nullptr) {
      dev_->Signal(SIGINT);
      dev_->WaitForExit(absl::Seconds(15));
      dev_.reset();
    }
    delete data_dir_;
  }
  void SetUp() override {
    ASSERT_NE(dev_port_, 0) << (dev_ ? dev_->Output() : "gyre dev did not start");
    ASSERT_NE(standalone_port_, 0) << (standalone_ ? standalone_->Output() : "no gateway");
  }

  // A call to gyre dev's gateway as its admin.
  static HttpResponse Call(const std::string& method, const std::string& target,
                           const std::string& body = "",
                           const std::string& content_type = "application/json",
                           const std::string& key = kAdminKey, int port = 0) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key.empty()) headers.emplace_back("X-API-Key", key);
    if (!body.empty()) headers.emplace_back("Content-Type", content_type);
    auto response = testing::HttpCall("127.0.0.1", port == 0 ? dev_port_ : port, method,
                                      absl::StrCat("/api/v1", target), headers, body);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : HttpResponse{};
  }
  static HttpResponse AsRole(const std::string& key, const std::string& method,
                             const std::string& target, const std::string& body = "") {
    return Call(method, target, body, "application/json", key, standalone_port_);
  }

  static boost::json::value Json(const HttpResponse& response) {
    boost::json::error_code error;
    boost::json::value value = boost::json::parse(response.body, error);
    EXPECT_FALSE(error) << "not JSON: " << response.body;
    return value;
  }
  static std::string Str(const boost::json::value& value, std::initializer_list<const char*> path) {
    const boost::json::value* at = &value;
    for (const char* key : path) {
      if (!at->is_object() || !at->as_object().contains(key)) return "";
      at = &at->as_object().at(key);
    }
    return at->is_string() ? std::string(at->as_string()) : boost::json::serialize(*at);
  }
  // The error shape every failure has; returns its status string.
  static std::string ErrorStatus(const HttpResponse& response) {
    const boost::json::value json = Json(response);
    EXPECT_EQ(Str(json, {"error", "code"}), std::to_string(response.status)) << response.body;
    EXPECT_FALSE(Str(json, {"error", "message"}).empty()) << response.body;
    return Str(json, {"error", "status"});
  }

  // Polls an execution until `done` holds for its state (bounded).
  static std::string WaitForState(const std::string& id,
                                  const std::function<bool(const std::string&)>& done) {
    std::string state;
    for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(100))) {
      state = Str(Json(Call("GET", "/executions/" + id + "?tasks=false")), {"execution", "state"});
      if (done(state)) break;
    }
    return state;
  }

  static int64_t LastSequence(const std::string& id) {
    return std::stoll(Str(Json(Call("GET", "/executions/" + id + "?tasks=false")),
                          {"execution", "last_sequence"}));
  }

  static std::string CreateYaml(const std::string& yaml) {
    const HttpResponse created = Call("POST", "/workflows", yaml, "application/yaml");
    EXPECT_EQ(created.status, 201) << created.body;
    return Str(Json(created), {"id"});
  }

  static inline testing::ScratchDir* data_dir_ = nullptr;
  static inline std::unique_ptr<ChildProcess> dev_;
  static inline std::unique_ptr<ChildProcess> standalone_;
  static inline int dev_port_ = 0;
  static inline int standalone_port_ = 0;
};

constexpr char kHelloYaml[] =
    "name: hello\n"
    "tasks:\n"
    "  - id: greet\n"
    "    command: echo hello-from-gyre\n"
    "    shell: true\n"
    "  - id: after\n"
    "    builtin: noop\n"
    "    depends_on: [greet]\n";

constexpr char kSlowYaml[] =
    "name: slow\n"
    "tasks:\n"
    "  - id: nap\n"
    "    command: sleep 60\n"
    "    shell: true\n"
    "  - id: later\n"
    "    builtin: noop\n"
    "    depends_on: [nap]\n";

TEST_F(GatewayTest, EveryApiRouteNeedsAValidKey) {
  const HttpResponse none = Call("GET", "/executions", "", "", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(ErrorStatus(none), "UNAUTHENTICATED");
  EXPECT_FALSE(none.Header("WWW-Authenticate").empty());
  const HttpResponse bad = Call("GET", "/executions", "", "", "gyk_not-a-key");
  EXPECT_EQ(bad.status, 401);
  EXPECT_FALSE(absl::StrContains(bad.body, "gyk_not-a-key")) << "the key is echoed: " << bad.body;
  EXPECT_EQ(Call("GET", "/health", "", "", "").status, 401);
  // The bearer form works as X-API-Key does.
  auto bearer = testing::HttpCall("127.0.0.1", dev_port_, "GET", "/api/v1/health",
                                  {{"Authorization", absl::StrCat("Bearer ", kAdminKey)}});
  ASSERT_TRUE(bearer.ok()) << bearer.status();
  EXPECT_EQ(bearer->status, 200) << bearer->body;
  // Process probes stay open for the kubelet.
  EXPECT_EQ(testing::HttpGet("127.0.0.1", dev_port_, "/healthz")->status, 200);
}

TEST_F(GatewayTest, RequestIdIsEchoedOrGenerated) {
  auto given = testing::HttpCall("127.0.0.1", dev_port_, "GET", "/api/v1/health",
                                 {{"X-API-Key", kAdminKey}, {"X-Request-Id", "trace-42"}});
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given->Header("X-Request-Id"), "trace-42");
  const HttpResponse generated = Call("GET", "/health");
  EXPECT_EQ(generated.Header("X-Request-Id").size(), 32u);
}

TEST_F(GatewayTest, WorkflowLifecycleInYamlAndJson) {
  ASSERT_EQ(CreateYaml(kHelloYaml), "hello");
  const HttpResponse again = Call("POST", "/workflows", kHelloYaml, "application/yaml");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(ErrorStatus(again), "ALREADY_EXISTS");

  const HttpResponse list = Call("GET", "/workflows?page_size=100");
  EXPECT_EQ(list.status, 200);
  EXPECT_TRUE(absl::StrContains(list.body, "\"workflows/hello\"")) << list.body;

  // A new version in the canonical JSON mapping.
  const std::string json = R"({"name":"hello","tasks":[{"id":"only","builtin":{"kind":"NOOP"}}]})";
  const HttpResponse updated = Call("PUT", "/workflows/hello", json);
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(Str(Json(updated), {"version"}), "2");
  EXPECT_EQ(Str(Json(updated), {"status"}), "validated");

  const HttpResponse got = Call("GET", "/workflows/hello");
  ASSERT_EQ(got.status, 200) << got.body;
  const boost::json::value detail = Json(got);
  EXPECT_EQ(Str(detail, {"workflow", "version"}), "2");
  ASSERT_TRUE(detail.as_object().at("versions").is_array());
  EXPECT_EQ(detail.as_object().at("versions").as_array().size(), 2u) << got.body;

  const HttpResponse renamed =
      Call("PUT", "/workflows/hello",
           R"({"name":"other","tasks":[{"id":"a","builtin":{"kind":"NOOP"}}]})");
  EXPECT_EQ(renamed.status, 400) << renamed.body;
  EXPECT_EQ(Call("PUT", "/workflows/missing", R"({"tasks":[{"id":"a","builtin":{"kind":"NOOP"}}]})")
                .status,
            404);

  // Deleting is refused while executions run (tests/gateway_auth_test.cc);
  // an unknown workflow is 404.
  EXPECT_EQ(Call("DELETE", "/workflows/never-created").status, 404);
  EXPECT_EQ(Call("GET", "/workflows/hello").status, 200);
  const HttpResponse missing = Call("GET", "/workflows/never-created");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorStatus(missing), "NOT_FOUND");
}

TEST_F(GatewayTest, InvalidDefinitionIs422WithTheValidationReport) {
  const HttpResponse yaml = Call("POST", "/workflows",
                                 "name: broken\ntasks:\n  - id: a\n    builtin: noop\n"
                                 "    depends_on: [extrct]\n",
                                 "application/yaml");
  EXPECT_EQ(yaml.status, 422) << yaml.body;
  const boost::json::value report = Json(yaml);
  EXPECT_EQ(Str(report, {"error", "details", "validation", "valid"}), "false");
  // file:line:column, as gyre validate prints it.
  EXPECT_TRUE(absl::StrContains(yaml.body, "request.yaml:5:")) << yaml.body;
  EXPECT_TRUE(absl::StrContains(yaml.body, "unknown dependency")) << yaml.body;

  // A cycle in JSON is refused by the orchestrator's validator, same shape.
  const HttpResponse cycle =
      Call("POST", "/workflows",
           R"({"name":"cyclic","tasks":[{"id":"a","builtin":{"kind":"NOOP"},"dependsOn":["b"]},)"
           R"({"id":"b","builtin":{"kind":"NOOP"},"dependsOn":["a"]}]})");
  EXPECT_EQ(cycle.status, 422) << cycle.body;
  EXPECT_TRUE(absl::StrContains(cycle.body, "\"validation\"")) << cycle.body;

  const HttpResponse not_json = Call("POST", "/workflows", "{not json");
  EXPECT_EQ(not_json.status, 422) << not_json.body;
}

TEST_F(GatewayTest, UnsupportedMediaTypeIs415) {
  const HttpResponse text = Call("POST", "/workflows", kHelloYaml, "text/plain");
  EXPECT_EQ(text.status, 415) << text.body;
  EXPECT_TRUE(absl::StrContains(text.body, "application/yaml")) << text.body;
  EXPECT_EQ(Call("POST", "/scheduling", "targets: [x]", "application/yaml").status, 415);
}

TEST_F(GatewayTest, BodyOverTheLimitIs413) {
  // The standalone gateway is configured with a 64 KiB limit.
  const HttpResponse big = Call("POST", "/workflows", std::string(100 << 10, 'x'),
                                "application/json", kAdminKey, standalone_port_);
  EXPECT_EQ(big.status, 413) << big.body;
  EXPECT_EQ(ErrorStatus(big), "RESOURCE_EXHAUSTED");
}

TEST_F(GatewayTest, UnknownRoutesAndResourcesAre404AndWrongMethodIs405) {
  EXPECT_EQ(Call("GET", "/no-such-route").status, 404);
  EXPECT_EQ(Call("GET", "/executions/nonexistent").status, 404);
  EXPECT_EQ(Call("GET", "/executions/nonexistent/tasks/a/logs").status, 404);
  EXPECT_EQ(Call("POST", "/executions/nonexistent/cancel").status, 404);
  EXPECT_EQ(Call("POST", "/workflows/nonexistent/execute").status, 404);
  EXPECT_EQ(Call("GET", "/workflows/nonexistent/status").status, 404);
  const HttpResponse method = Call("DELETE", "/executions");
  EXPECT_EQ(method.status, 405) << method.body;
  EXPECT_TRUE(absl::StrContains(method.body, "allowed: GET")) << method.body;
  // An encoded '/' cannot reach another resource.
  EXPECT_EQ(Call("GET", "/executions/a%2Fb").status, 400);
}

TEST_F(GatewayTest, ExecuteFollowAndReadLogs) {
  const std::string yaml = absl::StrReplaceAll(kHelloYaml, {{"name: hello", "name: greeter"}});
  ASSERT_EQ(CreateYaml(yaml), "greeter");
  const HttpResponse started =
      Call("POST", "/workflows/greeter/execute", R"({"context":{},"options":{"priority":70}})");
  ASSERT_EQ(started.status, 201) << started.body;
  const boost::json::value execution = Json(started);
  const std::string id = Str(execution, {"execution_id"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Str(execution, {"url"}), "/api/v1/executions/" + id);
  EXPECT_EQ(Str(execution, {"execution", "priority"}), "70");

  EXPECT_EQ(WaitForState(id, [](const std::string& s) { return s == "EXECUTION_SUCCEEDED"; }),
            "EXECUTION_SUCCEEDED");
  const HttpResponse detail = Call("GET", "/executions/" + id);
  ASSERT_EQ(detail.status, 200);
  // Tasks with their attempts and agents.
  EXPECT_TRUE(absl::StrContains(detail.body, "\"task_id\":\"greet\"")) << detail.body;
  EXPECT_TRUE(absl::StrContains(detail.body, "\"agent\":")) << detail.body;

  const HttpResponse logs = Call("GET", "/executions/" + id + "/tasks/greet/logs");
  ASSERT_EQ(logs.status, 200) << logs.body;
  EXPECT_TRUE(absl::StrContains(Str(Json(logs), {"stdout"}), "hello-from-gyre")) << logs.body;

  const HttpResponse status = Call("GET", "/workflows/greeter/status");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(Str(Json(status), {"recent_states", "EXECUTION_SUCCEEDED"}), "1") << status.body;

  const HttpResponse listed = Call("GET", "/executions?workflow=greeter&state=succeeded");
  ASSERT_EQ(listed.status, 200);
  EXPECT_TRUE(absl::StrContains(listed.body, id)) << listed.body;
  EXPECT_EQ(Call("GET", "/executions?state=sleepy").status, 400);
  EXPECT_EQ(Call("GET", "/executions?page_size=abc").status, 400);
  EXPECT_EQ(Call("GET", "/executions?page_size=5000").status, 400);

  // A context key the workflow does not declare is refused by the engine.
  EXPECT_EQ(Call("POST", "/workflows/greeter/execute", R"({"context":{"NOPE":"1"}})").status, 400);
  EXPECT_EQ(Call("POST", "/workflows/greeter/execute", R"({"workflow":"workflows/x"})").status,
            400);
}

TEST_F(GatewayTest, PauseResumeAndCancelAnExecution) {
  ASSERT_EQ(CreateYaml(kSlowYaml), "slow");
  const HttpResponse started = Call("POST", "/workflows/slow/execute");
  ASSERT_EQ(started.status, 201) << started.body;
  const std::string id = Str(Json(started), {"execution_id"});

  const HttpResponse paused = Call("POST", "/executions/" + id + "/pause");
  ASSERT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(Str(Json(paused), {"state"}), "EXECUTION_PAUSED");
  const HttpResponse resumed = Call("POST", "/executions/" + id + "/resume");
  ASSERT_EQ(resumed.status, 200) << resumed.body;
  EXPECT_NE(Str(Json(resumed), {"state"}), "EXECUTION_PAUSED");

  const HttpResponse cancelled =
      Call("POST", "/executions/" + id + "/cancel", R"({"reason":"test is done"})");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(WaitForState(id, [](const std::string& s) { return s == "EXECUTION_CANCELLED"; }),
            "EXECUTION_CANCELLED");
  // A final execution cannot be paused or cancelled again: a conflict.
  const HttpResponse again = Call("POST", "/executions/" + id + "/cancel");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(ErrorStatus(again), "FAILED_PRECONDITION");
  EXPECT_EQ(Call("POST", "/executions/" + id + "/pause").status, 409);
}

TEST_F(GatewayTest, SchedulingQueuesAgentsAndCapacity) {
  const HttpResponse scheduled =
      Call("POST", "/scheduling", R"({"targets":["daily-report"],"context":{"REGION":"eu"}})");
  ASSERT_EQ(scheduled.status, 201) << scheduled.body;
  EXPECT_FALSE(Str(Json(scheduled), {"execution_id"}).empty());
  const HttpResponse unknown = Call("POST", "/scheduling", R"({"targets":["no-such-task"]})");
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_EQ(Call("POST", "/scheduling", R"({"bogus":1})").status, 400);

  // daily-report waits for its dependencies: its priority can change (or,
  // should they all have run already, it is refused as leased, never 501).
  const std::string id = Str(Json(scheduled), {"execution_id"});
  const HttpResponse priority =
      Call("PUT", "/scheduling/" + id + "/daily-report/priority", R"({"priority":90})");
  if (priority.status == 409) {
    EXPECT_TRUE(absl::StrContains(priority.body, "only a task not yet leased")) << priority.body;
  } else {
    EXPECT_EQ(priority.status, 200) << priority.body;
    EXPECT_EQ(Str(Json(priority), {"name"}), "executions/" + id) << priority.body;
  }
  EXPECT_EQ(Call("PUT", "/scheduling/" + id + "/no-such-task/priority", R"({"priority":5})").status,
            404);
  EXPECT_EQ(Call("PUT", "/scheduling/" + id + "/x/priority", R"({"priority":101})").status, 400);

  const HttpResponse queues = Call("GET", "/queues");
  ASSERT_EQ(queues.status, 200);
  EXPECT_TRUE(absl::StrContains(queues.body, "queues/default")) << queues.body;
  const HttpResponse agents = Call("GET", "/agents");
  ASSERT_EQ(agents.status, 200);
  EXPECT_TRUE(absl::StrContains(agents.body, "agents/embedded")) << agents.body;
  const HttpResponse capacity = Call("GET", "/workflow-capacity");
  ASSERT_EQ(capacity.status, 200);
  EXPECT_FALSE(Str(Json(capacity), {"free_slots"}).empty()) << capacity.body;
  EXPECT_EQ(Call("GET", "/ready").status, 200);
  EXPECT_EQ(Str(Json(Call("GET", "/health")), {"status"}), "ok");
}

TEST_F(GatewayTest, UnbuiltServicesAnswer501NeverAFakeSuccess) {
  // The suite's standalone gateway has no predictor_address or
  // optimizer_address.
  for (const char* path : {"/resources/predict", "/optimization/analyze"}) {
    const HttpResponse response =
        Call("POST", path, "{}", "application/json", kAdminKey, standalone_port_);
    EXPECT_EQ(response.status, 501) << path;
    EXPECT_EQ(ErrorStatus(response), "UNIMPLEMENTED") << path;
    EXPECT_TRUE(absl::StrContains(response.body, "not built yet")) << response.body;
  }
}

// gyre dev hosts the predictor, so its gateway forwards /resources/predict
// to its PredictResources (without predictor_address: 501, as above).
TEST_F(GatewayTest, ResourcePredictionForwardsToThePredictor) {
  const HttpResponse predicted =
      Call("POST", "/resources/predict",
           R"({"workflow": "workflows/p", "tasks": [)"
           R"({"id": "a", "builtin": {"kind": "SLEEP", "duration": "2s"}},)"
           R"({"id": "b", "builtin": {"kind": "SLEEP", "duration": "3s"}}]})");
  ASSERT_EQ(predicted.status, 200) << predicted.body;
  const boost::json::value json = Json(predicted);
  const boost::json::array& predictions = json.at("predictions").as_array();
  ASSERT_EQ(predictions.size(), 2u) << predicted.body;
  EXPECT_EQ(predictions[0].at("task_id").as_string(), "a") << predicted.body;
  EXPECT_EQ(predictions[1].at("task_id").as_string(), "b") << predicted.body;
  // The predictor's own validation comes back through the one mapping:
  // one context for two tasks is INVALID_ARGUMENT, 400.
  const HttpResponse mismatched =
      Call("POST", "/resources/predict",
           R"({"tasks": [{"id": "a"}, {"id": "b"}], "contexts": [{"identity": "x"}]})");
  EXPECT_EQ(mismatched.status, 400) << mismatched.body;
  EXPECT_EQ(ErrorStatus(mismatched), "INVALID_ARGUMENT") << mismatched.body;
  // A body that is not the request's JSON mapping never reaches it.
  EXPECT_EQ(Call("POST", "/resources/predict", R"({"tasks": 3})").status, 400);
}

// gyre dev hosts the optimizer, so its gateway forwards /optimization/* to it
// (a gateway without optimizer_address answers 501, as above).
TEST_F(GatewayTest, OptimizationRoutesForwardToTheOptimizer) {
  const HttpResponse empty = Call("POST", "/optimization/analyze", "{}");
  EXPECT_EQ(empty.status, 400) << empty.body;
  EXPECT_TRUE(absl::StrContains(empty.body, "source: give a workflow")) << empty.body;
  const HttpResponse analyzed = Call(
      "POST", "/optimization/analyze",
      R"({"definition": {"name": "opt", "tasks": [)"
      R"({"id": "a", "builtin": {"kind": "SLEEP", "duration": "2s"}},)"
      R"({"id": "b", "builtin": {"kind": "SLEEP", "duration": "3s"}, "depends_on": ["a"]}]}})");
  ASSERT_EQ(analyzed.status, 200) << analyzed.body;
  EXPECT_TRUE(absl::StrContains(analyzed.body, R"("critical_path":["a","b"])")) << analyzed.body;
  const HttpResponse apply =
      Call("POST", "/optimization/apply",
           R"({"workflow": "workflows/nope", "recommendation_ids": ["prioritize-critical-path"]})");
  EXPECT_EQ(apply.status, 404) << apply.body;
}

TEST_F(GatewayTest, RolesLimitWhatAPrincipalMayDo) {
  EXPECT_EQ(AsRole(kViewerKey, "GET", "/executions").status, 200);
  const HttpResponse denied = AsRole(kViewerKey, "POST", "/workflows/x/execute", "{}");
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_TRUE(absl::StrContains(denied.body, "needs the operator role")) << denied.body;
  EXPECT_EQ(AsRole(kOperatorKey, "DELETE", "/workflows/x").status, 403);
  // Past the role check (the orchestrator then answers: no such workflow).
  EXPECT_EQ(AsRole(kAdminKey, "DELETE", "/workflows/x").status, 404);
  EXPECT_EQ(AsRole(kOperatorKey, "GET", "/workflows/x").status, 404);
}

TEST_F(GatewayTest, BackendDownIs503) {
  std::unique_ptr<ChildProcess> orphan;
  auto port = StartServing({BuildFile("services/gateway/gyre-gateway"),
                            "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                            "--http_address=127.0.0.1:0", "--orchestrator_address=127.0.0.1:1"},
                           {absl::StrCat("GYRE_API_KEYS=[a:admin:",
                                         gateway::ApiKeyAuthenticator::HashKey(kAdminKey), "]")},
                           &orphan);
  ASSERT_TRUE(port.has_value());
  EXPECT_EQ(Call("GET", "/ready", "", "", kAdminKey, *port).status, 503);
  const HttpResponse list = Call("GET", "/executions", "", "", kAdminKey, *port);
  EXPECT_EQ(list.status, 503) << list.body;
  EXPECT_EQ(ErrorStatus(list), "UNAVAILABLE");
  Stop(orphan);
}

// A workflow of `tasks` independent no-op tasks: many events, quickly.
std::string WideYaml(const std::string& name, int tasks) {
  std::string yaml = absl::StrCat("name: ", name, "\ntasks:\n");
  for (int i = 0; i < tasks; ++i) absl::StrAppend(&yaml, "  - id: t", i, "\n    builtin: noop\n");
  return yaml;
}

std::unique_ptr<WebSocketClient> Follow(int port, const std::string& id, int64_t since = 0,
                                        int receive_buffer_bytes = 0) {
  auto client =
      WebSocketClient::Connect("127.0.0.1", port,
                               absl::StrCat("/ws/executions/", id, since > 0 ? "?since=" : "",
                                            since > 0 ? std::to_string(since) : ""),
                               {{"X-API-Key", kAdminKey}}, receive_buffer_bytes);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// Reads messages until the server closes (or `limit` were read); returns
// their sequence numbers in arrival order.
std::vector<int64_t> ReadSequences(WebSocketClient& client, size_t limit = SIZE_MAX,
                                   std::vector<std::string>* types = nullptr) {
  std::vector<int64_t> sequences;
  while (sequences.size() < limit) {
    absl::StatusOr<std::string> message = client.Read();
    if (!message.ok()) {
      EXPECT_EQ(message.status().code(), absl::StatusCode::kOutOfRange) << message.status();
      break;
    }
    boost::json::value json = boost::json::parse(*message);
    const boost::json::object& object = json.as_object();
    for (const char* key :
         {"type", "workflow_id", "execution_id", "sequence", "timestamp", "data"}) {
      EXPECT_TRUE(object.contains(key)) << key << " missing in " << *message;
    }
    if (types != nullptr) types->push_back(std::string(object.at("type").as_string()));
    sequences.push_back(object.at("sequence").as_int64());
  }
  return sequences;
}

std::vector<int64_t> OneTo(int64_t n) {
  std::vector<int64_t> all;
  for (int64_t i = 1; i <= n; ++i) all.push_back(i);
  return all;
}

TEST_F(GatewayTest, WebSocketSendsEveryEventInOrderThenClosesNormally) {
  ASSERT_FALSE(CreateYaml(WideYaml("ws-order", 20)).empty());
  const std::string id = Str(Json(Call("POST", "/workflows/ws-order/execute")), {"execution_id"});
  auto client = Follow(dev_port_, id);
  ASSERT_NE(client, nullptr);
  std::vector<std::string> types;
  const std::vector<int64_t> sequences = ReadSequences(*client, SIZE_MAX, &types);
  EXPECT_EQ(client->close_code(), 1000);
  EXPECT_EQ(WaitForState(id, [](const std::string& s) { return s == "EXECUTION_SUCCEEDED"; }),
            "EXECUTION_SUCCEEDED");
  EXPECT_EQ(sequences, OneTo(LastSequence(id)));
  for (const char* type : {"workflow.status_changed", "agent.assigned", "task.completed"}) {
    EXPECT_NE(std::find(types.begin(), types.end(), type), types.end()) << type;
  }
}

TEST_F(GatewayTest, WebSocketReconnectWithSinceMissesNothingAndRepeatsNothing) {
  ASSERT_FALSE(CreateYaml(WideYaml("ws-resume", 30)).empty());
  const std::string id = Str(Json(Call("POST", "/workflows/ws-resume/execute")), {"execution_id"});
  auto first = Follow(dev_port_, id);
  ASSERT_NE(first, nullptr);
  std::vector<int64_t> received = ReadSequences(*first, 7);
  ASSERT_EQ(received.size(), 7u);
  first->Drop();  // the client dies mid-stream
  auto second = Follow(dev_port_, id, received.back());
  ASSERT_NE(second, nullptr);
  for (int64_t sequence : ReadSequences(*second)) received.push_back(sequence);
  EXPECT_EQ(second->close_code(), 1000);
  EXPECT_EQ(received, OneTo(LastSequence(id)));
}

TEST_F(GatewayTest, WebSocketSlowReaderIsClosedWithoutStallingAFastOne) {
  // The standalone gateway allows 16 events of lag, 300 ms without
  // progress and 4 KiB of send buffer; a reader that reads nothing falls
  // behind at once.
  ASSERT_FALSE(CreateYaml(WideYaml("ws-slow", 300)).empty());
  const std::string id = Str(Json(Call("POST", "/workflows/ws-slow/execute")), {"execution_id"});
  auto slow = Follow(standalone_port_, id, 0, /*receive_buffer_bytes=*/4096);
  auto fast = Follow(standalone_port_, id);
  ASSERT_NE(slow, nullptr);
  ASSERT_NE(fast, nullptr);
  // The fast one gets everything while the slow one reads nothing.
  const std::vector<int64_t> all = ReadSequences(*fast);
  EXPECT_EQ(fast->close_code(), 1000);
  EXPECT_EQ(all, OneTo(LastSequence(id)));
  // Reading nothing for well past the stall timeout (300 ms) makes it
  // slow; it then finds what fit in its buffers, then its close: 1013.
  absl::SleepFor(absl::Seconds(3));
  const std::vector<int64_t> some = ReadSequences(*slow);
  EXPECT_EQ(slow->close_code(), 1013);
  EXPECT_LT(some.size(), all.size());
  EXPECT_EQ(some, OneTo(static_cast<int64_t>(some.size())));  // what it got, in order
}

TEST_F(GatewayTest, WebSocketReplaysALargeFinishedExecutionCompletely) {
  // 9,003 events: the orchestrator replays them in batches of 4,096, the
  // last one sent with its status (gRPC's in-process transport once lost
  // it in gyre dev).
  ASSERT_FALSE(CreateYaml(WideYaml("ws-large", 3000)).empty());
  const std::string id = Str(Json(Call("POST", "/workflows/ws-large/execute")), {"execution_id"});
  ASSERT_EQ(WaitForState(id, [](const std::string& s) { return s == "EXECUTION_SUCCEEDED"; }),
            "EXECUTION_SUCCEEDED");
  auto client = Follow(dev_port_, id);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(ReadSequences(*client), OneTo(LastSequence(id)));
  EXPECT_EQ(client->close_code(), 1000);
}

TEST_F(GatewayTest, ListsPageWithNextPageTokens) {
  ASSERT_EQ(CreateYaml("name: paged\ntasks:\n  - id: t\n    builtin: noop\n"), "paged");
  for (const char* name : {"paged-b", "paged-c"}) {
    ASSERT_EQ(CreateYaml(absl::StrCat("name: ", name, "\ntasks:\n  - id: t\n    builtin: noop\n")),
              name);
  }
  std::set<std::string> started;
  for (int i = 0; i < 3; ++i) {
    started.insert(Str(Json(Call("POST", "/workflows/paged/execute")), {"execution_id"}));
  }
  ASSERT_EQ(started.size(), 3u);
  // Executions: two pages of 2 and 1, every one once.
  const boost::json::value first = Json(Call("GET", "/executions?workflow=paged&page_size=2"));
  ASSERT_EQ(first.at("executions").as_array().size(), 2u) << first;
  const std::string token = Str(first, {"next_page_token"});
  ASSERT_FALSE(token.empty()) << first;
  const boost::json::value second =
      Json(Call("GET", "/executions?workflow=paged&page_size=2&page_token=" + token));
  ASSERT_EQ(second.at("executions").as_array().size(), 1u) << second;
  EXPECT_EQ(Str(second, {"next_page_token"}), "") << second;
  std::set<std::string> listed;
  for (const auto* page : {&first, &second}) {
    for (const auto& execution : page->at("executions").as_array()) {
      listed.insert(
          std::string(execution.at("name").as_string()).substr(sizeof("executions/") - 1));
    }
  }
  EXPECT_EQ(listed, started);
  EXPECT_EQ(Call("GET", "/executions?page_token=not-a-token").status, 400);
  // Workflows: page by page until the token runs out, each once.
  std::multiset<std::string> workflows;
  std::string page_token;
  for (int page = 0; page < 20; ++page) {
    const boost::json::value list =
        Json(Call("GET", "/workflows?page_size=1&page_token=" + page_token));
    ASSERT_LE(list.at("workflows").as_array().size(), 1u) << list;
    for (const auto& workflow : list.at("workflows").as_array()) {
      workflows.insert(std::string(workflow.at("name").as_string()));
    }
    page_token = Str(list, {"next_page_token"});
    if (page_token.empty()) break;
  }
  EXPECT_TRUE(page_token.empty());
  for (const char* name : {"workflows/paged", "workflows/paged-b", "workflows/paged-c"}) {
    EXPECT_EQ(workflows.count(name), 1u) << name;
  }
}

// A gateway in front of an "orchestrator" that accepts connections and
// never answers: every call ends at backend_timeout (1 s) with 504. The
// same gateway shows its header and connection limits.
TEST_F(GatewayTest, SilentBackendIs504AndHeaderAndConnectionLimitsHold) {
  const int silent = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(silent, 64), 0);  // the kernel completes handshakes; nobody reads
  ASSERT_EQ(getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length), 0);
  std::unique_ptr<ChildProcess> gateway;
  auto port = StartServing(
      {BuildFile("services/gateway/gyre-gateway"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
       absl::StrCat("--orchestrator_address=127.0.0.1:", ntohs(address.sin_port))},
      {absl::StrCat("GYRE_API_KEYS=[a:admin:", gateway::ApiKeyAuthenticator::HashKey(kAdminKey),
                    "]"),
       "GYRE_BACKEND_TIMEOUT=3s", "GYRE_MAX_HEADER_BYTES=1024", "GYRE_MAX_CONNECTIONS=3",
       "GYRE_HTTP_THREADS=1", "GYRE_IDLE_TIMEOUT=1s", "GYRE_READ_TIMEOUT=1s"},
      &gateway);
  ASSERT_TRUE(port.has_value());
  // While a call waits for the backend, the one I/O thread serves others:
  // backend calls are asynchronous.
  std::atomic<bool> slow_done = false;
  HttpResponse slow;
  std::thread waiting([&] {
    slow = Call("GET", "/executions", "", "", kAdminKey, *port);
    slow_done = true;
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Call("GET", "/health", "", "", kAdminKey, *port).status, 200);
  EXPECT_FALSE(slow_done) << "the health check waited for the backend call";
  waiting.join();
  EXPECT_EQ(slow.status, 504) << slow.body;
  EXPECT_EQ(ErrorStatus(slow), "DEADLINE_EXCEEDED");

  // A connection that sends nothing, and one that never finishes its body,
  // are closed (idle_timeout, read_timeout: 1 s here).
  for (const std::string& sent :
       {std::string(), absl::StrCat("POST /api/v1/workflows HTTP/1.1\r\nHost: x\r\nX-API-Key: ",
                                    kAdminKey, "\r\nContent-Length: 100\r\n\r\n{\"na")}) {
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<uint16_t>(*port));
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    if (!sent.empty()) {
      ASSERT_EQ(send(client, sent.data(), sent.size(), 0), static_cast<ssize_t>(sent.size()));
    }
    timeval bound{30, 0};  // generous: the server closes after 1 s
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
    char byte = 0;
    EXPECT_EQ(recv(client, &byte, 1, 0), 0) << "not closed by the server: " << sent;
    close(client);
  }

  auto big = testing::HttpCall("127.0.0.1", *port, "GET", "/api/v1/health",
                               {{"X-API-Key", kAdminKey}, {"X-Padding", std::string(2048, 'p')}});
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->status, 431) << big->body;
  EXPECT_EQ(ErrorStatus(*big), "RESOURCE_EXHAUSTED");

  // Three idle connections fill the limit; the fourth is told 503.
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<uint16_t>(*port));
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
    held.push_back(client);
  }
  absl::SleepFor(absl::Milliseconds(200));  // accepted in order; this only saves a retry
  const HttpResponse refused = Call("GET", "/health", "", "", kAdminKey, *port);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_TRUE(absl::StrContains(refused.body, "limit of 3 open connections")) << refused.body;
  for (int client : held) close(client);
  // Once they are gone, the gateway serves again.
  HttpResponse again;
  for (absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(100))) {
    again = Call("GET", "/health", "", "", kAdminKey, *port);
    if (again.status == 200) break;
  }
  EXPECT_EQ(again.status, 200) << again.body;
  Stop(gateway);
  close(silent);
}

// Keep-alive from a separate process: Python's http.client sends three
// requests on one connection and reports whether it had to reconnect.
TEST_F(GatewayTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  const std::string script = absl::StrCat(
      "import http.client\n"
      "c = http.client.HTTPConnection('127.0.0.1', ",
      dev_port_,
      ")\n"
      "out = []\n"
      "for i in range(3):\n"
      "    c.request('GET', '/api/v1/health', headers={'X-API-Key': '",
      kAdminKey,
      "'})\n"
      "    r = c.getresponse(); r.read()\n"
      "    out.append(str(r.status))\n"
      "    if i == 0: first = c.sock\n"
      "print(','.join(out), 'same' if c.sock is first else 'reconnected')\n");
  const std::string path = data_dir_->path() + "/keepalive.py";
  {
    FILE* file = std::fopen(path.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs(script.c_str(), file);
    std::fclose(file);
  }
  FILE* pipe = popen(("python3 " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[256] = {};
  ASSERT_NE(fgets(line, sizeof(line), pipe), nullptr);
  EXPECT_EQ(pclose(pipe), 0) << line;
  EXPECT_EQ(std::string(line), "200,200,200 same\n");
}

// The standalone gateway's WebSocket idle timeout is 4 s: it pings after 2.
// A client that reads answers the pings (Beast does) and stays connected
// through a quiet execution; one that reads nothing is dropped.
TEST_F(GatewayTest, WebSocketPingsKeepAReadingClientAndDropADeadOne) {
  const std::string yaml = absl::StrReplaceAll(kSlowYaml, {{"name: slow", "name: quiet"}});
  ASSERT_EQ(CreateYaml(yaml), "quiet");
  const std::string id = Str(Json(Call("POST", "/workflows/quiet/execute")), {"execution_id"});
  // Quiet once its long task runs: no event for a minute.
  std::string state;
  for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(100))) {
    const std::string detail = Call("GET", "/executions/" + id).body;
    if (absl::StrContains(detail, "\"task_id\":\"nap\"") &&
        absl::StrContains(detail, "\"TASK_RUNNING\"")) {
      state = "running";
      break;
    }
  }
  ASSERT_EQ(state, "running");
  const int64_t events = LastSequence(id);
  auto reading = Follow(standalone_port_, id);
  auto dead = Follow(standalone_port_, id);
  ASSERT_NE(reading, nullptr);
  ASSERT_NE(dead, nullptr);
  EXPECT_EQ(ReadSequences(*reading, static_cast<size_t>(events)), OneTo(events));
  // Two ping intervals and more of silence: still connected.
  absl::StatusOr<std::string> quiet = reading->Read(absl::Seconds(9));
  ASSERT_FALSE(quiet.ok());
  EXPECT_TRUE(absl::StrContains(quiet.status().message(), "no message within"))
      << "the reading client was dropped: " << quiet.status();
  // The one that never read (so never answered a ping) was dropped
  // meanwhile: what it has buffered, then the end.
  absl::StatusOr<std::string> message;
  int buffered = 0;
  while ((message = dead->Read(absl::Seconds(20))).ok()) ++buffered;
  EXPECT_LE(buffered, events);
  EXPECT_FALSE(absl::StrContains(message.status().message(), "no message within"))
      << "the silent client was not dropped: " << message.status();
  Call("POST", "/executions/" + id + "/cancel");
}

// Every kind of message the feed sends, from real executions: a task that
// runs and fails (task.started, task.failed, error.occurred), one paused
// (checkpoint.created), with the lease (agent.assigned) and state changes.
TEST_F(GatewayTest, WebSocketNamesEveryKindOfEvent) {
  ASSERT_EQ(CreateYaml("name: failing\ntasks:\n  - id: boom\n    command: exit 3\n"
                       "    shell: true\n"),
            "failing");
  const std::string failed =
      Str(Json(Call("POST", "/workflows/failing/execute")), {"execution_id"});
  auto client = Follow(dev_port_, failed);
  ASSERT_NE(client, nullptr);
  std::vector<std::string> types;
  const std::vector<int64_t> sequences = ReadSequences(*client, SIZE_MAX, &types);
  EXPECT_EQ(client->close_code(), 1000);
  EXPECT_EQ(sequences, OneTo(LastSequence(failed)));
  for (const char* type : {"workflow.status_changed", "agent.assigned", "task.started",
                           "task.failed", "error.occurred"}) {
    EXPECT_NE(std::find(types.begin(), types.end(), type), types.end()) << type;
  }

  const std::string yaml = absl::StrReplaceAll(kSlowYaml, {{"name: slow", "name: paused"}});
  ASSERT_EQ(CreateYaml(yaml), "paused");
  const std::string paused = Str(Json(Call("POST", "/workflows/paused/execute")), {"execution_id"});
  auto follower = Follow(dev_port_, paused);
  ASSERT_NE(follower, nullptr);
  ASSERT_EQ(Call("POST", "/executions/" + paused + "/pause").status, 200);
  bool checkpoint = false;
  for (int i = 0; i < 100 && !checkpoint; ++i) {
    absl::StatusOr<std::string> message = follower->Read();
    ASSERT_TRUE(message.ok()) << message.status();
    checkpoint = absl::StrContains(*message, "\"type\":\"checkpoint.created\"");
  }
  EXPECT_TRUE(checkpoint);
  Call("POST", "/executions/" + paused + "/cancel");
}

// The README's run command: `gyre dev` without a key generates one and
// prints an example curl, which works as printed (run by a shell), while
// the JSON log never shows the key.
TEST_F(GatewayTest, GyreDevPrintsAWorkingExampleCurl) {
  testing::ScratchDir dir("gateway_test_dev");
  std::unique_ptr<ChildProcess> dev;
  auto port = StartServing(
      {BuildFile("cmd/gyre/gyre"), "dev", "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0", "--data_dir=" + dir.path()},
      {"GYRE_DEV_API_KEY="}, &dev);
  ASSERT_TRUE(port.has_value());
  auto curl = dev->WaitForLine(
      [](const std::string& l) { return absl::StartsWith(l, "  curl -H 'X-API-Key: gyk_"); },
      absl::Seconds(30));
  ASSERT_TRUE(curl.ok()) << curl.status() << dev->Output();
  EXPECT_TRUE(absl::StrContains(*curl, absl::StrCat("http://127.0.0.1:", *port, "/api/v1/")))
      << *curl;
  FILE* pipe = popen((*curl + " -s -o /dev/null -w '%{http_code}'").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char status[16] = {};
  ASSERT_NE(fgets(status, sizeof(status), pipe), nullptr);
  pclose(pipe);
  EXPECT_EQ(std::string(status), "200");
  const std::string key =
      curl->substr(curl->find("gyk_"), curl->find('\'', 20) - curl->find("gyk_"));
  for (absl::string_view line : absl::StrSplit(dev->Output(), '\n')) {
    if (absl::StartsWith(line, "{")) {
      EXPECT_FALSE(absl::StrContains(line, key)) << "the key is in the log: " << line;
    }
  }
  dev->Signal(SIGINT);
  dev->WaitForExit(absl::Seconds(15));
}

// A finished execution's frames stay with the gateway after its subscriber
// leaves: the next ones are served without replaying it from the
// orchestrator again (gyre_gateway_execution_streams_total counts the
// streams opened).
TEST_F(GatewayTest, FinishedExecutionIsReplayedFromTheOrchestratorOnce) {
  auto serving = dev_->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"serving\""); },
      absl::Seconds(1));
  ASSERT_TRUE(serving.ok());
  const int metrics_port = *testing::JsonIntField(*serving, "metrics_port");
  auto streams = [&] {
    auto metrics = testing::HttpGet("127.0.0.1", metrics_port, "/metrics");
    EXPECT_TRUE(metrics.ok());
    for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
      if (absl::ConsumePrefix(&line, "gyre_gateway_execution_streams_total ")) {
        return std::string(line);
      }
    }
    return std::string("(none)");
  };
  ASSERT_FALSE(CreateYaml(WideYaml("ws-kept", 5)).empty());
  const std::string id = Str(Json(Call("POST", "/workflows/ws-kept/execute")), {"execution_id"});
  ASSERT_EQ(WaitForState(id, [](const std::string& s) { return s == "EXECUTION_SUCCEEDED"; }),
            "EXECUTION_SUCCEEDED");
  const std::string before = streams();
  for (int i = 0; i < 3; ++i) {
    auto client = Follow(dev_port_, id);
    ASSERT_NE(client, nullptr);
    EXPECT_EQ(ReadSequences(*client), OneTo(LastSequence(id)));
    EXPECT_EQ(client->close_code(), 1000);
  }
  double opened = 0;
  double previous = 0;
  ASSERT_TRUE(absl::SimpleAtod(streams(), &opened));
  ASSERT_TRUE(absl::SimpleAtod(before, &previous)) << before;
  EXPECT_EQ(opened - previous, 1) << "three subscribers one after another";
}

// Reads a workflow stream's messages until every execution in `expected`
// has sent `expected[id]` events (bounded); returns the sequences by
// execution id, in arrival order.
std::map<std::string, std::vector<int64_t>> ReadWorkflowStream(
    WebSocketClient& client, const std::map<std::string, int64_t>& expected) {
  std::map<std::string, std::vector<int64_t>> received;
  auto complete = [&] {
    for (const auto& [id, count] : expected) {
      if (static_cast<int64_t>(received[id].size()) < count) return false;
    }
    return true;
  };
  while (!complete()) {
    absl::StatusOr<std::string> message = client.Read(absl::Seconds(30));
    if (!message.ok()) {
      ADD_FAILURE() << message.status();
      break;
    }
    const boost::json::object object = boost::json::parse(*message).as_object();
    EXPECT_EQ(object.at("workflow_id").as_string(), "ws-workflow") << *message;
    received[std::string(object.at("execution_id").as_string())].push_back(
        object.at("sequence").as_int64());
  }
  return received;
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> all;
  for (int64_t i = first; i <= last; ++i) all.push_back(i);
  return all;
}

TEST_F(GatewayTest, WorkflowWebSocketFollowsEveryExecutionOfTheWorkflowStartedLaterToo) {
  // A task that runs a few seconds keeps an execution unfinished while the
  // client subscribes.
  ASSERT_FALSE(CreateYaml("name: ws-workflow\n"
                          "tasks:\n"
                          "  - id: nap\n"
                          "    command: sleep 2\n"
                          "    shell: true\n"
                          "  - id: after\n"
                          "    builtin: noop\n"
                          "    depends_on: [nap]\n")
                   .empty());
  auto start = [] {
    return Str(Json(Call("POST", "/workflows/ws-workflow/execute")), {"execution_id"});
  };
  auto succeeded = [](const std::string& s) { return s == "EXECUTION_SUCCEEDED"; };
  // `done` finished before the subscription: not sent (nothing asked for it).
  const std::string done = start();
  ASSERT_EQ(WaitForState(done, succeeded), "EXECUTION_SUCCEEDED");
  const std::string running = start();
  auto client = WebSocketClient::Connect("127.0.0.1", dev_port_, "/ws/workflows/ws-workflow",
                                         {{"X-API-Key", kAdminKey}});
  ASSERT_TRUE(client.ok()) << client.status();
  // The first message (of `running`) shows the listing of the workflow's
  // executions is done: one started now is found by the orchestrator's
  // Watch alone.
  absl::StatusOr<std::string> first = (*client)->Read();
  ASSERT_TRUE(first.ok()) << first.status();
  const boost::json::object first_json = boost::json::parse(*first).as_object();
  ASSERT_EQ(first_json.at("execution_id").as_string(), running) << *first;
  const std::string later = start();
  ASSERT_EQ(WaitForState(running, succeeded), "EXECUTION_SUCCEEDED");
  ASSERT_EQ(WaitForState(later, succeeded), "EXECUTION_SUCCEEDED");
  const int64_t running_last = LastSequence(running);
  const int64_t later_last = LastSequence(later);
  auto received = ReadWorkflowStream(**client, {{running, running_last - 1}, {later, later_last}});
  received[running].insert(received[running].begin(), first_json.at("sequence").as_int64());
  // Each execution's events, all of them, in order, once.
  EXPECT_EQ(received.at(running), OneTo(running_last));
  EXPECT_EQ(received.at(later), OneTo(later_last));
  EXPECT_FALSE(received.contains(done));
  // Still open for executions to come (a workflow's stream does not end).
  absl::StatusOr<std::string> none = (*client)->Read(absl::Milliseconds(300));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable) << none.status();

  // Reconnecting with since: `done` after its 3rd event, `running` after
  // its last; `later`, unnamed but created after `done`, whole.
  auto resumed = WebSocketClient::Connect(
      "127.0.0.1", dev_port_,
      absl::StrCat("/ws/workflows/ws-workflow?since=", done, ":3,", running, ":", running_last),
      {{"X-API-Key", kAdminKey}});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  const int64_t done_last = LastSequence(done);
  const auto again = ReadWorkflowStream(**resumed, {{done, done_last - 3}, {later, later_last}});
  EXPECT_EQ(again.at(done), Range(4, done_last));
  EXPECT_EQ(again.at(later), OneTo(later_last));
  EXPECT_FALSE(again.contains(running));
}

TEST_F(GatewayTest, WebSocketRefusesBadRequestsBeforeUpgrading) {
  auto no_key = WebSocketClient::Connect("127.0.0.1", dev_port_, "/ws/executions/x", {});
  ASSERT_FALSE(no_key.ok());
  EXPECT_TRUE(absl::StrContains(no_key.status().message(), "HTTP 401")) << no_key.status();
  auto unknown = WebSocketClient::Connect("127.0.0.1", dev_port_, "/ws/executions/nonexistent",
                                          {{"X-API-Key", kAdminKey}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "HTTP 404")) << unknown.status();
  // The key as ?access_token= (browsers cannot set headers) is accepted.
  ASSERT_FALSE(CreateYaml(WideYaml("ws-token", 1)).empty());
  const std::string id = Str(Json(Call("POST", "/workflows/ws-token/execute")), {"execution_id"});
  auto token = WebSocketClient::Connect(
      "127.0.0.1", dev_port_, absl::StrCat("/ws/executions/", id, "?access_token=", kAdminKey), {});
  ASSERT_TRUE(token.ok()) << token.status();
  // An unknown workflow is a plain 404, a malformed since a 400.
  auto workflow = WebSocketClient::Connect("127.0.0.1", dev_port_, "/ws/workflows/nonexistent",
                                           {{"X-API-Key", kAdminKey}});
  ASSERT_FALSE(workflow.ok());
  EXPECT_TRUE(absl::StrContains(workflow.status().message(), "HTTP 404")) << workflow.status();
  auto bad_since = WebSocketClient::Connect(
      "127.0.0.1", dev_port_, "/ws/workflows/ws-token?since=7", {{"X-API-Key", kAdminKey}});
  ASSERT_FALSE(bad_since.ok());
  EXPECT_TRUE(absl::StrContains(bad_since.status().message(), "HTTP 400")) << bad_since.status();
  // A plain GET of a WebSocket endpoint is told to upgrade.
  EXPECT_EQ(testing::HttpCall("127.0.0.1", dev_port_, "GET", "/ws/executions/" + id,
                              {{"X-API-Key", kAdminKey}})
                ->status,
            426);
}

// Checks `value` against an OpenAPI schema: $ref, type, required,
// properties, additionalProperties, items and enum (what the document
// uses). Returns the first mismatch, empty when it conforms.
std::string SchemaMismatch(const boost::json::value& value, const boost::json::object& schema,
                           const boost::json::object& document, const std::string& where) {
  if (const auto* ref = schema.if_contains("$ref")) {
    const std::string name(ref->as_string().subview().substr(sizeof("#/components/schemas/") - 1));
    return SchemaMismatch(value, document.at("components").at("schemas").at(name).as_object(),
                          document, where);
  }
  if (const auto* type = schema.if_contains("type")) {
    const std::string expected(type->as_string());
    const bool ok =
        (expected == "object" && value.is_object()) || (expected == "array" && value.is_array()) ||
        (expected == "string" && value.is_string()) ||
        (expected == "integer" && (value.is_int64() || value.is_uint64())) ||
        (expected == "boolean" && value.is_bool()) || (expected == "number" && value.is_number());
    if (!ok)
      return absl::StrCat(where, ": expected ", expected, ", got ", boost::json::serialize(value));
  }
  if (const auto* values = schema.if_contains("enum")) {
    bool found = false;
    for (const auto& option : values->as_array()) found = found || option == value;
    if (!found) return absl::StrCat(where, ": ", boost::json::serialize(value), " not in enum");
  }
  if (value.is_object()) {
    const boost::json::object& object = value.as_object();
    if (const auto* required = schema.if_contains("required")) {
      for (const auto& key : required->as_array()) {
        if (!object.contains(key.as_string())) {
          return absl::StrCat(where, ": required property ", std::string(key.as_string()),
                              " missing");
        }
      }
    }
    for (const auto& [key, member] : object) {
      const auto* properties = schema.if_contains("properties");
      if (properties != nullptr && properties->as_object().contains(key)) {
        std::string mismatch = SchemaMismatch(member, properties->as_object().at(key).as_object(),
                                              document, absl::StrCat(where, ".", std::string(key)));
        if (!mismatch.empty()) return mismatch;
      } else if (const auto* extra = schema.if_contains("additionalProperties");
                 extra != nullptr && extra->is_object()) {
        std::string mismatch = SchemaMismatch(member, extra->as_object(), document,
                                              absl::StrCat(where, ".", std::string(key)));
        if (!mismatch.empty()) return mismatch;
      }
    }
  }
  if (value.is_array()) {
    if (const auto* items = schema.if_contains("items")) {
      for (size_t i = 0; i < value.as_array().size(); ++i) {
        std::string mismatch = SchemaMismatch(value.as_array()[i], items->as_object(), document,
                                              absl::StrCat(where, "[", i, "]"));
        if (!mismatch.empty()) return mismatch;
      }
    }
  }
  return "";
}

// The documented (method, path) pairs, e.g. {"GET", "/api/v1/executions/{id}"}.
std::set<std::pair<std::string, std::string>> DocumentedRoutes(const boost::json::object& doc) {
  std::set<std::pair<std::string, std::string>> routes;
  for (const auto& [path, methods] : doc.at("paths").as_object()) {
    for (const auto& [method, operation] : methods.as_object()) {
      routes.emplace(absl::AsciiStrToUpper(std::string(method)), std::string(path));
    }
  }
  return routes;
}

TEST_F(GatewayTest, OpenApiDocumentsExactlyTheRoutesTheServerHas) {
  const HttpResponse served = Call("GET", "/openapi.json");
  ASSERT_EQ(served.status, 200);
  const boost::json::value doc = Json(served);
  ASSERT_EQ(Str(doc, {"openapi"}).substr(0, 2), "3.");
  const auto documented = DocumentedRoutes(doc.as_object());
  // The server's own table: nothing undocumented, nothing documented that
  // it does not route.
  gateway::RestApi api(grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
                       std::make_shared<gateway::Authenticator>(), {});
  std::set<std::pair<std::string, std::string>> served_routes;
  for (const gateway::Route& route : api.routes().routes()) {
    served_routes.emplace(route.method, route.path_template);
    EXPECT_TRUE(documented.count({route.method, route.path_template}))
        << route.method << " " << route.path_template << " is not in openapi.json";
  }
  for (const auto& [method, path] : documented) {
    EXPECT_TRUE(served_routes.count({method, path}))
        << method << " " << path << " is documented but not routed";
    // And the running server routes it (a parameter filled in).
    std::string target = path;
    for (const char* param : {"{id}", "{task}", "{execution}"}) {
      target = absl::StrReplaceAll(target, {{param, "p"}});
    }
    auto response =
        testing::HttpCall("127.0.0.1", dev_port_, method, target,
                          {{"X-API-Key", kAdminKey}, {"Content-Type", "application/json"}},
                          method == "GET" || method == "DELETE" ? "" : "{}");
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_NE(response->status, 405) << method << " " << target;
    EXPECT_FALSE(absl::StrContains(response->body, "no route for")) << method << " " << target;
  }
}

TEST_F(GatewayTest, RealResponsesMatchTheirDocumentedSchemas) {
  const boost::json::value doc_value = Json(Call("GET", "/openapi.json"));
  const boost::json::object& doc = doc_value.as_object();
  auto check = [&](const std::string& method, const std::string& path_template,
                   const HttpResponse& response) {
    const boost::json::object& operation = doc.at("paths")
                                               .at(absl::StrCat("/api/v1", path_template))
                                               .at(absl::AsciiStrToLower(method))
                                               .as_object();
    const boost::json::object& responses = operation.at("responses").as_object();
    const std::string code = std::to_string(response.status);
    const boost::json::value& documented =
        responses.contains(code) ? responses.at(code) : responses.at("default");
    const boost::json::object& schema =
        documented.at("content").at("application/json").at("schema").as_object();
    EXPECT_EQ(SchemaMismatch(Json(response), schema, doc, "body"), "")
        << method << " " << path_template << " " << response.status << ": " << response.body;
  };
  const std::string yaml = absl::StrReplaceAll(kHelloYaml, {{"name: hello", "name: schemas"}});
  check("POST", "/workflows", Call("POST", "/workflows", yaml, "application/yaml"));
  check("POST", "/workflows",
        Call("POST", "/workflows", "name: x\ntasks: 3\n", "application/yaml"));
  check("GET", "/workflows", Call("GET", "/workflows"));
  check("GET", "/workflows/{id}", Call("GET", "/workflows/schemas"));
  check("PUT", "/workflows/{id}", Call("PUT", "/workflows/schemas", yaml, "application/yaml"));
  const HttpResponse started = Call("POST", "/workflows/schemas/execute");
  check("POST", "/workflows/{id}/execute", started);
  const std::string id = Str(Json(started), {"execution_id"});
  WaitForState(id, [](const std::string& s) { return s == "EXECUTION_SUCCEEDED"; });
  check("GET", "/workflows/{id}/status", Call("GET", "/workflows/schemas/status"));
  check("GET", "/executions", Call("GET", "/executions"));
  check("GET", "/executions/{id}", Call("GET", "/executions/" + id));
  check("GET", "/executions/{id}", Call("GET", "/executions/nope"));
  check("GET", "/executions/{id}/tasks/{task}/logs",
        Call("GET", "/executions/" + id + "/tasks/greet/logs"));
  check("POST", "/executions/{id}/cancel", Call("POST", "/executions/" + id + "/cancel"));
  check("GET", "/queues", Call("GET", "/queues"));
  check("GET", "/agents", Call("GET", "/agents"));
  check("GET", "/health", Call("GET", "/health"));
  check("GET", "/ready", Call("GET", "/ready"));
  check("GET", "/workflow-capacity", Call("GET", "/workflow-capacity"));
  check("POST", "/optimization/analyze", Call("POST", "/optimization/analyze", "{}"));
  check("POST", "/resources/predict",
        Call("POST", "/resources/predict", R"({"tasks":[{"id":"a","builtin":{"kind":"SLEEP"}}]})"));
  check("POST", "/scheduling", Call("POST", "/scheduling", R"({"targets":["daily-report"]})"));
}

TEST_F(GatewayTest, RateLimitCorsAndMetrics) {
  // A gateway of its own: 60 requests a minute, a burst of 3, one origin.
  std::unique_ptr<ChildProcess> limited;
  auto grpc_port = dev_->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"gyre dev is up\""); },
      absl::Seconds(1));
  ASSERT_TRUE(grpc_port.ok());
  auto port = StartServing(
      {BuildFile("services/gateway/gyre-gateway"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
       absl::StrCat("--orchestrator_address=127.0.0.1:",
                    *testing::JsonIntField(*grpc_port, "grpc_port"))},
      {absl::StrCat("GYRE_API_KEYS=[a:admin:", gateway::ApiKeyAuthenticator::HashKey(kAdminKey),
                    "]"),
       "GYRE_RATE_LIMIT_PER_MINUTE=60", "GYRE_RATE_LIMIT_BURST=3",
       "GYRE_CORS_ORIGINS=[https://ui.example]"},
      &limited);
  ASSERT_TRUE(port.has_value());
  auto serving = limited->WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"serving\""); },
      absl::Seconds(10));
  ASSERT_TRUE(serving.ok());
  const int metrics_port = *testing::JsonIntField(*serving, "metrics_port");

  // CORS: an allowed origin gets the headers; a preflight needs no key.
  auto allowed = testing::HttpCall(
      "127.0.0.1", *port, "OPTIONS", "/api/v1/executions",
      {{"Origin", "https://ui.example"}, {"Access-Control-Request-Method", "GET"}});
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->status, 204);
  EXPECT_EQ(allowed->Header("Access-Control-Allow-Origin"), "https://ui.example");
  EXPECT_TRUE(absl::StrContains(allowed->Header("Access-Control-Allow-Headers"), "X-API-Key"));
  auto other = testing::HttpCall("127.0.0.1", *port, "GET", "/api/v1/health",
                                 {{"Origin", "https://evil.example"}, {"X-API-Key", kAdminKey}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->Header("Access-Control-Allow-Origin"), "");

  // The burst is spent (the two calls above: the preflight is free, one
  // GET counted), then 429 with Retry-After.
  int ok = 1;
  HttpResponse refused;
  for (int i = 0; i < 10; ++i) {
    refused = Call("GET", "/health", "", "", kAdminKey, *port);
    if (refused.status != 200) break;
    ++ok;
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(ErrorStatus(refused), "RESOURCE_EXHAUSTED");
  int retry_after = 0;
  EXPECT_TRUE(absl::SimpleAtoi(refused.Header("Retry-After"), &retry_after)) << refused.body;
  EXPECT_GE(retry_after, 1);
  EXPECT_EQ(Call("GET", "/health", "", "", "gyk_wrong", *port).status, 401);

  auto metrics = testing::HttpGet("127.0.0.1", metrics_port, "/metrics");
  ASSERT_TRUE(metrics.ok());
  for (const char* expected :
       {"gyre_gateway_requests_total{code=\"200\",method=\"GET\",route=\"/api/v1/health\"} 3",
        "gyre_gateway_requests_total{code=\"429\",method=\"GET\",route=\"/api/v1/health\"}",
        "gyre_gateway_rate_limited_total 1",
        "gyre_gateway_auth_failures_total{reason=\"invalid\"} 1",
        "gyre_gateway_request_seconds_bucket{route=\"/api/v1/health\"",
        "gyre_gateway_websocket_subscribers 0"}) {
    EXPECT_TRUE(absl::StrContains(metrics->body, expected)) << expected << "\n" << metrics->body;
  }
  Stop(limited);
}

}  // namespace
}  // namespace gyre
