// The gateway's credentials end to end: a real `gyre dev` as the backend and
// a standalone gyre-gateway configured (YAML file) with HTTP Basic users
// (Argon2id), JWT verification (an HS256 secret and a JWKS of RS256 keys)
// and API keys of two tenants, called over real HTTP from this process.
#include <signal.h>
#include <stdio.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "libs/testing/websocket_client.h"
#include "services/gateway/api_key_authenticator.h"
#include "services/gateway/password_authenticator.h"
#include "services/gateway/testing/jwt_signer.h"

namespace gyre {
namespace {

using testing::ChildProcess;
using testing::HttpResponse;

constexpr char kDevKey[] = "gyk_gateway-auth-test-dev-key";
constexpr char kBlueKey[] = "gyk_gateway-auth-test-blue-admin";
constexpr char kGreenKey[] = "gyk_gateway-auth-test-green-admin";
constexpr char kPassword[] = "tr0ub4dor&3-gateway";
constexpr char kSecret[] = "gateway-auth-test-hs256-secret-0123456789";
constexpr char kIssuer[] = "https://idp.test";
constexpr char kAudience[] = "gyre";

std::string BuildFile(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

// Starts a process and waits for its `message` log line.
absl::StatusOr<std::string> StartAndWait(const std::vector<std::string>& argv,
                                         const std::string& message,
                                         std::unique_ptr<ChildProcess>* process) {
  auto started = ChildProcess::Start(argv, {});
  if (!started.ok()) return started.status();
  *process = *std::move(started);
  return (*process)->WaitForLine(
      [&](const std::string& l) {
        return absl::StrContains(l, absl::StrCat("\"msg\":\"", message, "\""));
      },
      absl::Seconds(30));
}

class GatewayAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir("gateway_auth_test");
    auto up = StartAndWait({BuildFile("cmd/gyre/gyre"), "dev", "--grpc_address=127.0.0.1:0",
                            "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                            absl::StrCat("--dev_api_key=", kDevKey),
                            "--task_library_dir=" + BuildFile("examples/task-library"),
                            absl::StrCat("--data_dir=", dir_->path(), "/dev")},
                           "gyre dev is up", &dev_);
    if (!up.ok()) {
      ADD_FAILURE() << up.status() << (dev_ ? dev_->Output() : "");
      return;
    }
    rsa_ = new gateway::testing::RsaKeyPair(*gateway::testing::GenerateRsaKey());
    const std::string jwks = dir_->path() + "/jwks.json";
    std::ofstream(jwks) << gateway::testing::JwksOf("key-1", *rsa_);
    absl::StatusOr<std::string> hash = gateway::PasswordAuthenticator::HashPassword(kPassword);
    if (!hash.ok()) {
      ADD_FAILURE() << hash.status();
      return;
    }
    audit_file_ = dir_->path() + "/audit.jsonl";
    const std::string config = dir_->path() + "/gateway.yaml";
    std::ofstream(config) << absl::StrCat(
        "api_keys:\n",
        "  - \"blue-admin:admin:blue:", gateway::ApiKeyAuthenticator::HashKey(kBlueKey), "\"\n",
        "  - \"green-admin:admin:green:", gateway::ApiKeyAuthenticator::HashKey(kGreenKey), "\"\n",
        "basic_users:\n", "  - \"ann:operator:blue:", *hash, "\"\n", "jwt_issuer: \"", kIssuer,
        "\"\n", "jwt_audience: \"", kAudience, "\"\n", "jwt_hs256_secret: \"", kSecret, "\"\n",
        "jwt_jwks_file: \"", jwks, "\"\n", "audit_log_file: \"", audit_file_, "\"\n",
        // gyre dev serves the optimizer and the predictor on its gRPC port.
        "optimizer_address: \"127.0.0.1:", *testing::JsonIntField(*up, "grpc_port"), "\"\n",
        "predictor_address: \"127.0.0.1:", *testing::JsonIntField(*up, "grpc_port"), "\"\n");
    auto serving = StartAndWait({BuildFile("services/gateway/gyre-gateway"), "--config=" + config,
                                 "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                                 "--http_address=127.0.0.1:0",
                                 absl::StrCat("--orchestrator_address=127.0.0.1:",
                                              *testing::JsonIntField(*up, "grpc_port"))},
                                "serving", &gateway_);
    if (!serving.ok()) {
      ADD_FAILURE() << serving.status() << (gateway_ ? gateway_->Output() : "");
      return;
    }
    metrics_port_ = *testing::JsonIntField(*serving, "metrics_port");
    auto http = gateway_->WaitForLine(
        [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"http serving\""); },
        absl::Seconds(10));
    if (http.ok()) port_ = *testing::JsonIntField(*http, "http_port");
  }
  static void TearDownTestSuite() {
    for (std::unique_ptr<ChildProcess>* process : {&gateway_, &dev_}) {
      if (*process == nullptr) continue;
      (*process)->Signal(SIGTERM);
      (*process)->WaitForExit(absl::Seconds(15));
      process->reset();
    }
    delete rsa_;
    delete dir_;
  }
  void SetUp() override { ASSERT_NE(port_, 0) << (gateway_ ? gateway_->Output() : "no gateway"); }

