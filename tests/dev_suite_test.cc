// `gyre dev` runs the whole suite in one process: all six components report
// SERVING over real gRPC, and Ctrl-C (SIGINT) stops it with exit code 0.
// The gyre CLI's commands run against it as a developer runs them.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/gyre/dev_suite_module.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/scratch_dir.h"
#include "services/agent/agent_module.h"
#include "services/gateway/gateway_module.h"
#include "services/optimizer/optimizer_module.h"
#include "services/orchestrator/orchestrator_module.h"
#include "services/predictor/predictor_module.h"
#include "services/scheduler/scheduler_module.h"

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

// What a finished `gyre` wrote, stdout and stderr apart.
struct GyreOutput {
  int code = -1;  // -1 if it did not exit
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// Runs `gyre` with `args` to its end, its stdout and stderr into files of
// their own (ChildProcess merges them).
// `binary` is another of the build's binaries than gyre, `env` ("K=V")
// is added to its environment, and it is given `limit` to exit; it runs in
// `cwd` when given (`binary` must then be an absolute path).
GyreOutput RunGyreApart(const std::vector<std::string>& args,
                        const std::vector<std::string>& env = {},
                        absl::Duration limit = absl::Seconds(60),
                        const std::string& binary = GyreBinary(), const std::string& cwd = "") {
  const testing::ScratchDir dir("gyre_cli_output");
  std::vector<std::string> argv = {
      "/bin/sh", "-c",
      "cd \"${CLI_TEST_CWD:-.}\" && exec \"$0\" \"$@\" >\"$CLI_TEST_OUT\" 2>\"$CLI_TEST_ERR\"",
      binary};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> environment = {"CLI_TEST_OUT=" + dir.path() + "/out",
                                          "CLI_TEST_ERR=" + dir.path() + "/err"};
  if (!cwd.empty()) environment.push_back("CLI_TEST_CWD=" + cwd);
  environment.insert(environment.end(), env.begin(), env.end());
  auto process = ChildProcess::Start(argv, environment);
  GyreOutput result;
  if (!process.ok()) {
    result.err = std::string(process.status().message());
    return result;
  }
  const std::optional<int> status = (*process)->WaitForExit(limit);
  if (status.has_value() && WIFEXITED(*status)) result.code = WEXITSTATUS(*status);
  result.out = ReadFile(dir.path() + "/out");
  result.err = ReadFile(dir.path() + "/err");
  return result;
}

// For failure messages.
std::ostream& operator<<(std::ostream& os, const GyreOutput& output) {
  return os << "exit " << output.code << "\nstdout:\n" << output.out << "\nstderr:\n" << output.err;
}

// "executions/ID" from gyre run's first line ("NAME: N tasks, execution
// executions/ID"); empty if there is none.
std::string ExecutionOf(const std::string& run_output) {
  const std::string marker = ", execution ";
  const size_t at = run_output.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return run_output.substr(start, run_output.find('\n', start) - start);
}

// A `gyre dev` on free ports and a scratch data directory, with `flags`
// added; up once it has said so, stopped with Ctrl-C at the end.
class RunningDev {
 public:
  // `env` ("K=V") is added to its environment.
  explicit RunningDev(const std::vector<std::string>& flags,
                      const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {GyreBinary(),
                                     "dev",
                                     "--grpc_address=127.0.0.1:0",
                                     "--metrics_address=127.0.0.1:0",
                                     "--http_address=127.0.0.1:0",
                                     absl::StrCat("--data_dir=", data_dir_.path())};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto process = ChildProcess::Start(argv, env);
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
  const std::string& data_dir() const { return data_dir_.path(); }
  // The port of orchestrator_flag().
  std::string grpc_port() const {
    return orchestrator_flag_.substr(orchestrator_flag_.rfind(':') + 1);
  }
  // "--orchestrator=127.0.0.1:PORT", for gyre run and gyre schedule.
  const std::string& orchestrator_flag() const { return orchestrator_flag_; }
  ChildProcess& process() { return *process_; }

 private:
  const testing::ScratchDir data_dir_{"gyre_dev_test"};
  std::unique_ptr<ChildProcess> process_;
  std::string orchestrator_flag_;
};

// The first `count` space-separated fields of the line of `text` that
// starts with `first` followed by a space; empty if there is none.
std::vector<std::string> FieldsOfLine(const std::string& text, const std::string& first,
                                      size_t count) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, first + " ")) continue;
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() > count) fields.resize(count);
    return fields;
  }
  return {};
}

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
  // The REST address it announces has the port it bound, not the ":0" asked.
  const size_t http_at = up->find("\"http\":\"http://127.0.0.1:");
  ASSERT_NE(http_at, std::string::npos) << *up;
  const int http_port = std::atoi(up->c_str() + http_at + strlen("\"http\":\"http://127.0.0.1:"));
  ASSERT_GT(http_port, 0) << *up;
  auto rest = testing::HttpGet("127.0.0.1", http_port, "/healthz");
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->status, 200) << rest->body;

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
                             "    outputs: [ROWS]\n"
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
  // One builds on the task library: valid with it, an unknown dependency
  // without it.
  const auto [code, output] = RunGyre({"validate", BuildFile("examples/regional-summary.yaml"),
                                       "--task_library_dir=" + BuildFile("examples/task-library")});
  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(absl::StrContains(output, "ok, workflow regional-summary with 3 tasks")) << output;
  // Nothing listens on port 1: the error hints the flag.
  const auto [alone_code, alone_output] = RunGyre(
      {"validate", BuildFile("examples/regional-summary.yaml"), "--orchestrator=127.0.0.1:1"});
  EXPECT_EQ(alone_code, 2) << alone_output;
  EXPECT_TRUE(absl::StrContains(alone_output, "unknown dependency \"clean\"")) << alone_output;
  EXPECT_TRUE(absl::StrContains(alone_output,
                                "(if it is a task-library task: --task_library_dir=DIR checks "
                                "against the library's files; the orchestrator at 127.0.0.1:1"))
      << alone_output;
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
  // validate without --task_library_dir asks the orchestrator's library.
  const GyreOutput valid = RunGyreApart(
      {"validate", BuildFile("examples/regional-summary.yaml"), dev.orchestrator_flag()});
  EXPECT_EQ(valid.code, 0) << valid;
  EXPECT_TRUE(absl::StrContains(valid.out,
                                "ok, workflow regional-summary with 3 tasks (with the task library "
                                "of the orchestrator at 127.0.0.1:"))
      << valid;
  const GyreOutput library = RunGyreApart({"library", dev.orchestrator_flag()});
  EXPECT_EQ(library.code, 0) << library;
  EXPECT_TRUE(absl::StartsWith(library.out, "TASK ")) << library;
  EXPECT_EQ(FieldsOfLine(library.out, "daily-report", 3),
            (std::vector<std::string>{"daily-report", "clean", "Summarize"}))
      << library;
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

TEST(DevSuiteTest, GyreRunPrintsTheFirstTwentyFailuresAndCountsTheRest) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_failures");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::string yaml = "name: many-failures\ntasks:\n";
  for (int i = 0; i < 23; ++i) absl::StrAppend(&yaml, "  - {id: t", i, ", command: [false]}\n");
  std::ofstream(workflow) << yaml;
  const auto [code, output] = RunGyre({"run", workflow, dev.orchestrator_flag()});
  EXPECT_EQ(code, 1) << output;
  size_t printed = 0;
  for (size_t at = output.find("failed: exit code 1"); at != std::string::npos;
       at = output.find("failed: exit code 1", at + 1)) {
    ++printed;
  }
  EXPECT_EQ(printed, 20u) << output;
  EXPECT_TRUE(absl::StrContains(output, "  ... and 3 more (gyre status executions/")) << output;
}

