// TLS on the orchestrator's gRPC port, through the real binaries: mutual TLS
// between agents, the CLI and the orchestrator; a client without a
// certificate, with an expired one, or in plaintext is refused; a renewed
// server certificate is served without a restart; require_tls refuses to
// start in plaintext. Every certificate is made by the test (nothing
// checked in that could expire).
#include <grpcpp/grpcpp.h>

#include <fstream>

#include "libs/security/grpc_credentials.h"
#include "libs/testing/test_pki.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

using ::gyre::testing::TestCertificateAuthority;

// The exit code of `process` (-1: killed, or still running after `limit`).
int ExitCode(ChildProcess& process, absl::Duration limit = absl::Seconds(60)) {
  const std::optional<int> status = process.WaitForExit(limit);
  return status.has_value() && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestCertificateAuthority> ca = TestCertificateAuthority::Create("gyre test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    ca_file_ = root_ + "/ca.crt";
    ASSERT_TRUE(ca_->WriteCertificate(ca_file_).ok());
    absl::StatusOr<TestCertificateAuthority::Issued> server =
        ca_->Issue(root_ + "/orchestrator", "orchestrator");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
  }

  // Starts the orchestrator with TLS from `server_`; `client_auth` none or
  // require. Returns its address.
  std::string StartOrchestrator(const std::string& client_auth) {
    auto orchestrator = ChildProcess::Start(
        {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s", "--data_dir=" + root_ + "/data"},
        {"GYRE_TLS_CERT_FILE=" + server_.cert_file, "GYRE_TLS_KEY_FILE=" + server_.key_file,
         "GYRE_TLS_CA_FILE=" + ca_file_, "GYRE_TLS_CLIENT_AUTH=" + client_auth,
         "GYRE_TLS_RELOAD_INTERVAL=1s", "GYRE_REQUIRE_TLS=true"});
    EXPECT_TRUE(orchestrator.ok()) << orchestrator.status();
    if (!orchestrator.ok()) return "";
    orchestrator_ = *std::move(orchestrator);
    auto serving = orchestrator_->WaitForLine(IsServing, absl::Seconds(20));
    EXPECT_TRUE(serving.ok()) << serving.status() << orchestrator_->Output();
    if (!serving.ok()) return "";
    EXPECT_TRUE(absl::StrContains(
        *serving, client_auth == "require" ? "\"tls\":\"mutual\"" : "\"tls\":\"on\""))
        << *serving;
    return absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
  }

  // One ListExecutions on a fresh connection (never a subchannel another
  // channel of the test already holds) with `tls`.
  grpc::Status Call(const std::string& address, const security::TlsConfig& tls) {
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        security::NewChannel(address, tls, arguments);
    if (!channel.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, channel.status().ToString());
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::ListExecutionsResponse response;
    return v1::OrchestratorService::NewStub(*channel)->ListExecutions(
        &context, v1::ListExecutionsRequest(), &response);
  }

  security::TlsConfig ClientTls(const TestCertificateAuthority::Issued& identity) {
    security::TlsConfig tls;
    tls.ca_file = ca_file_;
    tls.cert_file = identity.cert_file;
    tls.key_file = identity.key_file;
    return tls;
  }

  gyre::testing::ScratchDir scratch_{"gyre_tls"};
  std::string root_ = scratch_.path();
  std::optional<TestCertificateAuthority> ca_;
  std::string ca_file_;
  TestCertificateAuthority::Issued server_;
  std::unique_ptr<ChildProcess> orchestrator_;
};

TEST_F(TlsTest, AgentAndCliRunAWorkflowOverMutualTls) {
  const std::string address = StartOrchestrator("require");
  ASSERT_FALSE(address.empty());
  auto agent_identity = ca_->Issue(root_ + "/agent", "agent-1");
  auto cli_identity = ca_->Issue(root_ + "/cli", "cli");
  ASSERT_TRUE(agent_identity.ok() && cli_identity.ok());

  auto agent = ChildProcess::Start(
      {Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--orchestrator_address=" + address,
       "--work_dir=" + root_ + "/agent", "--shutdown_grace=2s", "--allow_root_tasks=true"},
      {"GYRE_TLS_CERT_FILE=" + agent_identity->cert_file,
       "GYRE_TLS_KEY_FILE=" + agent_identity->key_file, "GYRE_TLS_CA_FILE=" + ca_file_,
       "GYRE_TLS_CLIENT_AUTH=require", "GYRE_REQUIRE_TLS=true"});
  ASSERT_TRUE(agent.ok()) << agent.status();
  ASSERT_TRUE((*agent)
                  ->WaitForLine(
                      [](const std::string& line) {
                        return absl::StrContains(line, "registered with the orchestrator");
                      },
                      absl::Seconds(20))
                  .ok())
      << (*agent)->Output();

  const std::string workflow = root_ + "/hello.yaml";
  std::ofstream(workflow) << "name: hello\ntasks:\n  - id: say\n    command: [echo, over tls]\n";
  auto run = ChildProcess::Start({Binary("cmd/gyre/gyre"), "run", workflow,
                                  "--orchestrator=" + address, "--tls_ca_file=" + ca_file_,
                                  "--tls_cert_file=" + cli_identity->cert_file,
                                  "--tls_key_file=" + cli_identity->key_file});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(ExitCode(**run), 0) << (*run)->Output();

  // The same CLI without its certificate is refused, with exit 3 (cannot
  // reach), not a hang.
  auto refused = ChildProcess::Start(
      {Binary("cmd/gyre/gyre"), "list", "--orchestrator=" + address, "--tls_ca_file=" + ca_file_});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(ExitCode(**refused), 3) << (*refused)->Output();
}

TEST_F(TlsTest, ClientWithoutCertificateOrInPlaintextCannotConnect) {
  const std::string address = StartOrchestrator("require");
  ASSERT_FALSE(address.empty());
  auto client = ca_->Issue(root_ + "/client", "client");
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(Call(address, ClientTls(*client)).ok()) << "a client with a certificate connects";

  security::TlsConfig no_certificate;
  no_certificate.ca_file = ca_file_;
  const grpc::Status without = Call(address, no_certificate);
  EXPECT_EQ(without.error_code(), grpc::StatusCode::UNAVAILABLE) << without.error_message();

  const grpc::Status plaintext = Call(address, security::TlsConfig());
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();

  // A certificate from another CA is no better than none.
  auto stranger_ca = TestCertificateAuthority::Create("someone else's CA");
  ASSERT_TRUE(stranger_ca.ok());
  auto stranger = stranger_ca->Issue(root_ + "/stranger", "stranger");
  ASSERT_TRUE(stranger.ok());
  const grpc::Status foreign = Call(address, ClientTls(*stranger));
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::UNAVAILABLE) << foreign.error_message();
}