  static HttpResponse Call(const std::string& method, const std::string& target,
                           std::vector<std::pair<std::string, std::string>> headers,
                           const std::string& body = "",
                           const std::string& content_type = "application/json") {
    if (!body.empty()) headers.emplace_back("Content-Type", content_type);
    auto response = testing::HttpCall("127.0.0.1", port_, method, absl::StrCat("/api/v1", target),
                                      headers, body);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : HttpResponse{};
  }
  static HttpResponse WithKey(const std::string& key, const std::string& method,
                              const std::string& target, const std::string& body = "") {
    return Call(method, target, {{"X-API-Key", key}}, body);
  }
  // Creates a one-task workflow as `key`'s principal; returns its id.
  static std::string CreateWorkflow(const std::string& key, const std::string& name) {
    const HttpResponse created =
        Call("POST", "/workflows", {{"X-API-Key", key}},
             absl::StrCat("name: ", name, "\ntasks:\n  - id: t\n    builtin: noop\n"),
             "application/yaml");
    EXPECT_EQ(created.status, 201) << created.body;
    return name;
  }
  // Starts `workflow` as `key`'s principal; returns the execution id.
  static std::string Execute(const std::string& key, const std::string& workflow) {
    const HttpResponse started = WithKey(key, "POST", "/workflows/" + workflow + "/execute", "{}");
    EXPECT_EQ(started.status, 201) << started.body;
    return Field(started, "execution_id");
  }
  static std::string Field(const HttpResponse& response, const char* name) {
    boost::json::error_code error;
    boost::json::value json = boost::json::parse(response.body, error);
    if (error || !json.is_object() || !json.as_object().contains(name)) return "";
    const boost::json::value& value = json.at(name);
    return value.is_string() ? std::string(value.as_string()) : boost::json::serialize(value);
  }
  static HttpResponse WithBearer(const std::string& token) {
    return Call("GET", "/workflows", {{"Authorization", "Bearer " + token}});
  }
  static std::string Basic(const std::string& user, const std::string& password) {
    return "Basic " + absl::Base64Escape(user + ":" + password);
  }
  static std::string Message(const HttpResponse& response) {
    boost::json::error_code error;
    boost::json::value json = boost::json::parse(response.body, error);
    if (error || !json.is_object() || !json.as_object().contains("error")) return "";
    return std::string(json.at("error").at("message").as_string());
  }
  // Claims valid now for the test issuer and audience; `extra` members win.
  static std::string Claims(const std::string& extra = "") {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    return absl::StrCat("{\"sub\":\"jay\",\"role\":\"viewer\",\"tenant\":\"blue\",\"iss\":\"",
                        kIssuer, "\",\"aud\":\"", kAudience, "\",\"exp\":", now + 300,
                        ",\"nbf\":", now - 5, extra, "}");
  }
  static std::string Metrics() {
    auto metrics = testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    return metrics.ok() ? metrics->body : "";
  }

  static inline testing::ScratchDir* dir_ = nullptr;
  static inline gateway::testing::RsaKeyPair* rsa_ = nullptr;
  static inline std::unique_ptr<ChildProcess> dev_;
  static inline std::unique_ptr<ChildProcess> gateway_;
  static inline std::string audit_file_;
  static inline int port_ = 0;
  static inline int metrics_port_ = 0;
};

constexpr char kHs256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
constexpr char kRs256[] = "{\"alg\":\"RS256\",\"kid\":\"key-1\"}";