TEST(DevSuiteTest, StatusLogsAndListShowAFinishedExecution) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_status");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: cli-demo\n"
                             "tasks:\n"
                             "  - id: greet\n"
                             "    shell: true\n"
                             "    command: >-\n"
                             "      printf 'hello stdout\\nline two\\n';\n"
                             "      printf 'to stderr\\n' >&2;\n"
                             "      echo '{\"GREETING\": \"hi\"}' > \"$GYRE_OUTPUT\"\n"
                             "    outputs: [GREETING]\n"
                             "  - id: check\n"
                             "    shell: true\n"
                             "    command: test \"$GREETING\" = hi\n"
                             "    depends_on: [greet]\n"
                             "  - id: chatty\n"  // past the agent's 1 MiB cap
                             "    shell: true\n"
                             "    command: head -c 1100000 /dev/zero | tr '\\0' a\n";
  const auto [run_code, run_output] = RunGyre({"run", workflow, dev.orchestrator_flag()});
  ASSERT_EQ(run_code, 0) << run_output;
  const std::string execution = ExecutionOf(run_output);
  ASSERT_TRUE(absl::StartsWith(execution, "executions/")) << run_output;
  const std::string id = execution.substr(std::string("executions/").size());
  // The queue the tasks ran in and the embedded agent that ran them.
  const GyreOutput queues = RunGyreApart({"queues", dev.orchestrator_flag()});
  EXPECT_EQ(queues.code, 0) << queues;
  EXPECT_TRUE(absl::StartsWith(queues.out,
                               "QUEUE    DEPTH  RUNNING  AGENTS  FREE SLOTS  DESIRED "
                               "WORKERS\n"))
      << queues;
  EXPECT_EQ(FieldsOfLine(queues.out, "default", 4),
            (std::vector<std::string>{"default", "0", "0", "1"}))
      << queues;
  const GyreOutput agents = RunGyreApart({"agents", dev.orchestrator_flag()});
  EXPECT_EQ(agents.code, 0) << agents;
  EXPECT_TRUE(absl::StartsWith(agents.out, "AGENT ")) << agents;
  EXPECT_EQ(FieldsOfLine(agents.out, "embedded", 3),
            (std::vector<std::string>{"embedded", "connected", "default"}))
      << agents;
  // Watching an execution that has ended replays it to its summary.
  const GyreOutput watched = RunGyreApart({"watch", id, dev.orchestrator_flag()});
  EXPECT_EQ(watched.code, 0) << watched;
  EXPECT_TRUE(
      absl::StartsWith(watched.out, absl::StrCat("cli-demo: 3 tasks, execution ", execution, "\n")))
      << watched;
  EXPECT_TRUE(absl::StrContains(watched.out, absl::StrCat(execution, " succeeded: 3 succeeded")))
      << watched;

  const GyreOutput status = RunGyreApart({"status", id, dev.orchestrator_flag()});
  EXPECT_EQ(status.code, 0) << status;
  EXPECT_TRUE(absl::StartsWith(status.out, absl::StrCat("execution  ", execution,
                                                        "\n"
                                                        "state      succeeded\n"
                                                        "workflow   cli-demo\n")))
      << status;
  EXPECT_TRUE(absl::StrContains(status.out, "tasks      3: 3 succeeded\n")) << status;
  EXPECT_TRUE(absl::StrContains(
      status.out,
      "  greet                    succeeded attempt 1  exit 0  outputs {\"GREETING\":\"hi\"}\n"))
      << status;
  EXPECT_TRUE(
      absl::StrContains(status.out, "  check                    succeeded attempt 1  exit 0\n"))
      << status;
  EXPECT_EQ(RunGyreApart({"status", execution, dev.orchestrator_flag()}).out, status.out);

  const GyreOutput logs = RunGyreApart({"logs", execution, "greet", dev.orchestrator_flag()});
  EXPECT_EQ(logs.code, 0) << logs;
  EXPECT_EQ(logs.out, "hello stdout\nline two\n");
  EXPECT_EQ(logs.err, "to stderr\n");

  const GyreOutput chatty = RunGyreApart({"logs", execution, "chatty", dev.orchestrator_flag()});
  EXPECT_EQ(chatty.code, 0) << chatty.err;
  EXPECT_EQ(chatty.out.size(), 1u << 20);
  EXPECT_EQ(chatty.out.find_first_not_of('a'), std::string::npos);
  EXPECT_EQ(chatty.err, absl::StrCat("gyre logs: ", execution,
                                     "/tasks/chatty attempt 1: output truncated at the agent's "
                                     "max_output_bytes; shown: the first 1048576 of 1100000 "
                                     "bytes of stdout\n"));

  const GyreOutput unknown_task = RunGyreApart({"logs", id, "gret", dev.orchestrator_flag()});
  EXPECT_EQ(unknown_task.code, 2) << unknown_task;
  EXPECT_EQ(unknown_task.out, "");
  EXPECT_EQ(unknown_task.err,
            absl::StrCat("gyre logs: logs of ", execution, "/tasks/gret: task run \"", execution,
                         "/tasks/gret\" not found\n"));
  const GyreOutput no_attempt =
      RunGyreApart({"logs", id, "greet", "--attempt=2", dev.orchestrator_flag()});
  EXPECT_EQ(no_attempt.code, 2) << no_attempt;
  EXPECT_TRUE(absl::StrContains(no_attempt.err, "has no attempt 2 (attempts: 1)")) << no_attempt;

  const GyreOutput unknown = RunGyreApart({"status", "no-such-id", dev.orchestrator_flag()});
  EXPECT_EQ(unknown.code, 2) << unknown;
  EXPECT_EQ(unknown.err,
            "gyre status: executions/no-such-id: execution "
            "\"executions/no-such-id\" not found\n");

  const GyreOutput list = RunGyreApart({"list", dev.orchestrator_flag()});
  EXPECT_EQ(list.code, 0) << list;
  EXPECT_TRUE(absl::StartsWith(list.out, "EXECUTION ")) << list;
  EXPECT_TRUE(absl::StrContains(list.out, absl::StrCat(execution, "  cli-demo  succeeded  ")))
      << list;
  const GyreOutput none = RunGyreApart({"list", "--state=failed", dev.orchestrator_flag()});
  EXPECT_EQ(none.code, 0) << none;
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, "no executions match\n");
}

// The lines of `text` that contain `needle`.
std::vector<std::string> LinesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StrContains(line, needle)) found.emplace_back(line);
  }
  return found;
}

TEST(DevSuiteTest, StatusAndLogsSayWhatRanWhereWhenAndWhyNot) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_debug");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: debug-demo\n"
                             "context: {REGION: us}\n"
                             "tasks:\n"
                             "  - id: greet\n"
                             "    shell: true\n"
                             "    command: printf 'hello\\nworld\\n'; echo oops >&2\n"
                             "  - id: flaky\n"
                             "    shell: true\n"
                             "    command: echo try; exit 3\n"
                             "    retries: 1\n"
                             "    depends_on: [greet]\n"
                             "  - id: after\n"
                             "    command: [echo, never]\n"
                             "    depends_on: [flaky]\n"
                             "  - id: nap\n"
                             "    builtin: sleep\n"
                             "    duration: 10ms\n";
  const auto [run_code, run_output] =
      RunGyre({"run", workflow, "--set", "REGION=eu", dev.orchestrator_flag()});
  ASSERT_EQ(run_code, 1) << run_output;
  const std::string execution = ExecutionOf(run_output);
  ASSERT_TRUE(absl::StartsWith(execution, "executions/")) << run_output;

  // The context, and under each task every attempt: agent, start, duration,
  // how it ended. The builtin's attempt has a start time too.
  const GyreOutput status = RunGyreApart({"status", execution, dev.orchestrator_flag()});
  EXPECT_EQ(status.code, 0) << status;
  EXPECT_TRUE(absl::StrContains(status.out, "\ncontext    REGION=eu\n")) << status;
  const std::vector<std::string> failed_attempts = LinesWith(status.out, "failed (exit 3)");
  ASSERT_EQ(failed_attempts.size(), 2u) << status;
  EXPECT_TRUE(absl::StartsWith(absl::StripLeadingAsciiWhitespace(failed_attempts[0]),
                               "attempt 1  agent embedded  started "))
      << status;
  EXPECT_TRUE(absl::StrContains(failed_attempts[1], "attempt 2  agent embedded  started "))
      << status;
  EXPECT_TRUE(absl::StrContains(failed_attempts[1], "  took ")) << status;
  const std::vector<std::string> nap = LinesWith(status.out, "attempt 1  agent embedded");
  ASSERT_EQ(nap.size(), 3u) << status;  // greet, flaky's first, nap
  EXPECT_TRUE(absl::StrContains(nap[2], "  started ")) << status;
  EXPECT_TRUE(absl::StrContains(nap[2], "  succeeded")) << status;
  EXPECT_TRUE(absl::StrContains(status.out, "  after                    skipped   (dependency"))
      << status;

  // Every attempt's output in the order they began, each under its header.
  const GyreOutput all = RunGyreApart({"logs", execution, dev.orchestrator_flag()});
  EXPECT_EQ(all.code, 0) << all;
  const size_t greet = all.out.find(
      "==> greet attempt 1: succeeded <==\nhello\nworld\n"
      "==> greet attempt 1 stderr <==\noops\n");
  const size_t first = all.out.find("==> flaky attempt 1: failed (exit 3) <==\ntry\n");
  const size_t second = all.out.find("==> flaky attempt 2: failed (exit 3) <==\ntry\n");
  EXPECT_NE(greet, std::string::npos) << all;
  EXPECT_NE(first, std::string::npos) << all;
  EXPECT_NE(second, std::string::npos) << all;
  EXPECT_LT(greet, first) << all;
  EXPECT_LT(first, second) << all;
  EXPECT_TRUE(absl::StrContains(
      all.out, "==> after was skipped (dependency \"flaky\" failed): it never ran <==\n"))
      << all;

  // A task that never ran says why, not "has no attempt 0".
  const GyreOutput skipped = RunGyreApart({"logs", execution, "after", dev.orchestrator_flag()});
  EXPECT_EQ(skipped.code, 1) << skipped;
  EXPECT_EQ(skipped.err, absl::StrCat("gyre logs: ", execution,
                                      "/tasks/after was skipped (dependency \"flaky\" failed): "
                                      "it never ran\n"));
  // A ready task no agent can take says why under its line.
  const std::string stuck = scratch.path() + "/stuck.yaml";
  std::ofstream(stuck) << "name: stuck\n"
                          "tasks:\n"
                          "  - id: train\n"
                          "    queue: gpu\n"
                          "    command: [\"true\"]\n";
  const GyreOutput detached = RunGyreApart({"run", stuck, "--detach", dev.orchestrator_flag()});
  ASSERT_EQ(detached.code, 0) << detached;
  const GyreOutput waiting =
      RunGyreApart({"status", ExecutionOf(detached.out), dev.orchestrator_flag()});
  const std::vector<std::string> why = LinesWith(waiting.out, "waiting: ");
  ASSERT_EQ(why.size(), 1u) << waiting;
  EXPECT_TRUE(absl::StrContains(why[0], "\"gpu\"")) << waiting;
  const GyreOutput not_yet =
      RunGyreApart({"logs", ExecutionOf(detached.out), "train", dev.orchestrator_flag()});
  EXPECT_EQ(not_yet.code, 1) << not_yet;
  EXPECT_TRUE(absl::StrContains(not_yet.err, "train has not run yet")) << not_yet;

  // After the run, --follow replays the stored output of every task.
  const GyreOutput replayed =
      RunGyreApart({"logs", "--follow", execution, dev.orchestrator_flag()});
  EXPECT_EQ(replayed.code, 0) << replayed;
  EXPECT_EQ(replayed.out, "greet | hello\ngreet | world\nflaky | try\nflaky#2 | try\n") << replayed;
  EXPECT_EQ(replayed.err, "greet | oops\n") << replayed;
}

