// The gateway's HTTPS and WSS, end to end: a real `gyre dev` (the
// orchestrator) and a standalone gyre-gateway serving TLS with certificates
// made by the test, called by curl (a separate process) and by a Beast TLS
// WebSocket client. Proves: a client trusting the CA gets REST answers and
// the event feed; one that does not trust it gets nothing; a plaintext
// request on the TLS port gets a plaintext 400 (no crash, no hang); TLS
// below 1.2 is refused; a renewed certificate is served without a restart;
// a missing or bad certificate, or require_tls without one, stops the start
// with the key and file named.
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "libs/testing/test_pki.h"
#include "services/gateway/api_key_authenticator.h"

namespace gyre {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using testing::ChildProcess;
using testing::TestCertificateAuthority;

constexpr char kAdminKey[] = "gyk_gateway-tls-test-admin-key";

std::string BuildFile(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

int ExitCode(ChildProcess& process, absl::Duration limit = absl::Seconds(60)) {
  const std::optional<int> status = process.WaitForExit(limit);
  return status.has_value() && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

// Waits for a process's "http serving" line; returns its http_port.
std::optional<int> WaitServing(ChildProcess& process) {
  auto line = process.WaitForLine(
      [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"http serving\""); },
      absl::Seconds(30));
  if (!line.ok()) {
    ADD_FAILURE() << line.status() << "\n" << process.Output();
    return std::nullopt;
  }
  return testing::JsonIntField(*line, "http_port");
}

// What curl reports: its exit code (0 for a completed exchange, 60 for a
// certificate it does not trust), the HTTP status and the body.
struct CurlResult {
  int exit_code = -1;
  int status = 0;
  std::string body;
  std::string output;
};

CurlResult Curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      "/usr/bin/curl", "-sS", "--max-time", "20", "-w", "\nHTTP_STATUS=%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  CurlResult result;
  auto process = ChildProcess::Start(argv);
  if (!process.ok()) {
    ADD_FAILURE() << process.status();
    return result;
  }
  result.exit_code = ExitCode(**process);
  result.output = (*process)->Output();
  for (absl::string_view line : absl::StrSplit(result.output, '\n')) {
    if (absl::ConsumePrefix(&line, "HTTP_STATUS=")) {
      (void)absl::SimpleAtoi(line, &result.status);
    } else if (!line.empty() && result.body.empty() && line.front() == '{') {
      result.body = std::string(line);
    }
  }
  return result;
}

// Every message of a WSS feed until the server closes it (or 60 s pass), and
// the close code; an error when the TLS or WebSocket handshake fails.
struct WssResult {
  std::vector<std::string> messages;
  int close_code = 0;
};

absl::StatusOr<WssResult> ReadWssFeed(int port, const std::string& target,
                                      const std::string& ca_file) {
  asio::io_context io;
  ssl::context context(ssl::context::tls_client);
  beast::error_code error;
  context.load_verify_file(ca_file, error);
  if (error) return absl::InternalError(absl::StrCat("load ", ca_file, ": ", error.message()));
  context.set_verify_mode(ssl::verify_peer);
  websocket::stream<beast::ssl_stream<tcp::socket>> ws(io, context);
  beast::get_lowest_layer(ws).connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)), error);
  if (!error) ws.next_layer().handshake(ssl::stream_base::client, error);
  if (error) return absl::UnavailableError(absl::StrCat("TLS handshake: ", error.message()));
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::request_type& request) { request.set("X-API-Key", kAdminKey); }));
  ws.handshake(absl::StrCat("127.0.0.1:", port), target, error);
  if (error) return absl::FailedPreconditionError(absl::StrCat("WSS handshake: ", error.message()));
  WssResult result;
  beast::flat_buffer buffer;
  bool done = false;
  std::function<void()> read = [&] {
    ws.async_read(buffer, [&](beast::error_code read_error, size_t) {
      if (read_error) {
        if (read_error == websocket::error::closed) result.close_code = ws.reason().code;
        done = true;
        return;
      }
      result.messages.push_back(beast::buffers_to_string(buffer.data()));
      buffer.clear();
      read();
    });
  };
  read();
  io.run_for(std::chrono::seconds(60));
  if (!done) return absl::DeadlineExceededError("the feed did not close within 60 s");
  return result;
}