TEST_F(TlsTest, ExpiredClientCertificateIsRefused) {
  const std::string address = StartOrchestrator("require");
  ASSERT_FALSE(address.empty());
  auto expired = ca_->Issue(root_ + "/expired", "expired", absl::Hours(-48), absl::Hours(-24));
  ASSERT_TRUE(expired.ok());
  const grpc::Status status = Call(address, ClientTls(*expired));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  auto fresh = ca_->Issue(root_ + "/fresh", "fresh");
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(Call(address, ClientTls(*fresh)).ok()) << "the same client, renewed, connects";
}

TEST_F(TlsTest, RotatedServerCertificateIsPickedUpWithoutRestart) {
  const std::string address = StartOrchestrator("none");
  ASSERT_FALSE(address.empty());
  // The client trusts only a new CA, which has not issued the server's
  // certificate yet.
  auto new_ca = TestCertificateAuthority::Create("gyre test CA, next year");
  ASSERT_TRUE(new_ca.ok());
  security::TlsConfig trusts_new_ca;
  trusts_new_ca.ca_file = root_ + "/new-ca.crt";
  ASSERT_TRUE(new_ca->WriteCertificate(trusts_new_ca.ca_file).ok());
  const grpc::Status before = Call(address, trusts_new_ca);
  EXPECT_EQ(before.error_code(), grpc::StatusCode::UNAVAILABLE) << before.error_message();

  // The renewal lands in the same files, as cert-manager updates a Secret.
  ASSERT_TRUE(new_ca->Issue(root_ + "/orchestrator", "orchestrator").ok());
  const pid_t pid = orchestrator_->pid();
  grpc::Status after;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;) {
    after = Call(address, trusts_new_ca);
    if (after.ok()) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_TRUE(after.ok()) << "the renewed certificate was never served: " << after.error_message();
  EXPECT_EQ(orchestrator_->pid(), pid);
  EXPECT_FALSE(orchestrator_->WaitForExit(absl::ZeroDuration()).has_value())
      << "the orchestrator must serve the new certificate without a restart";
}

TEST_F(TlsTest, RequireTlsWithoutCertificateRefusesToStart) {
  auto orchestrator = ChildProcess::Start(
      {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--data_dir=" + root_ + "/data"},
      {"GYRE_REQUIRE_TLS=true"});
  ASSERT_TRUE(orchestrator.ok()) << orchestrator.status();
  EXPECT_EQ(ExitCode(**orchestrator), 2);
  EXPECT_TRUE(absl::StrContains((*orchestrator)->Output(), "require_tls is set but tls_cert_file"))
      << (*orchestrator)->Output();

  // A key that is not the certificate's is named at start, not at the
  // first handshake.
  auto other = ca_->Issue(root_ + "/other", "other");
  ASSERT_TRUE(other.ok());
  auto mismatched = ChildProcess::Start(
      {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--data_dir=" + root_ + "/data"},
      {"GYRE_TLS_CERT_FILE=" + server_.cert_file, "GYRE_TLS_KEY_FILE=" + other->key_file});
  ASSERT_TRUE(mismatched.ok()) << mismatched.status();
  EXPECT_EQ(ExitCode(**mismatched), 2);
  EXPECT_TRUE(absl::StrContains((*mismatched)->Output(), "is not the key of the certificate"))
      << (*mismatched)->Output();
}

}  // namespace
}  // namespace gyre::e2e