// gyre run on a terminal: a progress bar, and above it a line for each
// thing a person must see (a retry and why, a failure, a skip), none for
// routine progress; in a pipe, a line for every change and no bar.
TEST(DevSuiteTest, GyreRunOnATerminalPrintsWhatMattersAboveTheBar) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_terminal");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: follow-demo\n"
                             "tasks:\n"
                             "  - id: greet\n"
                             "    command: [echo, hi]\n"
                             "  - id: flaky\n"
                             "    shell: true\n"
                             "    command: exit 3\n"
                             "    retries: 1\n"
                             "    depends_on: [greet]\n"
                             "  - id: after\n"
                             "    command: [echo, never]\n"
                             "    depends_on: [flaky]\n";
  auto run =
      ChildProcess::StartOnTerminal({GyreBinary(), "run", workflow, dev.orchestrator_flag()});
  ASSERT_TRUE(run.ok()) << run.status();
  const std::optional<int> status = (*run)->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << (*run)->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << (*run)->Output();
  (void)(*run)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  const std::string terminal = (*run)->Output();
  EXPECT_TRUE(absl::StrContains(terminal, "[##"));               // the bar
  EXPECT_TRUE(absl::StrContains(terminal, "\r\033[K  flaky  "))  // a line takes its place
      << terminal;
  EXPECT_TRUE(absl::StrContains(terminal,
                                "  flaky                    pending (exit code 3; "
                                "retry 1 of 1 in "))
      << terminal;
  EXPECT_TRUE(absl::StrContains(terminal, "  flaky                    failed (exit code 3)"))
      << terminal;
  EXPECT_TRUE(absl::StrContains(terminal,
                                "  after                    skipped (dependency \"flaky\" failed)"))
      << terminal;
  EXPECT_FALSE(absl::StrContains(terminal, "  greet   ")) << "routine progress is the bar's";

  const GyreOutput piped = RunGyreApart({"run", workflow, dev.orchestrator_flag()});
  EXPECT_EQ(piped.code, 1) << piped;
  EXPECT_FALSE(absl::StrContains(piped.out, "[##")) << piped;
  EXPECT_FALSE(absl::StrContains(piped.out, "\033")) << piped;
  EXPECT_TRUE(absl::StrContains(piped.out, "  greet                    succeeded\n")) << piped;
  EXPECT_TRUE(absl::StrContains(piped.out, "  flaky                    failed (exit code 3)\n"))
      << piped;
}

// gyre dev's log on a terminal is text a person reads ("gyre dev is up"
// stands out, with its addresses below it); into a pipe it is JSON; the
// flag chooses either way. --log_level=debug tells the decisions of the
// engine, the agent, the optimizer and the predictor.
TEST(DevSuiteTest, LogsAreTextOnATerminalAndJsonInAPipe) {
  const testing::ScratchDir scratch("gyre_dev_log_format");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: flaky\n"
                             "tasks:\n"
                             "  - id: flaky\n"
                             "    shell: true\n"
                             "    command: exit 3\n"
                             "    retries: {count: 1, initial_backoff: 10ms}\n";
  const auto start = [&](bool terminal, const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {
        GyreBinary(),
        "dev",
        "--grpc_address=127.0.0.1:0",
        "--metrics_address=127.0.0.1:0",
        "--http_address=127.0.0.1:0",
        absl::StrCat("--data_dir=", scratch.path(), "/data", terminal ? "t" : "p", flags.size())};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return terminal ? ChildProcess::StartOnTerminal(argv) : ChildProcess::Start(argv);
  };
  const auto up_line = [](ChildProcess& dev) {
    return dev.WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "gyre dev is up"); },
        absl::Seconds(30));
  };
  const auto stop = [](ChildProcess& dev) {
    dev.Signal(SIGINT);
    EXPECT_TRUE(dev.WaitForExit(absl::Seconds(15)).has_value());
  };
  {
    auto dev = start(/*terminal=*/true, {"--log_level=debug", "--run=" + workflow});
    ASSERT_TRUE(dev.ok()) << dev.status();
    auto up = up_line(**dev);
    ASSERT_TRUE(up.ok()) << up.status();
    EXPECT_TRUE(absl::StrContains(*up, " INFO  dev  \033[1m==> gyre dev is up <==\033[0m")) << *up;
    auto grpc_port = (*dev)->WaitForLine(
        [](const std::string& line) { return absl::StartsWith(line, "      grpc_port  "); },
        absl::Seconds(10));
    ASSERT_TRUE(grpc_port.ok()) << (*dev)->Output();
    const std::string orchestrator_flag =
        absl::StrCat("--orchestrator=127.0.0.1:",
                     absl::StripAsciiWhitespace(absl::string_view(*grpc_port).substr(17)));
    // The engine's decisions at debug level, as text.
    auto retry = (*dev)->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "retry scheduled"); },
        absl::Seconds(30));
    ASSERT_TRUE(retry.ok()) << retry.status();
    EXPECT_TRUE(absl::StrContains(*retry, "DEBUG")) << *retry;
    EXPECT_TRUE(absl::StrContains(*retry, "task=flaky  failed_attempt=1")) << *retry;
    EXPECT_TRUE(absl::StrContains((*dev)->Output(), "task leased  execution=")) << (*dev)->Output();
    // The agent's: each process it starts, how it ended, the result it sends.
    const auto debug_line = [&](const std::string& msg, const std::string& part) {
      auto line = (*dev)->WaitForLine(
          [&](const std::string& line) {
            return absl::StrContains(line, "DEBUG") && absl::StrContains(line, msg + "  ") &&
                   absl::StrContains(line, part);
          },
          absl::Seconds(30));
      EXPECT_TRUE(line.ok()) << "no debug line \"" << msg << "\" with " << part << "\n"
                             << (*dev)->Output();
      return line.ok() ? *line : "";
    };
    const std::string started = debug_line("task process started", "/flaky#1  pid=");
    EXPECT_TRUE(absl::StrContains(started, "attempt=executions/")) << started;
    EXPECT_TRUE(absl::StrContains(debug_line("task process exited", "/flaky#1  pid="),
                                  "  exit_code=3  signal=0  took_ms="));
    EXPECT_TRUE(absl::StrContains(debug_line("task finished", "/flaky#2  "),
                                  "  outcome=ATTEMPT_FAILED  exit_code=3"));
    EXPECT_TRUE(absl::StrContains(debug_line("registration sent", "orchestrator="), "  running=0"));
    // The optimizer's and the predictor's, asked as gyre analyze and plan ask.
    const GyreOutput analyzed = RunGyreApart({"analyze", workflow, orchestrator_flag});
    EXPECT_EQ(analyzed.code, 0) << analyzed;
    EXPECT_TRUE(absl::StrContains(debug_line("analysis done", "critical_path_tasks=1"),
                                  "  recommendations="));
    const GyreOutput planned = RunGyreApart({"plan", workflow, orchestrator_flag});
    EXPECT_EQ(planned.code, 0) << planned;
    EXPECT_FALSE(debug_line("resources predicted", "tasks=1  duration_levels=").empty());
    EXPECT_FALSE(absl::StrContains((*dev)->Output(), "{\"time\":")) << (*dev)->Output();
    stop(**dev);
  }
  {
    auto dev = start(/*terminal=*/false, {});
    ASSERT_TRUE(dev.ok()) << dev.status();
    auto up = up_line(**dev);
    ASSERT_TRUE(up.ok()) << up.status();
    EXPECT_TRUE(absl::StartsWith(*up, "{\"time\":")) << *up;
    EXPECT_FALSE(absl::StrContains((*dev)->Output(), "task leased")) << "debug is off by default";
    EXPECT_FALSE(absl::StrContains((*dev)->Output(), "registration sent")) << (*dev)->Output();
    stop(**dev);
  }
  {
    auto dev = start(/*terminal=*/true, {"--log_format=json"});
    ASSERT_TRUE(dev.ok()) << dev.status();
    auto up = up_line(**dev);
    ASSERT_TRUE(up.ok()) << up.status();
    EXPECT_TRUE(absl::StartsWith(*up, "{\"time\":")) << *up;
    stop(**dev);
  }
  {
    auto dev = start(/*terminal=*/false, {"--log_format=text"});
    ASSERT_TRUE(dev.ok()) << dev.status();
    auto up = up_line(**dev);
    ASSERT_TRUE(up.ok()) << up.status();
    EXPECT_TRUE(absl::StrContains(*up, " INFO  dev  ==> gyre dev is up <==")) << *up;
    EXPECT_FALSE(absl::StrContains((*dev)->Output(), "\033")) << "no colours into a pipe";
    stop(**dev);
  }
}