// Whether a TLS handshake with the port succeeds for a client that offers
// only `max_version` and below (security level 0, so the client's own
// defaults do not refuse old versions first: the server must).
bool HandshakeSucceeds(int port, int max_version) {
  asio::io_context io;
  ssl::context context(ssl::context::tls_client);
  SSL_CTX_set_security_level(context.native_handle(), 0);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(context.native_handle(), max_version);
  context.set_verify_mode(ssl::verify_none);
  beast::ssl_stream<beast::tcp_stream> stream(io, context);
  beast::error_code error;
  beast::get_lowest_layer(stream).socket().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)), error);
  if (error) return false;
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(20));
  bool ok = false;
  stream.async_handshake(ssl::stream_base::client,
                         [&](beast::error_code handshake_error) { ok = !handshake_error; });
  io.run();
  return ok;
}

class GatewayTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new testing::ScratchDir("gateway_tls_test");
    auto started =
        ChildProcess::Start({BuildFile("cmd/gyre/gyre"), "dev", "--grpc_address=127.0.0.1:0",
                             "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                             absl::StrCat("--dev_api_key=", kAdminKey),
                             "--task_library_dir=" + BuildFile("examples/task-library"),
                             absl::StrCat("--data_dir=", data_dir_->path())});
    if (!started.ok()) return;
    dev_ = *std::move(started);
    auto up = dev_->WaitForLine(
        [](const std::string& l) { return absl::StrContains(l, "\"msg\":\"gyre dev is up\""); },
        absl::Seconds(30));
    if (up.ok()) grpc_port_ = testing::JsonIntField(*up, "grpc_port").value_or(0);
  }
  static void TearDownTestSuite() {
    if (dev_ != nullptr) {
      dev_->Signal(SIGINT);
      dev_->WaitForExit(absl::Seconds(15));
      dev_.reset();
    }
    delete data_dir_;
  }

  void SetUp() override {
    ASSERT_NE(grpc_port_, 0) << (dev_ ? dev_->Output() : "gyre dev did not start");
    auto ca = TestCertificateAuthority::Create("gyre gateway test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_.emplace(*std::move(ca));
    ca_file_ = root_ + "/ca.crt";
    ASSERT_TRUE(ca_->WriteCertificate(ca_file_).ok());
    auto server = ca_->Issue(root_ + "/gateway", "gateway");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
  }
  void TearDown() override {
    if (gateway_ != nullptr) {
      gateway_->Signal(SIGTERM);
      gateway_->WaitForExit(absl::Seconds(15));
    }
  }

  // Starts gyre-gateway in front of gyre dev with `env` (the TLS settings).
  std::unique_ptr<ChildProcess> StartGateway(std::vector<std::string> env) {
    env.push_back(absl::StrCat(
        "GYRE_API_KEYS=[admin:admin:", gateway::ApiKeyAuthenticator::HashKey(kAdminKey), "]"));
    auto started = ChildProcess::Start(
        {BuildFile("services/gateway/gyre-gateway"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
         absl::StrCat("--orchestrator_address=127.0.0.1:", grpc_port_)},
        env);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *std::move(started) : nullptr;
  }
  // Starts the gateway serving TLS with server_'s certificate; its port.
  int StartTlsGateway() {
    gateway_ = StartGateway({"GYRE_HTTP_TLS_CERT_FILE=" + server_.cert_file,
                             "GYRE_HTTP_TLS_KEY_FILE=" + server_.key_file,
                             "GYRE_HTTP_TLS_RELOAD_INTERVAL=1s"});
    if (gateway_ == nullptr) return 0;
    return WaitServing(*gateway_).value_or(0);
  }

  CurlResult CallApi(int port, const std::string& method, const std::string& path,
                     const std::string& ca_file, const std::string& body = "") {
    std::vector<std::string> args = {"--cacert", ca_file, "-X",
                                     method,     "-H",    absl::StrCat("X-API-Key: ", kAdminKey)};
    if (!body.empty()) {
      args.insert(args.end(), {"-H", "Content-Type: application/yaml", "--data-binary", body});
    }
    args.push_back(absl::StrCat("https://127.0.0.1:", port, "/api/v1", path));
    return Curl(args);
  }

  static std::string Field(const std::string& json, const std::vector<const char*>& path) {
    boost::json::error_code error;
    boost::json::value value = boost::json::parse(json, error);
    if (error) return "";
    const boost::json::value* at = &value;
    for (const char* key : path) {
      if (!at->is_object() || !at->as_object().contains(key)) return "";
      at = &at->as_object().at(key);
    }
    return at->is_string() ? std::string(at->as_string()) : boost::json::serialize(*at);
  }

  static inline testing::ScratchDir* data_dir_ = nullptr;
  static inline std::unique_ptr<ChildProcess> dev_;
  static inline int grpc_port_ = 0;

  testing::ScratchDir scratch_{"gateway_tls"};
  std::string root_ = scratch_.path();
  std::optional<TestCertificateAuthority> ca_;
  std::string ca_file_;
  TestCertificateAuthority::Issued server_;
  std::unique_ptr<ChildProcess> gateway_;
};

TEST_F(GatewayTlsTest, HttpsRestAndWssFeedForAClientTrustingTheCa) {
  const int port = StartTlsGateway();
  ASSERT_NE(port, 0);
  const CurlResult health = CallApi(port, "GET", "/health", ca_file_);
  EXPECT_EQ(health.exit_code, 0) << health.output;
  EXPECT_EQ(health.status, 200) << health.output;

  // A whole workflow over HTTPS, then its event feed over WSS.
  const CurlResult created = CallApi(port, "POST", "/workflows", ca_file_,
                                     "name: tls-hello\ntasks:\n  - id: greet\n    builtin: noop\n");
  ASSERT_EQ(created.status, 201) << created.output;
  const CurlResult executed = CallApi(port, "POST", "/workflows/tls-hello/execute", ca_file_);
  ASSERT_EQ(executed.status / 100, 2) << executed.output;
  const std::string id = Field(executed.body, {"execution_id"});
  ASSERT_FALSE(id.empty()) << executed.output;
  absl::StatusOr<WssResult> feed = ReadWssFeed(port, "/ws/executions/" + id, ca_file_);
  ASSERT_TRUE(feed.ok()) << feed.status();
  EXPECT_EQ(feed->close_code, 1000) << "the feed ends normally with the execution";
  ASSERT_FALSE(feed->messages.empty());
  int64_t expected = 1;
  for (const std::string& message : feed->messages) {
    EXPECT_EQ(Field(message, {"sequence"}), std::to_string(expected++)) << message;
  }
  const CurlResult execution = CallApi(port, "GET", "/executions/" + id + "?tasks=false", ca_file_);
  EXPECT_EQ(Field(execution.body, {"execution", "state"}), "EXECUTION_SUCCEEDED")
      << execution.output;
  EXPECT_EQ(Field(execution.body, {"execution", "last_sequence"}),
            std::to_string(feed->messages.size()))
      << "every event of the execution came over WSS";
}

TEST_F(GatewayTlsTest, ClientNotTrustingTheCaGetsNothing) {
  const int port = StartTlsGateway();
  ASSERT_NE(port, 0);
  auto stranger = TestCertificateAuthority::Create("someone else's CA");
  ASSERT_TRUE(stranger.ok());
  const std::string stranger_file = root_ + "/stranger.crt";
  ASSERT_TRUE(stranger->WriteCertificate(stranger_file).ok());
  const CurlResult refused = CallApi(port, "GET", "/health", stranger_file);
  EXPECT_EQ(refused.exit_code, 60) << "curl: peer certificate cannot be authenticated\n"
                                   << refused.output;
  EXPECT_EQ(refused.status, 0) << refused.output;
  EXPECT_FALSE(ReadWssFeed(port, "/ws/executions/none", stranger_file).ok());
  // The refused handshakes did not hurt the server.
  EXPECT_EQ(CallApi(port, "GET", "/health", ca_file_).status, 200);
}

TEST_F(GatewayTlsTest, PlaintextRequestOnTheTlsPortIsRefusedCleanly) {
  const int port = StartTlsGateway();
  ASSERT_NE(port, 0);
  auto plain =
      testing::HttpCall("127.0.0.1", port, "GET", "/api/v1/health", {{"X-API-Key", kAdminKey}});
  ASSERT_TRUE(plain.ok()) << "a plaintext client gets an answer, not a reset: " << plain.status();
  EXPECT_EQ(plain->status, 400) << plain->body;
  EXPECT_TRUE(absl::StrContains(plain->body, "HTTPS only")) << plain->body;
  EXPECT_EQ(plain->Header("Connection"), "close");
  // The server is still up and serving TLS.
  EXPECT_EQ(CallApi(port, "GET", "/health", ca_file_).status, 200);
  EXPECT_FALSE(gateway_->WaitForExit(absl::ZeroDuration()).has_value());
}

TEST_F(GatewayTlsTest, OnlyTls12AndLaterAreAccepted) {
  const int port = StartTlsGateway();
  ASSERT_NE(port, 0);
  EXPECT_FALSE(HandshakeSucceeds(port, TLS1_1_VERSION)) << "TLS 1.1 must be refused";
  EXPECT_FALSE(HandshakeSucceeds(port, TLS1_VERSION)) << "TLS 1.0 must be refused";
  EXPECT_TRUE(HandshakeSucceeds(port, TLS1_2_VERSION));
  EXPECT_TRUE(HandshakeSucceeds(port, TLS1_3_VERSION));
}

TEST_F(GatewayTlsTest, RenewedCertificateIsServedWithoutRestart) {
  const int port = StartTlsGateway();
  ASSERT_NE(port, 0);
  // The client trusts only a new CA that has not issued the gateway's
  // certificate yet.
  auto new_ca = TestCertificateAuthority::Create("gyre gateway test CA, next year");
  ASSERT_TRUE(new_ca.ok());
  const std::string new_ca_file = root_ + "/new-ca.crt";
  ASSERT_TRUE(new_ca->WriteCertificate(new_ca_file).ok());
  EXPECT_EQ(CallApi(port, "GET", "/health", new_ca_file).exit_code, 60);

  // The renewal lands in the same files, as cert-manager updates a Secret.
  ASSERT_TRUE(new_ca->Issue(root_ + "/gateway", "gateway").ok());
  const pid_t pid = gateway_->pid();
  CurlResult after;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(250))) {
    after = CallApi(port, "GET", "/health", new_ca_file);
    if (after.status == 200) break;
  }
  EXPECT_EQ(after.status, 200) << "the renewed certificate was never served: " << after.output;
  EXPECT_EQ(gateway_->pid(), pid);
  EXPECT_FALSE(gateway_->WaitForExit(absl::ZeroDuration()).has_value())
      << "the gateway must serve the new certificate without a restart";
  EXPECT_TRUE(absl::StrContains(gateway_->Output(), "TLS certificate reloaded"));
  // The old CA's clients are now refused: the old certificate is gone.
  EXPECT_EQ(CallApi(port, "GET", "/health", ca_file_).exit_code, 60);
}