TEST_F(GatewayAuthTest, HttpBasicAcceptsTheRightPasswordOnlyAndNeverLogsIt) {
  const HttpResponse ok = Call("GET", "/workflows", {{"Authorization", Basic("ann", kPassword)}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  // The same credentials again take the remembered verification.
  EXPECT_EQ(Call("GET", "/workflows", {{"Authorization", Basic("ann", kPassword)}}).status, 200);
  const HttpResponse wrong =
      Call("GET", "/workflows", {{"Authorization", Basic("ann", "not-the-password-42")}});
  EXPECT_EQ(wrong.status, 401) << wrong.body;
  EXPECT_EQ(Message(wrong), "invalid user name or password");
  EXPECT_FALSE(wrong.Header("WWW-Authenticate").empty());
  const HttpResponse nobody =
      Call("GET", "/workflows", {{"Authorization", Basic("zed", kPassword)}});
  EXPECT_EQ(nobody.status, 401);
  EXPECT_EQ(Message(nobody), Message(wrong)) << "an unknown user reads like a wrong password";
  // An operator by its configured role: viewer routes yes, admin ones no.
  EXPECT_EQ(Call("DELETE", "/workflows/x", {{"Authorization", Basic("ann", kPassword)}}).status,
            403);

  const std::string output = gateway_->Output();
  EXPECT_FALSE(absl::StrContains(output, kPassword));
  EXPECT_FALSE(absl::StrContains(output, "not-the-password-42"));
  const std::string metrics = Metrics();
  EXPECT_TRUE(
      absl::StrContains(metrics, "gyre_gateway_auth_failures_total{reason=\"wrong_password\"} 1"))
      << metrics;
  EXPECT_TRUE(
      absl::StrContains(metrics, "gyre_gateway_auth_failures_total{reason=\"unknown_user\"} 1"));
}

TEST_F(GatewayAuthTest, HashPasswordMakesAHashTheGatewayAccepts) {
  const std::string command =
      absl::StrCat("printf '%s\\n' 'hunter2-hunter2' | ",
                   BuildFile("services/gateway/gyre-gateway"), " hash-password");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[512] = {};
  ASSERT_NE(fgets(line, sizeof(line), pipe), nullptr);
  EXPECT_EQ(pclose(pipe), 0);
  std::string hash(line);
  while (!hash.empty() && hash.back() == '\n') hash.pop_back();
  ASSERT_TRUE(absl::StartsWith(hash, "$argon2id$v=19$")) << hash;
  gateway::PasswordAuthenticator users;
  ASSERT_TRUE(users.AddConfigured("u:viewer:t:" + hash).ok());
  EXPECT_TRUE(users.Authenticate("u", "hunter2-hunter2").ok());
  EXPECT_FALSE(users.Authenticate("u", "hunter2").ok());
}

TEST_F(GatewayAuthTest, JwtBearerAcceptsValidTokensAndSaysWhyOthersAreRefused) {
  using gateway::testing::SignHs256;
  using gateway::testing::SignRs256;
  EXPECT_EQ(WithBearer(SignHs256(kHs256, Claims(), kSecret)).status, 200);
  EXPECT_EQ(WithBearer(*SignRs256(kRs256, Claims(), rsa_->private_pem)).status, 200);

  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const gateway::testing::RsaKeyPair intruder = *gateway::testing::GenerateRsaKey();
  const struct {
    std::string what;
    std::string token;
    std::string reason;  // the metric label
    std::string says;    // in the message
  } refused[] = {
      {"expired", SignHs256(kHs256, Claims(absl::StrCat(",\"exp\":", now - 3600)), kSecret),
       "expired", "expired"},
      {"not yet valid", SignHs256(kHs256, Claims(absl::StrCat(",\"nbf\":", now + 3600)), kSecret),
       "not_yet_valid", "not valid yet"},
      {"forged", *SignRs256(kRs256, Claims(",\"role\":\"admin\""), intruder.private_pem),
       "bad_signature", "signature"},
      {"wrong audience", SignHs256(kHs256, Claims(",\"aud\":\"billing\""), kSecret),
       "wrong_audience", "audience"},
      {"alg none", gateway::testing::UnsignedJwt("{\"alg\":\"none\"}", Claims()) + ".",
       "alg_not_allowed", "alg \"none\""},
      {"public key as HMAC secret", SignHs256(kHs256, Claims(), rsa_->public_pem), "bad_signature",
       "signature"},
  };
  for (const auto& token : refused) {
    const HttpResponse response = WithBearer(token.token);
    EXPECT_EQ(response.status, 401) << token.what << ": " << response.body;
    EXPECT_TRUE(absl::StrContains(Message(response), token.says))
        << token.what << ": " << response.body;
  }
  const std::string metrics = Metrics();
  for (const char* expected : {"gyre_gateway_auth_failures_total{reason=\"expired\"} 1",
                               "gyre_gateway_auth_failures_total{reason=\"not_yet_valid\"} 1",
                               "gyre_gateway_auth_failures_total{reason=\"bad_signature\"} 2",
                               "gyre_gateway_auth_failures_total{reason=\"wrong_audience\"} 1",
                               "gyre_gateway_auth_failures_total{reason=\"alg_not_allowed\"} 1"}) {
    EXPECT_TRUE(absl::StrContains(metrics, expected)) << expected << "\n" << metrics;
  }
  EXPECT_FALSE(absl::StrContains(gateway_->Output(), kSecret));
}

TEST_F(GatewayAuthTest, EachTenantSeesAndTouchesOnlyItsOwnWorkflowsAndExecutions) {
  const std::string blue_workflow = CreateWorkflow(kBlueKey, "blue-only");
  const std::string green_workflow = CreateWorkflow(kGreenKey, "green-only");
  const std::string blue_run = Execute(kBlueKey, blue_workflow);
  const std::string green_run = Execute(kGreenKey, green_workflow);
  ASSERT_FALSE(blue_run.empty());
  ASSERT_FALSE(green_run.empty());

  // Each way round: lists hold only one's own; another's objects are 404,
  // exactly as a name that does not exist (not 403, which would confirm it).
  const struct {
    const char* key;
    std::string own_workflow, own_run, other_workflow, other_run, tenant;
  } sides[] = {{kBlueKey, blue_workflow, blue_run, green_workflow, green_run, "blue"},
               {kGreenKey, green_workflow, green_run, blue_workflow, blue_run, "green"}};
  for (const auto& side : sides) {
    SCOPED_TRACE(side.tenant);
    const HttpResponse workflows = WithKey(side.key, "GET", "/workflows");
    EXPECT_TRUE(absl::StrContains(workflows.body, "workflows/" + side.own_workflow));
    EXPECT_FALSE(absl::StrContains(workflows.body, "workflows/" + side.other_workflow));
    const HttpResponse executions = WithKey(side.key, "GET", "/executions");
    EXPECT_TRUE(absl::StrContains(executions.body, side.own_run)) << executions.body;
    EXPECT_FALSE(absl::StrContains(executions.body, side.other_run)) << executions.body;
    const HttpResponse own = WithKey(side.key, "GET", "/executions/" + side.own_run);
    EXPECT_EQ(own.status, 200);
    EXPECT_TRUE(absl::StrContains(own.body, "\"tenant\":\"" + side.tenant + "\"")) << own.body;

    const std::string run = "/executions/" + side.other_run;
    const std::string workflow = "/workflows/" + side.other_workflow;
    for (const auto& [method, target, body] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"GET", run, ""},
             {"POST", run + "/pause", ""},
             {"POST", run + "/resume", ""},
             {"POST", run + "/cancel", ""},
             {"GET", run + "/tasks/t/logs", ""},
             {"PUT", "/scheduling/" + side.other_run + "/t/priority", "{\"priority\":90}"},
             {"GET", workflow, ""},
             {"GET", workflow + "/status", ""},
             {"POST", workflow + "/execute", "{}"},
             {"PUT", workflow, "{\"tasks\":[{\"id\":\"t\",\"builtin\":{\"kind\":\"NOOP\"}}]}"},
             {"GET", "/executions?workflow=" + side.other_workflow, ""}}) {
      const HttpResponse response = WithKey(side.key, method, target, body);
      if (method == "GET" && absl::StartsWith(target, "/executions?")) {
        EXPECT_FALSE(absl::StrContains(response.body, side.other_run)) << response.body;
        continue;
      }
      EXPECT_EQ(response.status, 404) << method << " " << target << ": " << response.body;
    }
  }
  // An outcome scheduled from the task library is the scheduling tenant's.
  const HttpResponse outcome =
      WithKey(kBlueKey, "POST", "/scheduling",
              "{\"targets\":[\"daily-report\"],\"context\":{\"REGION\":\"eu\"}}");
  ASSERT_EQ(outcome.status, 201) << outcome.body;
  EXPECT_TRUE(absl::StrContains(outcome.body, "\"tenant\":\"blue\"")) << outcome.body;
  const std::string outcome_run(
      boost::json::parse(outcome.body).as_object().at("execution_id").as_string());
  EXPECT_EQ(WithKey(kBlueKey, "GET", "/executions/" + outcome_run).status, 200);
  EXPECT_EQ(WithKey(kGreenKey, "GET", "/executions/" + outcome_run).status, 404);
  // The event streams too: another tenant's workflow or execution is 404
  // before any upgrade; one's own is followed.
  for (const std::string& target :
       {"/ws/workflows/" + green_workflow, "/ws/executions/" + green_run}) {
    auto refused =
        testing::WebSocketClient::Connect("127.0.0.1", port_, target, {{"X-API-Key", kBlueKey}});
    ASSERT_FALSE(refused.ok()) << target;
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "HTTP 404")) << refused.status();
  }
  auto own_stream = testing::WebSocketClient::Connect(
      "127.0.0.1", port_, "/ws/workflows/" + blue_workflow, {{"X-API-Key", kBlueKey}});
  ASSERT_TRUE(own_stream.ok()) << own_stream.status();
  // The other tenant's calls changed nothing: blue's execution was neither
  // paused nor cancelled by green.
  const HttpResponse blue = WithKey(kBlueKey, "GET", "/executions/" + blue_run + "?tasks=false");
  EXPECT_FALSE(absl::StrContains(blue.body, "CANCELLED")) << blue.body;
  // A JWT's tenant claim counts the same way.
  const std::string token = gateway::testing::SignHs256(kHs256, Claims(), kSecret);
  EXPECT_EQ(Call("GET", "/executions/" + blue_run, {{"Authorization", "Bearer " + token}}).status,
            200);
  EXPECT_EQ(Call("GET", "/executions/" + green_run, {{"Authorization", "Bearer " + token}}).status,
            404);
}