TEST(DevSuiteTest, LogsFollowTailsARunningTaskLive) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_follow");
  const std::string go = scratch.path() + "/go";
  const std::string workflow = scratch.path() + "/wf.yaml";
  // It writes until the test lets it end: a tick seen before then came live.
  std::ofstream(workflow) << "name: ticker\n"
                             "tasks:\n"
                             "  - id: tick\n"
                             "    shell: true\n"
                             "    command: >-\n"
                             "      i=0; while [ ! -f "
                          << go
                          << " ]; do echo tick $i; i=$((i+1)); sleep 0.1; done;\n"
                             "      echo done\n";
  const GyreOutput started = RunGyreApart({"run", workflow, "--detach", dev.orchestrator_flag()});
  ASSERT_EQ(started.code, 0) << started;
  const std::string execution = ExecutionOf(started.out);
  ASSERT_TRUE(absl::StartsWith(execution, "executions/")) << started;
  auto follow = ChildProcess::Start(
      {GyreBinary(), "logs", execution, "tick", "--follow", dev.orchestrator_flag()});
  ASSERT_TRUE(follow.ok()) << follow.status();
  ASSERT_TRUE(
      (*follow)
          ->WaitForLine([](const std::string& line) { return absl::StartsWith(line, "tick "); },
                        absl::Seconds(30))
          .ok())
      << (*follow)->Output();
  // Still following: the task has not ended.
  EXPECT_FALSE((*follow)->WaitForExit(absl::Milliseconds(1)).has_value());
  std::ofstream(go) << "";
  const std::optional<int> status = (*follow)->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << (*follow)->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << (*follow)->Output();
  (void)(*follow)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  EXPECT_TRUE(absl::StrContains((*follow)->Output(), "\ndone")) << (*follow)->Output();
}

TEST(DevSuiteTest, CtrlCStopsFollowingAndTheExecutionIsPausedResumedAndCancelled) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_control");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: long-nap\n"
                             "tasks:\n"
                             "  - id: nap\n"
                             "    command: [sleep, \"300\"]\n";
  auto run = ChildProcess::Start({GyreBinary(), "run", workflow, dev.orchestrator_flag()});
  ASSERT_TRUE(run.ok()) << run.status();
  auto running = (*run)->WaitForLine(
      [](const std::string& line) {
        return absl::StartsWith(line, "  nap ") && absl::StrContains(line, " running");
      },
      absl::Seconds(20));
  ASSERT_TRUE(running.ok()) << running.status();
  const std::string execution = ExecutionOf((*run)->Output());
  ASSERT_TRUE(absl::StartsWith(execution, "executions/")) << (*run)->Output();

  (*run)->Signal(SIGINT);
  const std::optional<int> run_status = (*run)->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(run_status.has_value()) << (*run)->Output();
  EXPECT_TRUE(WIFEXITED(*run_status) && WEXITSTATUS(*run_status) == 130) << (*run)->Output();
  (void)(*run)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  EXPECT_TRUE(absl::StrContains(
      (*run)->Output(),
      absl::StrCat("stopped following ", execution, "; it keeps running (gyre watch ", execution,
                   " follows it again, gyre cancel ", execution, " stops it)")))
      << (*run)->Output();
  // Re-attached: it follows until the cancel below ends the execution.
  auto watch = ChildProcess::Start({GyreBinary(), "watch", execution, dev.orchestrator_flag()});
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE((*watch)
                  ->WaitForLine(
                      [&](const std::string& line) {
                        return line == absl::StrCat("long-nap: 1 tasks, execution ", execution);
                      },
                      absl::Seconds(20))
                  .ok())
      << (*watch)->Output();

  const GyreOutput still = RunGyreApart({"status", execution, dev.orchestrator_flag()});
  EXPECT_TRUE(absl::StrContains(still.out, "state      running\n")) << still;
  EXPECT_TRUE(absl::StrContains(still.out, "  nap                      running   attempt 1\n"))
      << still;
  const GyreOutput early_logs = RunGyreApart({"logs", execution, "nap", dev.orchestrator_flag()});
  EXPECT_EQ(early_logs.code, 1) << early_logs;
  EXPECT_EQ(early_logs.err, absl::StrCat("gyre logs: ", execution,
                                         "/tasks/nap attempt 1 has not ended; its output is "
                                         "stored when it does (gyre logs --follow shows it "
                                         "live)\n"));

  const GyreOutput pause = RunGyreApart({"pause", execution, dev.orchestrator_flag()});
  EXPECT_EQ(pause.code, 0) << pause;
  EXPECT_EQ(pause.out, absl::StrCat(execution, " paused\n"));
  const GyreOutput pause_again = RunGyreApart({"pause", execution, dev.orchestrator_flag()});
  EXPECT_EQ(pause_again.code, 1) << pause_again;
  EXPECT_TRUE(
      absl::StartsWith(pause_again.err, absl::StrCat("gyre pause: pausing ", execution, ": ")))
      << pause_again;
  const GyreOutput paused_list =
      RunGyreApart({"list", "--state=paused", "--workflow=long-nap", dev.orchestrator_flag()});
  EXPECT_TRUE(absl::StrContains(paused_list.out, absl::StrCat(execution, "  long-nap  paused ")))
      << paused_list;

  const GyreOutput resume = RunGyreApart({"resume", execution, dev.orchestrator_flag()});
  EXPECT_EQ(resume.code, 0) << resume;
  EXPECT_EQ(resume.out, absl::StrCat(execution, " running\n"));

  // Whoever follows is told of the pause and the resume.
  EXPECT_TRUE((*watch)
                  ->WaitForLine(
                      [&](const std::string& line) {
                        return absl::StartsWith(line,
                                                "execution paused: no task starts until "
                                                "gyre resume ");
                      },
                      absl::Seconds(20))
                  .ok())
      << (*watch)->Output();
  EXPECT_TRUE(
      (*watch)
          ->WaitForLine([&](const std::string& line) { return line == "execution resumed"; },
                        absl::Seconds(20))
          .ok())
      << (*watch)->Output();

  const GyreOutput cancel =
      RunGyreApart({"cancel", execution, "--reason=test is done", dev.orchestrator_flag()});
  EXPECT_EQ(cancel.code, 0) << cancel;
  EXPECT_EQ(cancel.out, absl::StrCat(execution, " cancelled (test is done)\n"));
  const std::optional<int> watch_status = (*watch)->WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(watch_status.has_value()) << (*watch)->Output();
  EXPECT_TRUE(WIFEXITED(*watch_status) && WEXITSTATUS(*watch_status) == 1) << (*watch)->Output();
  (void)(*watch)->WaitForLine([](const std::string&) { return false; }, absl::Seconds(1));
  EXPECT_TRUE(absl::StrContains((*watch)->Output(), absl::StrCat(execution, " cancelled")))
      << (*watch)->Output();
  const GyreOutput ended = RunGyreApart({"status", execution, dev.orchestrator_flag()});
  EXPECT_TRUE(absl::StrContains(ended.out, "state      cancelled (test is done)\n")) << ended;
  EXPECT_TRUE(absl::StrContains(ended.out, "  nap                      cancelled")) << ended;
  const GyreOutput cancel_again = RunGyreApart({"cancel", execution, dev.orchestrator_flag()});
  EXPECT_EQ(cancel_again.code, 1) << cancel_again;
}