TEST_F(GatewayTlsTest, MissingOrBadCertificateOrPlaintextUnderRequireTlsStopsTheStart) {
  auto missing = StartGateway({"GYRE_HTTP_TLS_CERT_FILE=" + root_ + "/nowhere.crt",
                               "GYRE_HTTP_TLS_KEY_FILE=" + server_.key_file});
  ASSERT_NE(missing, nullptr);
  EXPECT_EQ(ExitCode(*missing), 2);
  EXPECT_TRUE(absl::StrContains(missing->Output(),
                                "http_tls_cert_file " + root_ + "/nowhere.crt: cannot be read"))
      << missing->Output();

  auto other = ca_->Issue(root_ + "/other", "other");
  ASSERT_TRUE(other.ok());
  auto mismatched = StartGateway({"GYRE_HTTP_TLS_CERT_FILE=" + server_.cert_file,
                                  "GYRE_HTTP_TLS_KEY_FILE=" + other->key_file});
  ASSERT_NE(mismatched, nullptr);
  EXPECT_EQ(ExitCode(*mismatched), 2);
  EXPECT_TRUE(absl::StrContains(mismatched->Output(),
                                "http_tls_key_file " + other->key_file +
                                    ": is not the key of the certificate in http_tls_cert_file"))
      << mismatched->Output();

  // require_tls covers the HTTP port as it does the gRPC ones: with TLS on
  // gRPC but not on HTTP the gateway refuses to start.
  auto plaintext =
      StartGateway({"GYRE_REQUIRE_TLS=true", "GYRE_TLS_CERT_FILE=" + server_.cert_file,
                    "GYRE_TLS_KEY_FILE=" + server_.key_file, "GYRE_TLS_CA_FILE=" + ca_file_});
  ASSERT_NE(plaintext, nullptr);
  EXPECT_EQ(ExitCode(*plaintext), 2);
  EXPECT_TRUE(
      absl::StrContains(plaintext->Output(), "require_tls is set but http_tls_cert_file is empty"))
      << plaintext->Output();
}

}  // namespace
}  // namespace gyre
