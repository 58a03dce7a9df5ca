// `gyre dev` runs the whole suite in one process: all six components report
// SERVING over real gRPC, and Ctrl-C (SIGINT) stops it with exit code 0.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"

namespace gyre {
namespace {

using testing::ChildProcess;

// A file of the build (binaries, and the examples copied beside them).
std::string BuildFile(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

std::string GyreBinary() { return BuildFile("cmd/gyre/gyre"); }

// Runs `gyre` with `args` to its end; returns its exit code (-1 if it did
// not exit) and its output.
std::pair<int, std::string> RunGyre(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GyreBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = ChildProcess::Start(argv);
  if (!process.ok()) return {-1, std::string(process.status().message())};
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(60));
  // The output is complete once the pipe closes at exit.
  (void)(*process)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  const int code = status.has_value() && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  return {code, (*process)->Output()};
}

// A `gyre dev` on free ports and a scratch data directory, with `flags`
// added; up once it has said so, stopped with Ctrl-C at the end.
class RunningDev {
 public:
  explicit RunningDev(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {GyreBinary(),
                                     "dev",
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--http_address=127.0.0.1:0",
                                     absl::StrCat("--data_dir=", data_dir_.path())};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto process = ChildProcess::Start(argv);
    if (!process.ok()) {
      ADD_FAILURE() << process.status();
      return;
    }
    process_ = *std::move(process);
    auto up = process_->WaitForLine(
        [](const std::string& line) {
          return absl::StrContains(line, "\"msg\":\"gyre dev is up\"");
        },
        absl::Seconds(20));
    if (!up.ok()) {
      ADD_FAILURE() << up.status() << "\n" << process_->Output();
      return;
    }
    orchestrator_flag_ =
        absl::StrCat("--orchestrator=127.0.0.1:", *testing::JsonIntField(*up, "grpc_port"));
  }
  ~RunningDev() {
    if (process_ == nullptr) return;
    process_->Signal(SIGINT);
    EXPECT_TRUE(process_->WaitForExit(absl::Seconds(15)).has_value());
  }

  bool up() const { return !orchestrator_flag_.empty(); }
  // "--orchestrator=127.0.0.1:PORT", for gyre run and gyre schedule.
  const std::string& orchestrator_flag() const { return orchestrator_flag_; }
  ChildProcess& process() { return *process_; }

 private:
  const testing::ScratchDir data_dir_{"gyre_dev_test"};
  std::unique_ptr<ChildProcess> process_;
  std::string orchestrator_flag_;
};

TEST(DevSuiteTest, AllSixComponentsServeInOneProcessAndCtrlCStopsCleanly) {
  const testing::ScratchDir data_dir("gyre_dev_test");
  ASSERT_FALSE(data_dir.path().empty());
  auto process = ChildProcess::Start({GyreBinary(), "dev", "--grpc_address=127.0.0.1:0",
                                      "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                                      absl::StrCat("--data_dir=", data_dir.path())});
  ASSERT_TRUE(process.ok()) << process.status();
  auto up = (*process)->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"gyre dev is up\""); },
      absl::Seconds(20));
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(testing::JsonIntField(*up, "healthy"), 6) << *up;

  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", *testing::JsonIntField(*up, "grpc_port")),
                          grpc::InsecureChannelCredentials()));
  for (const char* component :
       {"orchestrator", "agent", "scheduler", "optimizer", "predictor", "gateway"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(absl::StrCat("gyre.", component));
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << component;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << component;
  }
  auto metrics =
      testing::HttpGet("127.0.0.1", *testing::JsonIntField(*up, "metrics_port"), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_TRUE(absl::StrContains(metrics->body, "gyre_build_info{service=\"dev\""));

  (*process)->Signal(SIGINT);
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << (*process)->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << (*process)->Output();
}

TEST(DevSuiteTest, RunsAWorkflowToSuccessWithARelativeDataDirectory) {
  // As the README's command starts it (--data_dir=.gyre-dev): task working
  // directories are then relative to gyre dev's, while each task starts
  // inside its own; the output file must still be found.
  const testing::ScratchDir scratch("gyre_dev_relative");
  ASSERT_FALSE(scratch.path().empty());
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: relative\n"
                             "tasks:\n"
                             "  - id: produce\n"
                             "    command: >-\n"
                             "      echo '{\"ROWS\": \"7\"}' > \"$GYRE_OUTPUT\"\n"
                             "    shell: true\n"
                             "  - id: consume\n"
                             "    command: test \"$ROWS\" = 7\n"
                             "    shell: true\n"
                             "    depends_on: [produce]\n";
  // Resolved before leaving this directory: under Bazel it is relative.
  const std::string binary = std::filesystem::absolute(GyreBinary()).string();
  char* previous = getcwd(nullptr, 0);
  ASSERT_NE(previous, nullptr);
  ASSERT_EQ(chdir(scratch.path().c_str()), 0);  // the child starts here
  auto process = ChildProcess::Start({binary, "dev", "--grpc_address=127.0.0.1:0",
                                      "--metrics_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                                      "--data_dir=relative-data", "--run=" + workflow});
  EXPECT_EQ(chdir(previous), 0);
  free(previous);
  ASSERT_TRUE(process.ok()) << process.status();
  auto ran = (*process)->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"example workflow"); },
      absl::Seconds(30));
  ASSERT_TRUE(ran.ok()) << ran.status() << "\n" << (*process)->Output();
  EXPECT_TRUE(absl::StrContains(*ran, "example workflow succeeded")) << (*process)->Output();
  (*process)->Signal(SIGINT);
  EXPECT_TRUE((*process)->WaitForExit(absl::Seconds(15)).has_value());
}