TEST(DevSuiteTest, ExecutionCommandsSayWhatIsWrongWithTheirArguments) {
  const GyreOutput no_execution = RunGyreApart({"status"});
  EXPECT_EQ(no_execution.code, 2) << no_execution;
  EXPECT_TRUE(absl::StartsWith(no_execution.err,
                               "gyre status: which execution?\n"
                               "usage: gyre status EXECUTION"))
      << no_execution;
  // Without TASK, logs shows every task's: --attempt needs one.
  const GyreOutput no_task = RunGyreApart({"logs", "abc", "--attempt=2"});
  EXPECT_EQ(no_task.code, 2) << no_task;
  EXPECT_TRUE(absl::StartsWith(no_task.err, "gyre logs: --attempt needs a TASK\n")) << no_task;
  const GyreOutput follow_attempt = RunGyreApart({"logs", "abc", "t", "--follow", "--attempt=1"});
  EXPECT_EQ(follow_attempt.code, 2) << follow_attempt;
  const GyreOutput bad_limit = RunGyreApart({"list", "--limit=0"});
  EXPECT_EQ(bad_limit.code, 2) << bad_limit;
  EXPECT_TRUE(absl::StartsWith(bad_limit.err, "gyre list: --limit \"0\": expected 1..1000\n"))
      << bad_limit;
  const GyreOutput bad_state = RunGyreApart({"list", "--state=done"});
  EXPECT_EQ(bad_state.code, 2) << bad_state;
  EXPECT_TRUE(absl::StartsWith(bad_state.err, "gyre list: --state: unknown state \"done\""))
      << bad_state;
  const GyreOutput not_an_execution = RunGyreApart({"pause", "executions/a/tasks/b"});
  EXPECT_EQ(not_an_execution.code, 2) << not_an_execution;
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

// Whether a socket that asks to share ports (SO_REUSEPORT) can bind
// 127.0.0.1:`port`: it can next to a listener that set SO_REUSEPORT too, as
// gRPC does by default, and that is how two servers end up on one port.
bool ASharingSocketCanBind(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return bound;
}

// The number of lines in `text`.
size_t Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

TEST(DevSuiteTest, AServerOwnsItsPortsAndASecondOneSaysWhyItCannotStart) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const std::string port = dev.grpc_port();
  int port_number = 0;
  ASSERT_TRUE(absl::SimpleAtoi(port, &port_number));
  // The port is the first server's alone, even for a socket that asks to share.
  EXPECT_FALSE(ASharingSocketCanBind(port_number));

  const testing::ScratchDir other_dir("gyre_second_dev");
  const std::string taken = absl::StrCat("127.0.0.1:", port);
  const std::string expected_port_line =
      absl::StrCat("grpc_address ", taken, ": port ", port,
                   " is already in use by another process (another gyre dev or Gyre server?); "
                   "stop it or choose another port with --grpc_address\n");
  const GyreOutput second_dev =
      RunGyreApart({"dev", "--grpc_address=" + taken, "--metrics_address=127.0.0.1:0",
                    "--http_address=127.0.0.1:0", "--data_dir=" + other_dir.path() + "/dev"});
  EXPECT_EQ(second_dev.code, 2) << second_dev;
  EXPECT_EQ(second_dev.err, "gyre dev: " + expected_port_line) << second_dev;

  const GyreOutput second_orchestrator =
      RunGyreApart({"--grpc_address=" + taken, "--metrics_address=127.0.0.1:0",
                    "--data_dir=" + other_dir.path() + "/orchestrator"},
                   {}, absl::Seconds(60), BuildFile("services/orchestrator/gyre-orchestrator"));
  EXPECT_EQ(second_orchestrator.code, 2) << second_orchestrator;
  EXPECT_EQ(second_orchestrator.err, "gyre-orchestrator: " + expected_port_line)
      << second_orchestrator;

  // Its metrics and HTTP ports are its own as well: a second server given
  // one of them says so, naming the key, and exits 2.
  auto up = dev.process().WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "gyre dev is up"); },
      absl::Seconds(1));
  ASSERT_TRUE(up.ok()) << up.status();
  auto http = dev.process().WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"http_port\":"); },
      absl::Seconds(10));
  ASSERT_TRUE(http.ok()) << http.status();
  const std::optional<int> metrics_port = testing::JsonIntField(*up, "metrics_port");
  const std::optional<int> http_port = testing::JsonIntField(*http, "http_port");
  ASSERT_TRUE(metrics_port.has_value() && http_port.has_value()) << *up << "\n" << *http;
  const auto in_use_line = [](const std::string& key, int taken_port) {
    return absl::StrCat(key, " 127.0.0.1:", taken_port, ": port ", taken_port,
                        " is already in use by another process (another gyre dev or Gyre "
                        "server?); stop it or choose another port with --",
                        key, "\n");
  };
  const GyreOutput metrics_taken =
      RunGyreApart({"dev", "--grpc_address=127.0.0.1:0",
                    absl::StrCat("--metrics_address=127.0.0.1:", *metrics_port),
                    "--http_address=127.0.0.1:0", "--data_dir=" + other_dir.path() + "/metrics"});
  EXPECT_EQ(metrics_taken.code, 2) << metrics_taken;
  EXPECT_EQ(metrics_taken.err, "gyre dev: " + in_use_line("metrics_address", *metrics_port))
      << metrics_taken;
  const GyreOutput http_taken =
      RunGyreApart({"dev", "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                    absl::StrCat("--http_address=127.0.0.1:", *http_port),
                    "--data_dir=" + other_dir.path() + "/http"});
  EXPECT_EQ(http_taken.code, 2) << http_taken;
  EXPECT_EQ(http_taken.err, "gyre dev: " + in_use_line("http_address", *http_port)) << http_taken;
  const GyreOutput gateway_taken =
      RunGyreApart({"--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                    absl::StrCat("--http_address=127.0.0.1:", *http_port)},
                   {}, absl::Seconds(60), BuildFile("services/gateway/gyre-gateway"));
  EXPECT_EQ(gateway_taken.code, 2) << gateway_taken;
  EXPECT_EQ(gateway_taken.err, "gyre-gateway: " + in_use_line("http_address", *http_port))
      << gateway_taken;

  // Free ports, the first one's data directory: refused, naming who has it.
  const std::string locked_line = absl::StrCat(
      "data_dir ", dev.data_dir(), " is locked by pid ", dev.process().pid(), " (", dev.data_dir(),
      "/LOCK): another gyre-orchestrator or gyre dev uses it; stop "
      "that one or choose another --data_dir\n");
  const GyreOutput same_dir_dev =
      RunGyreApart({"dev", "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                    "--http_address=127.0.0.1:0", "--data_dir=" + dev.data_dir()});
  EXPECT_EQ(same_dir_dev.code, 2) << same_dir_dev;
  EXPECT_TRUE(absl::EndsWith(same_dir_dev.err, "gyre dev: " + locked_line)) << same_dir_dev;
  EXPECT_EQ(Lines(same_dir_dev.err), 1u) << same_dir_dev;
  const GyreOutput same_dir_orchestrator =
      RunGyreApart({"--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                    "--data_dir=" + dev.data_dir()},
                   {}, absl::Seconds(60), BuildFile("services/orchestrator/gyre-orchestrator"));
  EXPECT_EQ(same_dir_orchestrator.code, 2) << same_dir_orchestrator;
  EXPECT_EQ(same_dir_orchestrator.err, "gyre-orchestrator: " + locked_line)
      << same_dir_orchestrator;
}

TEST(DevSuiteTest, ADataDirectoryThatCannotBeCreatedIsOneLineAndExitTwo) {
  const testing::ScratchDir dir("gyre_not_a_dir");
  std::ofstream(dir.path() + "/file") << "not a directory";
  const std::string data_dir = dir.path() + "/file/data";
  const GyreOutput dev =
      RunGyreApart({"dev", "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                    "--http_address=127.0.0.1:0", "--data_dir=" + data_dir});
  EXPECT_EQ(dev.code, 2) << dev;
  EXPECT_TRUE(absl::StrContains(dev.err, "gyre dev: data_dir " + data_dir + " cannot be created: "))
      << dev;
  EXPECT_EQ(Lines(dev.err), 1u) << dev;
}

TEST(DevSuiteTest, ThePostgresStoreWithoutADsnIsRefusedAtConfigValidation) {
  const GyreOutput output =
      RunGyreApart({"--grpc_address=127.0.0.1:0"}, {"GYRE_STORE=postgres"}, absl::Seconds(60),
                   BuildFile("services/orchestrator/gyre-orchestrator"));
  EXPECT_EQ(output.code, 2) << output;
  EXPECT_TRUE(absl::StrContains(output.err, "postgres_dsn: must be set for store: postgres"))
      << output;
  EXPECT_EQ(Lines(output.err), 1u) << output;
}

TEST(DevSuiteTest, AnUnreachableOrchestratorIsSaidAtOnceWithExitThree) {
  // Nothing listens on port 1. Each command must give up within a few
  // seconds (it used to retry for 30 s in silence): a call's deadline is
  // 10 s, so 12 s is a generous upper bound, not a speed test.
  const absl::Duration at_most = absl::Seconds(12);
  const std::string hint =
      "start one with ./scripts/dev or gyre dev, or point --orchestrator or GYRE_ORCHESTRATOR at a "
      "running one\n";
  const std::vector<std::vector<std::string>> commands = {{"run", BuildFile("examples/etl.yaml")},
                                                          {"schedule", "extract"},
                                                          {"status", "abc"},
                                                          {"list"},
                                                          {"logs", "abc", "task"},
                                                          {"cancel", "abc"},
                                                          {"pause", "abc"},
                                                          {"resume", "abc"},
                                                          {"watch", "abc"},
                                                          {"queues"},
                                                          {"agents"},
                                                          {"library"}};
  for (const std::vector<std::string>& command : commands) {
    // The address from the environment, as TEMPORAL_ADDRESS or ARGO_SERVER.
    const absl::Time started = absl::Now();
    const GyreOutput output =
        RunGyreApart(command, {"GYRE_ORCHESTRATOR=127.0.0.1:1"}, absl::Seconds(60));
    const absl::Duration took = absl::Now() - started;
    EXPECT_LE(took, at_most) << command[0] << " took " << took << " to say so\n" << output;
    EXPECT_EQ(output.code, 3) << command[0] << "\n" << output;
    EXPECT_TRUE(absl::StartsWith(
        output.err,
        absl::StrCat("gyre ", command[0], ": cannot reach the orchestrator at 127.0.0.1:1 (")))
        << output;
    EXPECT_TRUE(absl::EndsWith(output.err, hint)) << output;
    EXPECT_EQ(Lines(output.err), 1u) << output;
  }
  // The flag wins over the environment.
  const absl::Time started = absl::Now();
  const GyreOutput flag = RunGyreApart({"status", "abc", "--orchestrator=127.0.0.1:2"},
                                       {"GYRE_ORCHESTRATOR=127.0.0.1:1"});
  EXPECT_LE(absl::Now() - started, at_most) << flag;
  EXPECT_EQ(flag.code, 3) << flag;
  EXPECT_TRUE(
      absl::StartsWith(flag.err, "gyre status: cannot reach the orchestrator at 127.0.0.1:2 ("))
      << flag;
}

// The README's import-wfcommons example runs as written from the root of a
// plain clone (the trace it names is in the repository), and gyre validate
// takes what it wrote.
TEST(DevSuiteTest, TheReadmesImportWfcommonsExampleWorksAsWritten) {
  const std::string readme = ReadFile(BuildFile("README.md"));
  ASSERT_FALSE(readme.empty()) << "README.md not found beside the build";
  const std::string binary_as_written = "build/cmd/gyre/gyre ";
  std::vector<std::string> args;
  for (absl::string_view line : absl::StrSplit(readme, '\n')) {
    if (!absl::StartsWith(line, binary_as_written + "import-wfcommons ")) continue;
    line.remove_prefix(binary_as_written.size());
    line = line.substr(0, line.find(" #"));  // a comment after the command
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    args = std::move(words);
    break;
  }
  ASSERT_FALSE(args.empty()) << "the README has no " << binary_as_written << "import-wfcommons";
  // A directory laid out as the clone: its tests/ (the build's copy of the
  // traces, or the runfiles'), the output written here, not in the tree.
  const testing::ScratchDir clone("gyre_readme_clone");
  std::error_code error;
  std::filesystem::create_directory_symlink(std::filesystem::absolute(BuildFile("tests")),
                                            clone.path() + "/tests", error);
  ASSERT_FALSE(error) << error.message();
  const std::string gyre = std::filesystem::absolute(GyreBinary()).string();
  const GyreOutput imported = RunGyreApart(args, {}, absl::Seconds(60), gyre, clone.path());
  ASSERT_EQ(imported.code, 0) << absl::StrJoin(args, " ") << "\n" << imported;
  int tasks = 0;
  ASSERT_TRUE(absl::StartsWith(imported.err, "imported ")) << imported;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::string_view(imported.err).substr(9, imported.err.find(' ', 9) - 9), &tasks))
      << imported;
  EXPECT_GT(tasks, 10) << imported;

  const std::string output = "montage.yaml";
  ASSERT_TRUE(std::find(args.begin(), args.end(), "--output=" + output) != args.end())
      << "the README's example writes " << absl::StrJoin(args, " ");
  const GyreOutput validated =
      RunGyreApart({"validate", output}, {}, absl::Seconds(60), gyre, clone.path());
  EXPECT_EQ(validated.code, 0) << validated;
  EXPECT_TRUE(absl::StartsWith(validated.out, absl::StrCat(output, ": ok, workflow ")))
      << validated;
  EXPECT_TRUE(absl::EndsWith(validated.out, absl::StrCat(" with ", tasks, " tasks\n")))
      << validated;
}

// gyre dev hosts the optimizer: `gyre analyze FILE.yaml` reaches it at the
// orchestrator's address (docs/optimizer.md).
TEST(DevSuiteTest, AnalyzePrintsTheOptimizersAnalysis) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const auto [code, output] = RunGyre(
      {"analyze", BuildFile("examples/etl.yaml"), "--pool=default=1", dev.orchestrator_flag()});
  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(absl::StrContains(output, "5 default (1.0 s each: no duration known)")) << output;
  EXPECT_TRUE(absl::StrContains(
      output, "critical path: 4.0 s of 5.0 s total work (80%): extract-orders -> transform"))
      << output;
  EXPECT_TRUE(absl::StrContains(output,
                                "[pool-default-max-2] raise pool default max from 1 to "
                                "2: predicted makespan -20% (5.0 s -> 4.0 s)"))
      << output;
}

// The flags of a `gyre COMMAND --help` whose entry (the "  --flag" line and
// the lines indented below it) gives no default; a required flag says so
// instead. -h, --help has none to give.
std::vector<std::string> FlagsWithoutDefault(const std::string& help) {
  std::vector<std::string> missing;
  std::string flag;
  std::string entry;
  const auto close_entry = [&] {
    if (!flag.empty() && flag != "-h, --help" && !absl::StrContains(entry, "default") &&
        !absl::StrContains(entry, "required")) {
      missing.push_back(flag);
    }
  };
  const size_t flags_at = help.find("\nflags:\n");
  if (flags_at == std::string::npos) return missing;
  for (absl::string_view line : absl::StrSplit(help.substr(flags_at + 8), '\n')) {
    if (absl::StartsWith(line, "  -")) {
      close_entry();
      flag = std::string(absl::StripLeadingAsciiWhitespace(line));
      entry = flag;
    } else {
      absl::StrAppend(&entry, " ", line);
    }
  }
  close_entry();
  return missing;
}

TEST(DevSuiteTest, EverySubcommandExplainsItselfWithItsFlags) {
  // dev's flags and defaults come from the config schemas
  // (EveryConfigKeyOfEveryServiceIsAFlagListedInItsHelp checks them); every
  // other command's flag entry gives its default.
  const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
      {"dev", {"--data_dir", "--grpc_address", "--http_address", "--run", "--config"}},
      {"run", {"--set", "--orchestrator", "--detach"}},
      {"schedule", {"--set", "--orchestrator", "--detach"}},
      {"status", {"--orchestrator"}},
      {"list", {"--limit", "--workflow", "--state", "--orchestrator", "default 20"}},
      {"logs", {"--attempt", "--orchestrator"}},
      {"cancel", {"--reason", "--orchestrator"}},
      {"pause", {"--orchestrator"}},
      {"resume", {"--orchestrator"}},
      {"watch", {"--orchestrator"}},
      {"queues", {"--orchestrator"}},
      {"agents", {"--orchestrator"}},
      {"library", {"--orchestrator"}},
      {"why", {"--orchestrator"}},
      {"workflows", {"list", "show", "--version", "--orchestrator"}},
      {"validate", {"--task_library_dir"}},
      {"import-wfcommons", {"--scale", "--queue", "--name", "--output"}},
      {"analyze", {"--optimizer", "--pool", "--history", "--apply", "--dry_run", "--orchestrator"}},
      {"plan", {"--set", "--predictor", "--optimizer", "--json", "--orchestrator"}},
      {"hash-token", {"TOKEN", "agent_join_token_hashes"}},
      {"migrate", {"up", "status", "--postgres_dsn", "--postgres_password_file"}},
      {"version", {}},
      {"completion", {"bash"}}};
  for (const auto& [command, flags] : commands) {
    for (const char* help : {"--help", "-h"}) {
      const GyreOutput output = RunGyreApart({command, help});
      EXPECT_EQ(output.code, 0) << command << " " << help << "\n" << output;
      EXPECT_TRUE(absl::StartsWith(output.out, absl::StrCat("usage: gyre ", command)))
          << command << " " << help << "\n"
          << output;
      for (const std::string& flag : flags) {
        EXPECT_TRUE(absl::StrContains(output.out, flag))
            << command << " " << help << " does not name " << flag << "\n"
            << output;
      }
      if (command == "dev") continue;
      EXPECT_EQ(FlagsWithoutDefault(output.out), std::vector<std::string>{})
          << command << " " << help << ": these flags give no default\n"
          << output;
    }
  }
  const GyreOutput via_help = RunGyreApart({"help", "logs"});
  EXPECT_EQ(via_help.code, 0) << via_help;
  EXPECT_TRUE(absl::StartsWith(via_help.out, "usage: gyre logs")) << via_help;
  const GyreOutput version = RunGyreApart({"--version"});
  EXPECT_EQ(version.code, 0) << version;
  EXPECT_TRUE(absl::StartsWith(version.out, "gyre ")) << version;
}

TEST(DevSuiteTest, RunDetachPrintsTheExecutionAndLeavesItRunning) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_detach");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: long-nap\n"
                             "tasks:\n"
                             "  - id: nap\n"
                             "    command: [sleep, \"300\"]\n";
  const GyreOutput run = RunGyreApart({"run", workflow, "--detach", dev.orchestrator_flag()});
  EXPECT_EQ(run.code, 0) << run;
  const std::string execution = ExecutionOf(run.out);
  ASSERT_TRUE(absl::StartsWith(execution, "executions/")) << run;
  EXPECT_EQ(run.out, absl::StrCat("long-nap: 1 tasks, execution ", execution, "\n")) << run;
  // Still going: a cancel succeeds only on an execution that has not ended.
  const GyreOutput cancel = RunGyreApart({"cancel", execution, dev.orchestrator_flag()});
  EXPECT_EQ(cancel.code, 0) << cancel;
  EXPECT_EQ(cancel.out, absl::StrCat(execution, " cancelled (cancelled by a client)\n")) << cancel;
}

