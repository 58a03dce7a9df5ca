// Secrets stay secret (issue 23), through the real processes: an
// orchestrator on a real PostgreSQL (its password from a file), requiring an
// agent join token, a gyre-agent presenting it, and a gyre-gateway with an
// API key, all logging at debug. An execution started with a secret context
// value (over gRPC, through the gateway and by `gyre run --secret`) gives the
// value to its task and to nothing else: no event, API answer, error,
// `gyre status` line, metric or log line of any process holds the secret
// value, the join token, the API key or the database password.
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "libs/testing/postgres_server.h"
#include "services/gateway/api_key_authenticator.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

constexpr char kSecretValue[] = "s3cr3t-context-value-7f1e9a";
constexpr char kGatewaySecret[] = "s3cr3t-through-the-gateway-5c2d";
constexpr char kCliSecret[] = "s3cr3t-from-gyre-run-env-91ab";
constexpr char kJoinToken[] = "join-token-secrets-test-0d3b6c";
constexpr char kApiKey[] = "gyk_secrets-test-admin-key-44e0";

// The workflow declares DB_PASSWORD (empty default) and writes what its
// task received to `seen`, so the test knows the value reached the task.
std::string Workflow(const std::string& seen) {
  return absl::StrCat(
      "name: uses-secret\n"
      "context: {DB_PASSWORD: \"\"}\n"
      "tasks:\n"
      "  - id: use\n"
      "    command: [sh, -c, 'printf %s \"$DB_PASSWORD\" >> ",
      seen, "; echo >> ", seen, "']\n");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class SecretsTest : public Cluster {
 protected:
  void SetUp() override {
    auto server = gyre::testing::PostgresServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto database = server_->CreateDatabase();
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *database;
    password_file_ = root_ + "/postgres-password";
    std::ofstream(password_file_) << server_->password() << "\n";
    Cluster::SetUp();
    if (HasFatalFailure()) return;
    // The token from a file, as a mounted Kubernetes Secret gives it.
    const std::string token_file = root_ + "/join-token";
    std::ofstream(token_file) << kJoinToken << "\n";
    auto agent = ChildProcess::Start(
        {Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--orchestrator_address=" + address_, "--slots=2",
         "--work_dir=" + root_ + "/keeper", "--shutdown_grace=2s", "--allow_root_tasks=true"},
        {"GYRE_JOIN_TOKEN_FILE=" + token_file, "GYRE_LOG_LEVEL=debug"});
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = *std::move(agent);
    auto agent_serving = agent_->WaitForLine(IsServing, absl::Seconds(30));
    ASSERT_TRUE(agent_serving.ok()) << agent_->Output();
    agent_metrics_port_ = testing::JsonIntField(*agent_serving, "metrics_port").value_or(0);
    ASSERT_TRUE(agent_
                    ->WaitForLine(
                        [](const std::string& line) {
                          return absl::StrContains(line, "registered with the orchestrator");
                        },
                        absl::Seconds(30))
                    .ok())
        << agent_->Output();
    auto gateway = ChildProcess::Start(
        {Binary("services/gateway/gyre-gateway"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
         "--orchestrator_address=" + address_},
        {absl::StrCat("GYRE_API_KEYS=[ops:admin:", gateway::ApiKeyAuthenticator::HashKey(kApiKey),
                      "]"),
         "GYRE_LOG_LEVEL=debug"});
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    auto serving = gateway_->WaitForLine(IsServing, absl::Seconds(30));
    ASSERT_TRUE(serving.ok()) << gateway_->Output();
    auto http = gateway_->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"http serving\""); },
        absl::Seconds(30));
    ASSERT_TRUE(http.ok()) << gateway_->Output();
    gateway_http_port_ = testing::JsonIntField(*http, "http_port").value_or(0);
    gateway_metrics_port_ = testing::JsonIntField(*serving, "metrics_port").value_or(0);
  }

  void TearDown() override {
    gateway_.reset();
    agent_.reset();
    Cluster::TearDown();
    server_.reset();
  }

  std::vector<std::string> ExtraOrchestratorEnv() override {
    return {"GYRE_STORE=postgres", "GYRE_POSTGRES_DSN=" + server_->TcpDsn(database_),
            "GYRE_POSTGRES_PASSWORD_FILE=" + password_file_, "GYRE_LOG_LEVEL=debug",
            absl::StrCat("GYRE_AGENT_JOIN_TOKEN_HASHES=[", TokenHash(), "]")};
  }

  std::string TokenHash() {
    if (!token_hash_.empty()) return token_hash_;
    const std::string file = root_ + "/token.txt";
    std::ofstream(file) << kJoinToken << "\n";
    auto hash = ChildProcess::Start(
        {"/bin/sh", "-c", absl::StrCat(Binary("cmd/gyre/gyre"), " hash-token < ", file)});
    EXPECT_TRUE(hash.ok()) << hash.status();
    if (!hash.ok()) return "";
    (*hash)->WaitForExit(absl::Seconds(60));
    token_hash_ = std::string(absl::StripAsciiWhitespace((*hash)->Output()));
    return token_hash_;
  }

  // Every credential of the suite, named for the failure message.
  std::vector<std::pair<std::string, std::string>> Secrets() const {
    return {{"the secret context value", kSecretValue},
            {"the secret given through the gateway", kGatewaySecret},
            {"the secret given to gyre run", kCliSecret},
            {"the join token", kJoinToken},
            {"the gateway API key", kApiKey},
            {"the database password", server_->password()}};
  }

  void ExpectNoSecretIn(const std::string& where, const std::string& text) {
    for (const auto& [what, secret] : Secrets()) {
      EXPECT_FALSE(absl::StrContains(text, secret)) << what << " appears in " << where << ":\n"
                                                    << text;
    }
  }

  std::unique_ptr<gyre::testing::PostgresServer> server_;
  std::string database_;
  std::string password_file_;
  std::string token_hash_;
  std::unique_ptr<ChildProcess> agent_;
  int agent_metrics_port_ = 0;
  std::unique_ptr<ChildProcess> gateway_;
  int gateway_http_port_ = 0;
  int gateway_metrics_port_ = 0;
};