TEST(DevSuiteTest, EveryShippedExampleWorkflowIsValid) {
  for (const char* example :
       {"examples/etl.yaml", "examples/evaluator-branch.yaml", "examples/ml-training.yaml"}) {
    const auto [code, output] = RunGyre({"validate", BuildFile(example)});
    EXPECT_EQ(code, 0) << example << ":\n" << output;
  }
}

TEST(DevSuiteTest, TheShippedExamplesRunToSuccess) {
  // etl.yaml as the README's command runs it (scripts/dev: gyre dev --run),
  // then evaluator-branch.yaml with gyre run against the same suite.
  // ml-training.yaml needs an agent serving "gpu": validated above only.
  RunningDev dev({"--run=" + BuildFile("examples/etl.yaml")});
  ASSERT_TRUE(dev.up());
  auto ran = dev.process().WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"example workflow"); },
      absl::Seconds(60));
  ASSERT_TRUE(ran.ok()) << ran.status() << "\n" << dev.process().Output();
  EXPECT_TRUE(absl::StrContains(*ran, "example workflow succeeded")) << dev.process().Output();
  const auto [code, output] =
      RunGyre({"run", BuildFile("examples/evaluator-branch.yaml"), dev.orchestrator_flag()});
  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(absl::StrContains(output, " succeeded: ")) << output;
}

TEST(DevSuiteTest, SchedulesAnOutcomeFromTheShippedTaskLibrary) {
  RunningDev dev({"--task_library_dir=" + BuildFile("examples/task-library")});
  ASSERT_TRUE(dev.up());
  // daily-report pulls in clean and fetch-raw, and nothing else.
  const auto [code, output] =
      RunGyre({"schedule", "daily-report", "--set", "REGION=eu", dev.orchestrator_flag()});
  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(absl::StrContains(output, "outcome daily-report: 3 tasks, execution ")) << output;
  EXPECT_TRUE(absl::StrContains(output, "succeeded: 3 succeeded, 0 failed")) << output;
  const auto [unknown_code, unknown_output] =
      RunGyre({"schedule", "no-such-task", dev.orchestrator_flag()});
  EXPECT_EQ(unknown_code, 2) << unknown_output;
  EXPECT_TRUE(absl::StrContains(unknown_output, "unknown target task \"no-such-task\""))
      << unknown_output;
  // A workflow file that depends on a library task: gyre run checks it with
  // the orchestrator's library, which pulls in clean and fetch-raw.
  const auto [run_code, run_output] =
      RunGyre({"run", BuildFile("examples/regional-summary.yaml"), dev.orchestrator_flag()});
  EXPECT_EQ(run_code, 0) << run_output;
  EXPECT_TRUE(absl::StrContains(run_output, "regional-summary: 3 tasks, execution ")) << run_output;
  EXPECT_TRUE(absl::StrContains(run_output, "succeeded: 3 succeeded, 0 failed")) << run_output;
}

TEST(DevSuiteTest, AWorkflowNamingALibraryTaskNeedsALibrary) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const auto [code, output] =
      RunGyre({"run", BuildFile("examples/regional-summary.yaml"), dev.orchestrator_flag()});
  EXPECT_EQ(code, 2) << output;
  EXPECT_TRUE(absl::StrContains(output,
                                "regional-summary.yaml:15:18: task \"summary\": unknown "
                                "dependency \"clean\" (and the orchestrator has no task library "
                                "to take it from)"))
      << output;
}

TEST(DevSuiteTest, UnknownCommandExitsTwo) {
  auto process = ChildProcess::Start({GyreBinary(), "serve"});
  ASSERT_TRUE(process.ok());
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  (void)(*process)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(2));
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "gyre: unknown command \"serve\""));
}

}  // namespace
}  // namespace gyre