TEST(DevSuiteTest, BashCompletionCompletesCommandsAndTheirFlags) {
  const GyreOutput script = RunGyreApart({"completion", "bash"});
  ASSERT_EQ(script.code, 0) << script;
  const testing::ScratchDir dir("gyre_completion");
  std::ofstream(dir.path() + "/gyre.bash") << script.out;
  // Bash itself runs the completion function, as it would on Tab.
  const GyreOutput completed =
      RunGyreApart({"-c",
                    "source \"$0\"; "
                    "COMP_WORDS=(gyre lis); COMP_CWORD=1; _gyre; echo \"${COMPREPLY[*]}\"; "
                    "COMP_WORDS=(gyre list --li); COMP_CWORD=2; _gyre; echo \"${COMPREPLY[*]}\"; "
                    "COMP_WORDS=(gyre run --); COMP_CWORD=2; _gyre; echo \"${COMPREPLY[*]}\"; "
                    "COMP_WORDS=(gyre dev --data); COMP_CWORD=2; _gyre; echo \"${COMPREPLY[*]}\"",
                    dir.path() + "/gyre.bash"},
                   {}, absl::Seconds(60), "/bin/bash");
  EXPECT_EQ(completed.code, 0) << completed;
  EXPECT_EQ(
      completed.out,
      "list\n"
      "--limit=\n"
      "--set= --secret= --detach --orchestrator= --tls_ca_file= --tls_cert_file= --tls_key_file= "
      "--help\n"
      "--data_dir=\n")
      << completed;
}