TEST_F(GatewayAuthTest, EveryMutatingCallIsAuditedWithWhoWhatAndTheResult) {
  const HttpResponse created =
      Call("POST", "/workflows", {{"X-API-Key", kBlueKey}, {"X-Request-Id", "audit-create-1"}},
           "name: audited\ntasks:\n  - id: t\n    builtin: noop\n", "application/yaml");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Call("DELETE", "/workflows/audited",
                 {{"Authorization", Basic("ann", kPassword)}, {"X-Request-Id", "audit-denied-2"}})
                .status,
            403);
  EXPECT_EQ(Call("POST", "/executions/nope/cancel",
                 {{"X-API-Key", "gyk_not-a-key"}, {"X-Request-Id", "audit-unknown-3"}})
                .status,
            401);
  EXPECT_EQ(
      Call("GET", "/workflows", {{"X-API-Key", kBlueKey}, {"X-Request-Id", "audit-read-4"}}).status,
      200);

  std::ifstream file(audit_file_);
  ASSERT_TRUE(file.good()) << audit_file_;
  std::map<std::string, boost::json::object> by_request;
  std::string all;
  for (std::string line; std::getline(file, line);) {
    all += line + "\n";
    boost::json::error_code error;
    boost::json::value record = boost::json::parse(line, error);
    ASSERT_FALSE(error) << "not a JSON line: " << line;
    const boost::json::object& object = record.as_object();
    for (const char* key :
         {"time", "principal", "tenant", "action", "target", "result", "status", "request_id"}) {
      EXPECT_TRUE(object.contains(key)) << key << " missing in " << line;
    }
    by_request[std::string(object.at("request_id").as_string())] = object;
  }
  auto field = [&](const std::string& id, const char* key) {
    if (!by_request.count(id)) return std::string("(no record)");
    const boost::json::value& value = by_request[id].at(key);
    return value.is_string() ? std::string(value.as_string()) : boost::json::serialize(value);
  };
  EXPECT_EQ(field("audit-create-1", "principal"), "blue-admin");
  EXPECT_EQ(field("audit-create-1", "tenant"), "blue");
  EXPECT_EQ(field("audit-create-1", "action"), "POST /api/v1/workflows");
  EXPECT_EQ(field("audit-create-1", "target"), "/api/v1/workflows");
  EXPECT_EQ(field("audit-create-1", "result"), "success");
  EXPECT_EQ(field("audit-create-1", "status"), "201");
  EXPECT_EQ(field("audit-denied-2", "principal"), "ann");
  EXPECT_EQ(field("audit-denied-2", "action"), "DELETE /api/v1/workflows/{id}");
  EXPECT_EQ(field("audit-denied-2", "target"), "/api/v1/workflows/audited");
  EXPECT_EQ(field("audit-denied-2", "result"), "denied");
  EXPECT_EQ(field("audit-unknown-3", "principal"), "");
  EXPECT_EQ(field("audit-unknown-3", "action"), "POST /api/v1/executions/{id}/cancel");
  EXPECT_EQ(field("audit-unknown-3", "status"), "401");
  EXPECT_EQ(by_request.count("audit-read-4"), 0u) << "reads are not audited";
  // The orchestrator logs the request id it received with the call.
  auto logged = dev_->WaitForLine(
      [](const std::string& l) {
        return absl::StrContains(l, "\"msg\":\"api request\"") &&
               absl::StrContains(l, "\"request_id\":\"audit-create-1\"");
      },
      absl::Seconds(10));
  EXPECT_TRUE(logged.ok()) << "no orchestrator log line names audit-create-1";
  if (logged.ok()) {
    EXPECT_TRUE(absl::StrContains(*logged, "\"rpc\":\"CreateWorkflow\""));
  }
  EXPECT_FALSE(absl::StrContains(all, "gyk_")) << all;
  EXPECT_FALSE(absl::StrContains(all, kPassword)) << all;

  const std::string metrics = Metrics();
  for (const char* expected :
       {"gyre_gateway_audit_events_total{action=\"POST /api/v1/workflows\",result=\"success\"}",
        "gyre_gateway_audit_events_total{action=\"DELETE /api/v1/workflows/{id}\",result="
        "\"denied\"}",
        "gyre_gateway_audit_events_total{action=\"POST /api/v1/executions/{id}/cancel\",result="
        "\"denied\"} 1"}) {
    EXPECT_TRUE(absl::StrContains(metrics, expected)) << expected << "\n" << metrics;
  }
}