TEST_F(SecretsTest, ASecretReachesItsTaskAndNoLogEventAnswerOrMetric) {
  ASSERT_NE(agent_, nullptr);
  const std::string seen = root_ + "/seen.txt";
  absl::StatusOr<v1::WorkflowDefinition> definition =
      workflow::ParseWorkflowYaml(Workflow(seen), "uses-secret.yaml");
  ASSERT_TRUE(definition.ok()) << definition.status();
  {
    grpc::ClientContext call;
    v1::CreateWorkflowRequest request;
    *request.mutable_workflow() = *definition;
    v1::WorkflowDefinition stored;
    const grpc::Status status = stub_->CreateWorkflow(&call, request, &stored);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Over gRPC, followed by a watcher from the first event.
  v1::StartExecutionRequest request;
  request.set_workflow("workflows/uses-secret");
  (*request.mutable_secret_context())["DB_PASSWORD"] = kSecretValue;
  v1::Execution started;
  {
    grpc::ClientContext call;
    const grpc::Status status = stub_->StartExecution(&call, request, &started);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(started.context().at("DB_PASSWORD"), "<secret>");
  ASSERT_EQ(started.secret_context_keys_size(), 1);
  EXPECT_EQ(started.secret_context_keys(0), "DB_PASSWORD");
  EXPECT_EQ(Wait(started.name()), v1::EXECUTION_SUCCEEDED);
  std::string events;
  for (const v1::Event& event : WatchAll(started.name())) events += event.DebugString();
  EXPECT_TRUE(absl::StrContains(events, "<secret>")) << events;
  ExpectNoSecretIn("the Watch events", events);
  {
    grpc::ClientContext call;
    v1::GetExecutionRequest get;
    get.set_name(started.name());
    v1::Execution execution;
    ASSERT_TRUE(stub_->GetExecution(&call, get, &execution).ok());
    EXPECT_EQ(execution.context().at("DB_PASSWORD"), "<secret>");
    ExpectNoSecretIn("GetExecution", execution.DebugString());
  }
  {
    grpc::ClientContext call;
    v1::ListExecutionsRequest list;
    list.set_view(v1::EXECUTION_VIEW_FULL);
    v1::ListExecutionsResponse executions;
    ASSERT_TRUE(stub_->ListExecutions(&call, list, &executions).ok());
    ExpectNoSecretIn("ListExecutions (FULL)", executions.DebugString());
  }
  ExpectNoSecretIn("the task's run", Task(started.name(), "use").DebugString());

  // Refusals quote no secret: a key in both maps, an undeclared secret key.
  for (const auto& [key, in_context] :
       std::vector<std::pair<std::string, bool>>{{"DB_PASSWORD", true}, {"UNDECLARED", false}}) {
    v1::StartExecutionRequest bad = request;
    (*bad.mutable_secret_context())[key] = kSecretValue;
    if (in_context) (*bad.mutable_context())[key] = "plain";
    grpc::ClientContext call;
    v1::Execution refused;
    const grpc::Status status = stub_->StartExecution(&call, bad, &refused);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    ExpectNoSecretIn("a refusal", status.error_message());
  }

  // Through the gateway, and read back through it.
  const std::vector<std::pair<std::string, std::string>> key = {{"X-API-Key", kApiKey}};
  auto through_gateway = testing::HttpCall(
      "127.0.0.1", gateway_http_port_, "POST", "/api/v1/workflows/uses-secret/execute",
      {{"X-API-Key", kApiKey}, {"Content-Type", "application/json"}},
      absl::StrCat(R"({"secret_context": {"DB_PASSWORD": ")", kGatewaySecret, R"("}})"));
  ASSERT_TRUE(through_gateway.ok()) << through_gateway.status();
  ASSERT_EQ(through_gateway->status, 201) << through_gateway->body;
  ExpectNoSecretIn("the gateway's answer", through_gateway->body);
  const std::string id = [&] {
    const size_t at = through_gateway->body.find("\"execution_id\":\"");
    if (at == std::string::npos) return std::string();
    const size_t from = at + 16;
    return through_gateway->body.substr(from, through_gateway->body.find('"', from) - from);
  }();
  ASSERT_FALSE(id.empty()) << through_gateway->body;
  EXPECT_EQ(Wait("executions/" + id), v1::EXECUTION_SUCCEEDED);
  auto read_back =
      testing::HttpCall("127.0.0.1", gateway_http_port_, "GET", "/api/v1/executions/" + id, key);
  ASSERT_TRUE(read_back.ok()) << read_back.status();
  EXPECT_EQ(read_back->status, 200) << read_back->body;
  // JSON escapes the mask's angle brackets.
  EXPECT_TRUE(absl::StrContains(read_back->body, R"("DB_PASSWORD":"\u003csecret\u003e")"))
      << read_back->body;
  ExpectNoSecretIn("GET /executions/{id}", read_back->body);

  // `gyre run --secret` (the value from gyre's environment), then
  // `gyre status`.
  const std::string file = root_ + "/uses-secret.yaml";
  std::ofstream(file) << Workflow(seen);
  auto run = ChildProcess::Start({Binary("cmd/gyre/gyre"), "run", file, "--secret", "DB_PASSWORD",
                                  "--orchestrator=" + address_},
                                 {absl::StrCat("DB_PASSWORD=", kCliSecret)});
  ASSERT_TRUE(run.ok()) << run.status();
  const std::optional<int> ran = (*run)->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(ran.has_value() && WIFEXITED(*ran) && WEXITSTATUS(*ran) == 0) << (*run)->Output();
  ExpectNoSecretIn("gyre run's output", (*run)->Output());
  auto status = ChildProcess::Start(
      {Binary("cmd/gyre/gyre"), "status", started.name(), "--orchestrator=" + address_});
  ASSERT_TRUE(status.ok()) << status.status();
  (*status)->WaitForExit(absl::Seconds(60));
  EXPECT_TRUE(absl::StrContains((*status)->Output(), "DB_PASSWORD")) << (*status)->Output();
  ExpectNoSecretIn("gyre status", (*status)->Output());

  // Each task had its value, in order of the starts.
  EXPECT_EQ(ReadFile(seen),
            absl::StrCat(kSecretValue, "\n", kGatewaySecret, "\n", kCliSecret, "\n"));

  // Every metric, and every line each process logged.
  for (const auto& [name, port] : std::vector<std::pair<std::string, int>>{
           {"the orchestrator's /metrics", metrics_port_},
           {"the agent's /metrics", agent_metrics_port_},
           {"the gateway's /metrics", gateway_metrics_port_}}) {
    auto metrics = testing::HttpGet("127.0.0.1", port, "/metrics");
    ASSERT_TRUE(metrics.ok()) << name << ": " << metrics.status();
    EXPECT_EQ(metrics->status, 200);
    ExpectNoSecretIn(name, metrics->body);
  }
  ExpectNoSecretIn("the orchestrator's log", orchestrator_->Output());
  ExpectNoSecretIn("the agent's log", agent_->Output());
  ExpectNoSecretIn("the gateway's log", gateway_->Output());
  // The logs were at debug: they said something about these executions.
  EXPECT_TRUE(absl::StrContains(orchestrator_->Output(), started.name()));

  // The marking is state: after a crash the recovered execution still masks.
  const std::string before_restart = orchestrator_->Output();
  RestartOrchestrator();
  ExpectNoSecretIn("the orchestrator's log before the restart", before_restart);
  {
    v1::GetExecutionRequest get;
    get.set_name(started.name());
    v1::Execution execution;
    // The channel notices the old process is gone on its first call.
    grpc::Status status;
    for (int tries = 0; tries < 50; ++tries) {
      grpc::ClientContext call;
      call.set_wait_for_ready(true);
      call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      status = stub_->GetExecution(&call, get, &execution);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    EXPECT_EQ(execution.context().at("DB_PASSWORD"), "<secret>");
    ExpectNoSecretIn("GetExecution after a restart", execution.DebugString());
  }
  ExpectNoSecretIn("the restarted orchestrator's log", orchestrator_->Output());
}

}  // namespace
}  // namespace gyre::e2e