// zsh's completion comes from the same table as bash's: each command offers
// the same flags in both (zsh is not on every test machine, so the table is
// compared rather than run).
TEST(DevSuiteTest, ZshCompletionOffersWhatBashCompletionOffers) {
  const GyreOutput bash = RunGyreApart({"completion", "bash"});
  const GyreOutput zsh = RunGyreApart({"completion", "zsh"});
  ASSERT_EQ(bash.code, 0) << bash;
  ASSERT_EQ(zsh.code, 0) << zsh;
  EXPECT_TRUE(absl::StartsWith(zsh.out, "#compdef gyre\n")) << zsh;
  // "    CMD) flags="A B";;" and "    CMD) valued=(A); plain=(B);;"
  std::map<std::string, std::set<std::string>> from_bash;
  std::map<std::string, std::set<std::string>> from_zsh;
  for (absl::string_view line : absl::StrSplit(bash.out, '\n')) {
    const size_t paren = line.find(") flags=\"");
    if (!absl::StartsWith(line, "    ") || paren == absl::string_view::npos) continue;
    absl::string_view flags = line.substr(paren + 9);
    flags = flags.substr(0, flags.find('"'));
    for (absl::string_view flag : absl::StrSplit(flags, ' ', absl::SkipEmpty())) {
      from_bash[std::string(line.substr(4, paren - 4))].emplace(flag);
    }
  }
  for (absl::string_view line : absl::StrSplit(zsh.out, '\n')) {
    const size_t paren = line.find(") valued=(");
    if (!absl::StartsWith(line, "    ") || paren == absl::string_view::npos) continue;
    const std::string command(line.substr(4, paren - 4));
    from_zsh[command];  // a command without flags is still listed
    for (absl::string_view part : absl::StrSplit(line.substr(paren + 2), absl::ByAnyChar("()"))) {
      if (absl::StartsWith(part, "valued=") || absl::StartsWith(part, "; plain=") || part == ";;") {
        continue;
      }
      for (absl::string_view flag : absl::StrSplit(part, ' ', absl::SkipEmpty())) {
        from_zsh[command].emplace(flag);
      }
    }
  }
  for (auto& [command, flags] : from_zsh) from_bash[command];  // flagless commands
  EXPECT_EQ(from_zsh, from_bash);
  EXPECT_TRUE(from_zsh["dev"].contains("--lease_timeout=")) << zsh;
  EXPECT_TRUE(from_zsh["dev"].contains("--fsync")) << zsh;
}