// The optimizer and the predictor know nothing of tenants (the optimizer
// reads and writes through the orchestrator as an operator), so the gateway
// checks what a request names before forwarding it: another tenant's
// workflow or execution is 404 there as everywhere.
TEST_F(GatewayAuthTest, OptimizerAndPredictorCallsStayWithinTheTenant) {
  const HttpResponse created =
      Call("POST", "/workflows", {{"X-API-Key", kBlueKey}},
           "name: blue-chain\ntasks:\n  - id: a\n    builtin: sleep\n    duration: 2s\n"
           "  - id: b\n    builtin: sleep\n    duration: 3s\n    depends_on: [a]\n",
           "application/yaml");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string run = Execute(kBlueKey, "blue-chain");
  ASSERT_FALSE(run.empty());

  // Blue analyzes its own workflow and applies a recommendation to it.
  const HttpResponse analyzed =
      WithKey(kBlueKey, "POST", "/optimization/analyze", "{\"workflow\":\"workflows/blue-chain\"}");
  ASSERT_EQ(analyzed.status, 200) << analyzed.body;
  EXPECT_TRUE(absl::StrContains(analyzed.body, "\"critical_path\":[\"a\",\"b\"]")) << analyzed.body;
  std::string ids;
  const boost::json::value analysis = boost::json::parse(analyzed.body);
  for (const auto& recommendation : analysis.at("recommendations").as_array()) {
    absl::StrAppend(&ids, ids.empty() ? "" : ",", boost::json::serialize(recommendation.at("id")));
  }
  ASSERT_FALSE(ids.empty()) << analyzed.body;
  const HttpResponse applied =
      WithKey(kBlueKey, "POST", "/optimization/apply",
              absl::StrCat("{\"workflow\":\"workflows/blue-chain\",\"recommendation_ids\":[", ids,
                           "],\"dry_run\":true}"));
  // Past the tenant check, the optimizer itself answers: 200, or 409 when
  // its recommendation cannot be applied as it stands (never 404 or 501).
  EXPECT_TRUE(applied.status == 200 || applied.status == 409)
      << applied.status << " " << applied.body << "\n"
      << ids;

  // Green sees none of it: by workflow, by execution, through history,
  // and cannot write a version of blue's workflow.
  for (const std::string& body :
       {std::string("{\"workflow\":\"workflows/blue-chain\"}"),
        std::string("{\"workflow\":\"workflows/blue-chain/versions/1\"}"),
        absl::StrCat("{\"execution\":\"executions/", run, "\"}"),
        absl::StrCat("{\"definition\":{\"name\":\"x\",\"tasks\":[{\"id\":\"a\",\"builtin\":"
                     "{\"kind\":\"NOOP\"}}]},\"history_executions\":[\"executions/",
                     run, "\"]}")}) {
    const HttpResponse response = WithKey(kGreenKey, "POST", "/optimization/analyze", body);
    EXPECT_EQ(response.status, 404) << body << ": " << response.body;
  }
  const HttpResponse apply = WithKey(
      kGreenKey, "POST", "/optimization/apply",
      "{\"workflow\":\"workflows/blue-chain\",\"recommendation_ids\":[\"prioritize-critical-"
      "path\"]}");
  EXPECT_EQ(apply.status, 404) << apply.body;
  const HttpResponse versions = WithKey(kBlueKey, "GET", "/workflows/blue-chain");
  EXPECT_EQ(versions.status, 200) << versions.body;
  EXPECT_FALSE(absl::StrContains(versions.body, "\"version\":2")) << versions.body;
  EXPECT_FALSE(absl::StrContains(versions.body, "\"version\":\"2\"")) << versions.body;

  // Prediction: another tenant's workflow answers as an unknown one would
  // (its history must not, and a 404 would say it exists).
  const std::string tasks =
      "\"tasks\":[{\"id\":\"a\",\"builtin\":{\"kind\":\"SLEEP\",\"duration\":\"2s\"}}]";
  const HttpResponse theirs = WithKey(kGreenKey, "POST", "/resources/predict",
                                      "{\"workflow\":\"workflows/blue-chain\"," + tasks + "}");
  const HttpResponse unknown = WithKey(kGreenKey, "POST", "/resources/predict",
                                       "{\"workflow\":\"workflows/never-made\"," + tasks + "}");
  EXPECT_EQ(theirs.status, 200) << theirs.body;
  EXPECT_EQ(unknown.status, 200) << unknown.body;
  EXPECT_EQ(theirs.body, unknown.body);
  EXPECT_EQ(WithKey(kBlueKey, "POST", "/resources/predict",
                    "{\"workflow\":\"workflows/blue-chain\"," + tasks + "}")
                .status,
            200);
}

