// Starts every Gyre service binary as a real process on free loopback ports
// and checks what operators rely on: gRPC health, /metrics, clean SIGTERM
// shutdown, and one-line exit-2 errors for bad configuration.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/server/unimplemented_message_interceptor.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"

namespace gyre {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using testing::ChildProcess;

struct ServiceBinary {
  std::string component;           // "orchestrator"
  std::string path;                // relative to the build or runfiles root
  std::string api_name;            // proto service checked by health, or empty
  std::vector<std::string> extra;  // flags the binary needs for an isolated run
};

void PrintTo(const ServiceBinary& binary, std::ostream* os) { *os << binary.component; }

std::string BinaryPath(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

std::vector<ServiceBinary> AllServices() {
  return {
      {"orchestrator",
       "services/orchestrator/gyre-orchestrator",
       "gyre.v1.OrchestratorService",
       {}},
      {"agent",
       "services/agent/gyre-agent",
       "",
       {"--work_dir=/tmp/gyre-agent-test", "--orchestrator_address=127.0.0.1:1",
        "--allow_root_tasks=true"}},
      {"scheduler", "services/scheduler/gyre-scheduler", "gyre.v1.SchedulerService", {}},
      {"optimizer", "services/optimizer/gyre-optimizer", "gyre.v1.OptimizerService", {}},
      {"predictor",
       "services/predictor/gyre-predictor",
       "gyre.v1.PredictorService",
       {"--data_dir=/tmp/gyre-predictor-test"}},
      {"gateway", "services/gateway/gyre-gateway", "", {"--http_address=127.0.0.1:0"}},
  };
}

bool IsServingLine(const std::string& line) {
  return absl::StrContains(line, "\"msg\":\"serving\"");
}

HealthCheckResponse::ServingStatus CheckHealth(Health::Stub& stub, const std::string& service,
                                               grpc::StatusCode* code) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  *code = stub.Check(&context, request, &response).error_code();
  return response.status();
}

class ServiceProcessTest : public ::testing::TestWithParam<ServiceBinary> {};

TEST_P(ServiceProcessTest, ServesHealthAndMetricsThenExitsCleanlyOnSigterm) {
  const ServiceBinary& binary = GetParam();
  std::vector<std::string> argv = {BinaryPath(binary.path), "--grpc_address=127.0.0.1:0",
                                   "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s"};
  argv.insert(argv.end(), binary.extra.begin(), binary.extra.end());
  auto process = ChildProcess::Start(argv);
  ASSERT_TRUE(process.ok()) << process.status();

  auto serving = (*process)->WaitForLine(IsServingLine, absl::Seconds(20));
  ASSERT_TRUE(serving.ok()) << serving.status();
  const std::optional<int> grpc_port = testing::JsonIntField(*serving, "grpc_port");
  const std::optional<int> metrics_port = testing::JsonIntField(*serving, "metrics_port");
  ASSERT_TRUE(grpc_port && metrics_port) << *serving;

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", *grpc_port),
                                     grpc::InsecureChannelCredentials());
  auto health = Health::NewStub(channel);
  grpc::StatusCode code;
  EXPECT_EQ(CheckHealth(*health, "", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(CheckHealth(*health, "gyre." + binary.component, &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  if (!binary.api_name.empty()) {
    EXPECT_EQ(CheckHealth(*health, binary.api_name, &code), HealthCheckResponse::SERVING);
    EXPECT_EQ(code, grpc::StatusCode::OK);
  }
  // What the Helm chart's liveness probe asks (readiness asks the component).
  EXPECT_EQ(CheckHealth(*health, "gyre.liveness", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  CheckHealth(*health, "gyre.v1.NoSuchService", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);

  auto metrics = testing::HttpGet("127.0.0.1", *metrics_port, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(absl::StrContains(metrics->body,
                                absl::StrCat("gyre_build_info{service=\"", binary.component, "\"")))
      << metrics->body;
  EXPECT_TRUE(absl::StrContains(metrics->body, "process_resident_memory_bytes "));
  EXPECT_TRUE(absl::StrContains(metrics->body, "gyre_grpc_server_handled_total{"))
      << "the health checks above are RPCs and must be counted";

  if (binary.component == "gateway") {
    auto http_line = (*process)->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "http_port"); },
        absl::Seconds(5));
    ASSERT_TRUE(http_line.ok()) << http_line.status();
    auto healthz =
        testing::HttpGet("127.0.0.1", *testing::JsonIntField(*http_line, "http_port"), "/healthz");
    ASSERT_TRUE(healthz.ok()) << healthz.status();
    EXPECT_EQ(healthz->status, 200);
  }

  (*process)->Signal(SIGTERM);
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(2 + 8));
  ASSERT_TRUE(status.has_value()) << "no exit within the grace period\n" << (*process)->Output();
  EXPECT_TRUE(WIFEXITED(*status)) << (*process)->Output();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << (*process)->Output();
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "\"msg\":\"stopped\""));
}

// GLIBC_TUNABLES as the running process sees it ("" when unset).
std::string TunablesOf(pid_t pid) {
  std::ifstream file(absl::StrCat("/proc/", pid, "/environ"));
  std::string entry;
  while (std::getline(file, entry, '\0')) {
    if (absl::StartsWith(entry, "GLIBC_TUNABLES=")) return entry.substr(15);
  }
  return "";
}

TEST(HugePageHeapTest, TheOrchestratorBacksItsHeapWithHugePagesUnlessTheOperatorChose) {
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(mode, line) || absl::StrContains(line, "[never]")) {
    GTEST_SKIP() << "transparent huge pages are off on this machine";
  }
  // Its own data directory: other tests start orchestrators in parallel.
  const testing::ScratchDir data_dir("gyre_huge_page_test");
  ASSERT_FALSE(data_dir.path().empty());
  const std::vector<std::string> argv = {
      BinaryPath("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
      "--metrics_address=127.0.0.1:0", absl::StrCat("--data_dir=", data_dir.path())};
  struct Case {
    std::vector<std::string> env;
    std::string expected;
  };
  for (const Case& c :
       std::vector<Case>{// (Only single tunables: glibc cuts the string it parsed at ':'
                         // in place, so /proc/PID/environ cannot show a list.)
                         {{"GLIBC_TUNABLES="}, "glibc.malloc.hugetlb=1"},
                         {{"GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}, "glibc.malloc.hugetlb=0"}}) {
    auto process = ChildProcess::Start(argv, c.env);
    ASSERT_TRUE(process.ok()) << process.status();
    ASSERT_TRUE((*process)->WaitForLine(IsServingLine, absl::Seconds(20)).ok())
        << (*process)->Output();
    // Same pid after the re-exec: supervisors and signals are unaffected.
    EXPECT_EQ(TunablesOf((*process)->pid()), c.expected) << c.env[0];
    // And the same name (not "exe", as /proc/self/exe would make it).
    std::ifstream comm(absl::StrCat("/proc/", (*process)->pid(), "/comm"));
    std::string name;
    std::getline(comm, name);
    EXPECT_EQ(name, "gyre-orchestrat") << c.env[0];
    (*process)->Signal(SIGTERM);
    EXPECT_TRUE((*process)->WaitForExit(absl::Seconds(10)).has_value());
  }
}

// Every Gyre RPC is built today; a generated service base class with no
// overrides stands in for one a later version adds to the protos, served
// with the interceptor every Gyre server installs.
TEST(UnbuiltApiTest, AnUnbuiltRpcAnswersUnimplementedNamingTheMethod) {
  gyre::v1::PredictorService::Service unbuilt;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&unbuilt);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<server::UnimplementedMessageInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(factories));
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  ASSERT_NE(grpc_server, nullptr);
  auto stub = gyre::v1::PredictorService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  gyre::v1::ForecastQueueLoadRequest request;
  gyre::v1::ForecastQueueLoadResponse response;
  const grpc::Status status = stub->ForecastQueueLoad(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(status.error_message(),
            "/gyre.v1.PredictorService/ForecastQueueLoad is not implemented yet in this version "
            "of Gyre");
  grpc_server->Shutdown();
}

// Honest health: each RPC of each API is a health name, SERVING when built
// and NOT_SERVING when it answers UNIMPLEMENTED, from the module's own
// declaration checked against the proto; the start log names the unbuilt.
TEST(UnbuiltApiTest, HealthAndTheStartLogSayWhichRpcsAreNotBuilt) {
  struct Api {
    std::string path;
    std::vector<std::string> built;
    std::vector<std::string> not_built;
  };
  const std::vector<Api> apis = {
      {"services/scheduler/gyre-scheduler", {"gyre.v1.SchedulerService/RankAndPlace"}, {}},
      {"services/optimizer/gyre-optimizer",
       {"gyre.v1.OptimizerService/AnalyzeWorkflow", "gyre.v1.OptimizerService/ApplyOptimizations"},
       {}},
      {"services/predictor/gyre-predictor",
       {"gyre.v1.PredictorService/PredictResources", "gyre.v1.PredictorService/RecordObservations",
        "gyre.v1.PredictorService/ForecastQueueLoad"},
       {}}};
  for (const Api& api : apis) {
    const testing::ScratchDir data("gyre_health_detail");
    std::vector<std::string> argv = {BinaryPath(api.path), "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0"};
    if (absl::StrContains(api.path, "predictor")) {
      argv.push_back("--data_dir=" + data.path() + "/model");
    }
    auto process = ChildProcess::Start(argv);
    ASSERT_TRUE(process.ok()) << process.status();
    auto serving = (*process)->WaitForLine(IsServingLine, absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status() << (*process)->Output();
    auto health = Health::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port")),
        grpc::InsecureChannelCredentials()));
    grpc::StatusCode code = grpc::StatusCode::OK;
    for (const std::string& rpc : api.built) {
      EXPECT_EQ(CheckHealth(*health, rpc, &code), HealthCheckResponse::SERVING) << rpc;
    }
    for (const std::string& rpc : api.not_built) {
      EXPECT_EQ(CheckHealth(*health, rpc, &code), HealthCheckResponse::NOT_SERVING) << rpc;
      EXPECT_TRUE(absl::StrContains((*process)->Output(), "not built yet in this version of Gyre"))
          << (*process)->Output();
      EXPECT_TRUE(absl::StrContains((*process)->Output(), rpc)) << (*process)->Output();
    }
    if (api.not_built.empty()) {
      EXPECT_FALSE(absl::StrContains((*process)->Output(), "not built yet"))
          << (*process)->Output();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllServices, ServiceProcessTest, ::testing::ValuesIn(AllServices()),
                         [](const auto& info) { return info.param.component; });

// One bad-configuration case and the line it must print.
struct BadConfigCase {
  std::string name;
  std::vector<std::string> flags;
  std::string file_contents;  // written to a temp file passed as --config
  std::vector<std::string> env;
  std::string expected;  // the whole stderr line; $FILE stands for the temp file
};

void PrintTo(const BadConfigCase& bad, std::ostream* os) { *os << bad.name; }

std::vector<BadConfigCase> BadConfigCases() {
  return {
      {"UnknownFlag",
       {"--grpc_adress=x:1"},
       "",
       {},
       "unknown flag --grpc_adress (did you mean \"--grpc_address\"?); see --help"},
      {"BadDurationFlag",
       {"--shutdown_grace=ten"},
       "",
       {},
       "flag --shutdown_grace: shutdown_grace: invalid duration \"ten\" "
       "(expected e.g. \"10s\", \"250ms\", \"1h30m\")"},
      {"MissingFile",
       {"--config=/nonexistent/gyre.yaml"},
       "",
       {},
       "config file \"/nonexistent/gyre.yaml\": No such file or directory"},
      {"UnknownKeyInFile",
       {},
       "log_level: info\nshutdown_grase: 5s\n",
       {},
       "$FILE:2:1: unknown key \"shutdown_grase\" (did you mean \"shutdown_grace\"?)"},
      {"BadValueInFile",
       {},
       "log_level: loud\n",
       {},
       "$FILE:1:12: log_level: invalid value \"loud\" (expected one of: debug, info, warn, "
       "error)"},
      {"UndefinedVariableInFile",
       {},
       "grpc_address: ${GYRE_TEST_UNSET_HOST}:1\n",
       {},
       "$FILE:1:15: grpc_address: undefined variable \"GYRE_TEST_UNSET_HOST\" in "
       "\"${GYRE_TEST_UNSET_HOST}\""},
      {"BadEnvironmentValue",
       {},
       "",
       {"GYRE_METRICS_ADDRESS=nowhere"},
       "environment variable GYRE_METRICS_ADDRESS: metrics_address: invalid address "
       "\"nowhere\" (expected host:port, e.g. 0.0.0.0:8080)"},
      {"StrayArgument",
       {"serve"},
       "",
       {},
       "unexpected argument \"serve\" (settings are flags such as --config=FILE)"},
  };
}

// "see --help", says every configuration error: it must work.
TEST_P(ServiceProcessTest, HelpListsTheFlagsAndExitsZero) {
  const ServiceBinary& binary = GetParam();
  auto process = ChildProcess::Start({BinaryPath(binary.path), "--help"});
  ASSERT_TRUE(process.ok()) << process.status();
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  (void)(*process)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  const std::string output = (*process)->Output();
  ASSERT_TRUE(WIFEXITED(*status)) << output;
  EXPECT_EQ(WEXITSTATUS(*status), 0) << output;
  const std::string binary_name = binary.path.substr(binary.path.rfind('/') + 1);
  EXPECT_TRUE(absl::StartsWith(output, absl::StrCat("usage: ", binary_name, " "))) << output;
  for (const char* flag : {"--config", "--grpc_address", "--metrics_address", "--log_level"}) {
    EXPECT_TRUE(absl::StrContains(output, flag)) << flag << " missing from:\n" << output;
  }
}

class BadConfigTest : public ::testing::TestWithParam<std::tuple<ServiceBinary, BadConfigCase>> {};

TEST_P(BadConfigTest, ExitsTwoWithOneLineNamingTheProblem) {
  const auto& [binary, bad] = GetParam();
  std::vector<std::string> argv = {BinaryPath(binary.path)};
  argv.insert(argv.end(), bad.flags.begin(), bad.flags.end());
  std::string file;
  if (!bad.file_contents.empty()) {
    char name[] = "/tmp/gyre_bad_config_XXXXXX";
    const int fd = mkstemp(name);
    ASSERT_GE(fd, 0);
    close(fd);
    file = name;
    std::ofstream(file) << bad.file_contents;
    argv.push_back("--config=" + file);
  }
  auto process = ChildProcess::Start(argv, bad.env);
  ASSERT_TRUE(process.ok()) << process.status();
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(10));
  if (!file.empty()) std::remove(file.c_str());
  ASSERT_TRUE(status.has_value()) << "still running with bad config";
  ASSERT_TRUE(WIFEXITED(*status)) << (*process)->Output();
  EXPECT_EQ(WEXITSTATUS(*status), 2) << (*process)->Output();

  std::string expected = bad.expected;
  if (const size_t at = expected.find("$FILE"); at != std::string::npos) {
    expected.replace(at, 5, file);
  }
  const std::string binary_name = binary.path.substr(binary.path.rfind('/') + 1);
  // Output() is complete once the pipe closes at exit; wait for that.
  (void)(*process)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(2));
  EXPECT_EQ((*process)->Output(), absl::StrCat(binary_name, ": ", expected));
}

INSTANTIATE_TEST_SUITE_P(AllServices, BadConfigTest,
                         ::testing::Combine(::testing::ValuesIn(AllServices()),
                                            ::testing::ValuesIn(BadConfigCases())),
                         [](const auto& info) {
                           return absl::StrCat(std::get<0>(info.param).component, "_",
                                               std::get<1>(info.param).name);
                         });

TEST(AgentConfigTest, RejectsAnIdTheOrchestratorCouldNotUse) {
  auto process = ChildProcess::Start({BinaryPath("services/agent/gyre-agent")}, {"GYRE_ID=Bad_Id"});
  ASSERT_TRUE(process.ok()) << process.status();
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(status.has_value()) << "still running with a bad id";
  (void)(*process)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(2));
  ASSERT_TRUE(WIFEXITED(*status)) << (*process)->Output();
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  EXPECT_EQ((*process)->Output(),
            "gyre-agent: environment variable GYRE_ID: id: invalid agent id \"Bad_Id\" (expected 1 "
            "to 63 lowercase letters, digits and '-', starting with a letter or digit)");
}

}  // namespace
}  // namespace gyre