// Every key of every service's config schema (built here by the same
// modules the binaries link) is a flag of the binary and is listed, with its
// doc and default, by its --help: a key added without a flag cannot pass.
TEST(DevSuiteTest, EveryConfigKeyOfEveryServiceIsAFlagListedInItsHelp) {
  const std::string documented = ReadFile(BuildFile("docs/configuration.md"));
  ASSERT_FALSE(documented.empty()) << "docs/configuration.md not found beside the build";
  orchestrator::OrchestratorModule orchestrator;
  agent::AgentModule agent;
  scheduler::SchedulerModule scheduler;
  optimizer::OptimizerModule optimizer;
  predictor::PredictorModule predictor;
  gateway::GatewayModule gateway;
  cli::DevSuiteModule dev;
  struct Binary {
    std::string path;
    std::vector<std::string> leading;
    server::ServiceModule* module;
  };
  const std::vector<Binary> binaries = {
      {"services/orchestrator/gyre-orchestrator", {}, &orchestrator},
      {"services/agent/gyre-agent", {}, &agent},
      {"services/scheduler/gyre-scheduler", {}, &scheduler},
      {"services/optimizer/gyre-optimizer", {}, &optimizer},
      {"services/predictor/gyre-predictor", {}, &predictor},
      {"services/gateway/gyre-gateway", {}, &gateway},
      {"cmd/gyre/gyre", {"dev"}, &dev}};
  for (const Binary& binary : binaries) {
    server::ServerConfig server_config;
    config::ConfigSchema schema;
    server_config.Register(&schema);
    binary.module->RegisterConfig(&schema);

    std::vector<std::string> args = binary.leading;
    args.push_back("--help");
    const GyreOutput help = RunGyreApart(args, {}, absl::Seconds(60), BuildFile(binary.path));
    ASSERT_EQ(help.code, 0) << binary.path << "\n" << help;
    for (const config::ConfigSchema::Field& field : schema.fields()) {
      EXPECT_TRUE(absl::StrContains(documented, absl::StrCat("`", field.key, "`")))
          << "docs/configuration.md does not describe " << field.key << " of " << binary.path;
      const std::string entry = absl::StrCat(
          "  --", field.key, field.boolean ? "[=true|false]" : "=VALUE", "\n      ", field.help);
      EXPECT_TRUE(absl::StrContains(help.out, entry))
          << binary.path << " --help does not list " << field.key << "\n"
          << help;
      // The listen addresses' defaults are the binary's own, not ServerConfig's.
      if (field.listen_address != nullptr || !field.show) continue;
      const std::string shown = field.show();
      // An empty default is "" unless the doc says what it means.
      const std::string expected =
          shown.empty() && absl::StrContains(field.help, "(default")
              ? absl::StrCat(entry, "\n")
              : absl::StrCat(entry, " (default: ", shown.empty() ? "\"\"" : shown, ")\n");
      EXPECT_TRUE(absl::StrContains(help.out, expected))
          << binary.path << " --help does not give " << field.key << "'s default " << shown;
    }

    // All keys at once: none is an unknown flag (which is checked before
    // any value is decoded); the values are then refused as a config error.
    args = binary.leading;
    for (const std::string& key : schema.Keys()) args.push_back(absl::StrCat("--", key, "=x"));
    const GyreOutput all = RunGyreApart(args, {}, absl::Seconds(60), BuildFile(binary.path));
    EXPECT_EQ(all.code, 2) << binary.path << "\n" << all;
    EXPECT_FALSE(absl::StrContains(all.err, "unknown flag")) << binary.path << "\n" << all;
    EXPECT_TRUE(absl::StrContains(all.err, ": flag --")) << binary.path << "\n" << all;
  }
  // And an unknown one is refused with the nearest key.
  const GyreOutput typo = RunGyreApart({"dev", "--lease_timout=5s"});
  EXPECT_EQ(typo.code, 2) << typo;
  EXPECT_TRUE(absl::StrContains(typo.err, "unknown flag --lease_timout (did you mean")) << typo;
  EXPECT_TRUE(absl::StrContains(typo.err, "--lease_timeout")) << typo;
}

// gyre dev takes the orchestrator's and the agent's own keys: a worker pool
// (orchestrator) is exported with its min from start, and the embedded agent
// serves the queues given (agent).
TEST(DevSuiteTest, DevTakesTheOrchestratorsAndTheAgentsKeys) {
  RunningDev dev({"--worker_pools={gpu: {min: 2, max: 5, factor: 1}}", "--queues=default,gpu",
                  "--lease_timeout=45s"});
  ASSERT_TRUE(dev.up());
  GyreOutput agents;
  for (int i = 0; i < 200; ++i) {
    agents = RunGyreApart({"agents", dev.orchestrator_flag()});
    if (absl::StrContains(agents.out, "default,gpu")) break;
    usleep(100'000);
  }
  EXPECT_EQ(FieldsOfLine(agents.out, "embedded", 3),
            (std::vector<std::string>{"embedded", "connected", "default,gpu"}))
      << agents;
  const GyreOutput queues = RunGyreApart({"queues", dev.orchestrator_flag()});
  EXPECT_EQ(queues.code, 0) << queues;
  const std::vector<std::string> gpu = FieldsOfLine(queues.out, "gpu", 6);
  ASSERT_EQ(gpu.size(), 6u) << queues;
  EXPECT_EQ(gpu[5], "2") << "desired workers of pool gpu (min 2)\n" << queues;
}

// Settings from the environment cannot silently mislead: a GYRE_* variable
// that is no setting (a typo) is warned about with the nearest valid name,
// and a list value takes "a,b" as well as "[a, b]".
TEST(DevSuiteTest, AMistypedGyreVariableIsWarnedAboutAndAListTakesCommas) {
  RunningDev dev({}, {"GYRE_QUEUS=x", "GYRE_QUEUES=default,gpu"});
  ASSERT_TRUE(dev.up());
  auto warning = dev.process().WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "GYRE_QUEUS"); },
      absl::Seconds(10));
  ASSERT_TRUE(warning.ok()) << warning.status();
  EXPECT_TRUE(absl::StrContains(*warning, "\"level\":\"warn\"")) << *warning;
  EXPECT_TRUE(absl::StrContains(*warning,
                                "GYRE_QUEUS is not a setting of this service and is ignored "
                                "(did you mean \\\"GYRE_QUEUES\\\"?)"))
      << *warning;
  // A valid one is not warned about.
  EXPECT_FALSE(absl::StrContains(dev.process().Output(), "GYRE_QUEUES is not a setting"))
      << dev.process().Output();

  GyreOutput agents;
  for (int i = 0; i < 200; ++i) {
    agents = RunGyreApart({"agents", dev.orchestrator_flag()});
    if (absl::StrContains(agents.out, "default,gpu")) break;
    usleep(100'000);
  }
  // Two queues, not one named "default,gpu": each is a queue of its own.
  EXPECT_EQ(FieldsOfLine(agents.out, "embedded", 3),
            (std::vector<std::string>{"embedded", "connected", "default,gpu"}))
      << agents;
  const GyreOutput queues = RunGyreApart({"queues", dev.orchestrator_flag()});
  EXPECT_EQ(queues.code, 0) << queues;
  // QUEUE DEPTH RUNNING AGENTS: the embedded agent serves each.
  EXPECT_EQ(FieldsOfLine(queues.out, "default", 4),
            (std::vector<std::string>{"default", "0", "0", "1"}))
      << queues;
  EXPECT_EQ(FieldsOfLine(queues.out, "gpu", 4), (std::vector<std::string>{"gpu", "0", "0", "1"}))
      << queues;
  EXPECT_TRUE(FieldsOfLine(queues.out, "default,gpu", 1).empty()) << queues;
}

// A --set key no task uses is warned about, with the used name it is most
// likely a typo of; a used one is not.
TEST(DevSuiteTest, ASetKeyNoTaskUsesIsWarnedAbout) {
  RunningDev dev({});
  ASSERT_TRUE(dev.up());
  const testing::ScratchDir scratch("gyre_cli_set");
  const std::string workflow = scratch.path() + "/wf.yaml";
  std::ofstream(workflow) << "name: set-check\n"
                             "context_passthrough: true\n"
                             "context:\n"
                             "  ROWS: \"1\"\n"
                             "tasks:\n"
                             "  - id: count\n"
                             "    command: [echo, \"${ROWS}\"]\n";
  const GyreOutput typo =
      RunGyreApart({"run", workflow, "--set", "ROW=3", dev.orchestrator_flag()});
  EXPECT_EQ(typo.code, 0) << typo;
  EXPECT_TRUE(absl::StrContains(typo.err,
                                "gyre run: warning: --set ROW: no task uses ROW (as ${ROW} or "
                                "$ROW in a command or env) (did you mean \"ROWS\"?)"))
      << typo;
  const GyreOutput used =
      RunGyreApart({"run", workflow, "--set", "ROWS=3", dev.orchestrator_flag()});
  EXPECT_EQ(used.code, 0) << used;
  EXPECT_FALSE(absl::StrContains(used.err, "warning")) << used;
}

}  // namespace
}  // namespace gyre