TEST_F(GatewayAuthTest, DeleteWorkflowIsRefusedWhileItsExecutionsRun) {
  const HttpResponse created =
      Call("POST", "/workflows", {{"X-API-Key", kBlueKey}},
           "name: short-lived\ntasks:\n  - id: wait\n    builtin: sleep\n    duration: 60s\n",
           "application/yaml");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string run = Execute(kBlueKey, "short-lived");
  ASSERT_FALSE(run.empty());

  const HttpResponse running = WithKey(kBlueKey, "DELETE", "/workflows/short-lived");
  EXPECT_EQ(running.status, 409) << running.body;
  EXPECT_TRUE(absl::StrContains(Message(running), run)) << running.body;
  // Another tenant cannot even see it to delete it.
  EXPECT_EQ(WithKey(kGreenKey, "DELETE", "/workflows/short-lived").status, 404);

  ASSERT_EQ(WithKey(kBlueKey, "POST", "/executions/" + run + "/cancel").status, 200);
  HttpResponse deleted;
  // The cancel is accepted at once; the execution ends when its task does.
  for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(100))) {
    deleted = WithKey(kBlueKey, "DELETE", "/workflows/short-lived");
    if (deleted.status != 409) break;
  }
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(WithKey(kBlueKey, "GET", "/workflows/short-lived").status, 404);
  EXPECT_EQ(WithKey(kBlueKey, "DELETE", "/workflows/short-lived").status, 404);
  // Its executions are kept.
  EXPECT_EQ(WithKey(kBlueKey, "GET", "/executions/" + run).status, 200);
}

}  // namespace
}  // namespace gyre
