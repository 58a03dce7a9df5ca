// One gyre-agent listed with two gyre-orchestrator processes (issue 21:
// agents connect to every orchestrator, one stream each, their slots split
// by credit). Each orchestrator runs on the embedded store with its own
// data directory. The agent reaches the first through the DNS name
// `localhost` (resolved by the agent itself), the second by address.

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// Each task counts itself in and out of a file under a lock, keeping the
// highest count seen: the number of tasks that ran at once on the agent,
// from the tasks' own side.
std::string CountingWorkflow(const std::string& name, const std::string& dir, int tasks,
                             const std::string& nap) {
  const std::string script = absl::StrCat(
      "d=", dir, "; ",
      "(flock 9; n=$(( $(cat $d/now 2>/dev/null || echo 0) + 1 )); echo $n > $d/now; ",
      "m=$(cat $d/max 2>/dev/null || echo 0); if [ $n -gt $m ]; then echo $n > $d/max; fi) ",
      "9>$d/lock; sleep ", nap, "; ",
      "(flock 9; echo $(( $(cat $d/now) - 1 )) > $d/now; echo $GYRE_EXECUTION_ID >> $d/ran) ",
      "9>$d/lock");
  std::string yaml = absl::StrCat("name: ", name, "\ntasks:\n");
  for (int i = 0; i < tasks; ++i) {
    absl::StrAppend(&yaml, "  - {id: t", i, ", command: ['sh', '-c', '", script, "']}\n");
  }
  return yaml;
}

class AgentTwoOrchestratorsTest : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    if (HasFatalFailure()) return;
    auto second = ChildProcess::Start(
        {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s", "--data_dir=" + root_ + "/data2"},
        WithOrchestratorEnv({"GYRE_LEASE_TIMEOUT=1500ms", "GYRE_HEARTBEAT_INTERVAL=200ms"}));
    ASSERT_TRUE(second.ok()) << second.status();
    second_ = *std::move(second);
    auto serving = second_->WaitForLine(IsServing, absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status();
    second_address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    first_stub_ = std::move(stub_);
    second_stub_ = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(second_address_, grpc::InsecureChannelCredentials()));
    stub_ = std::move(first_stub_);
  }

  void TearDown() override {
    if (stub_ == nullptr) stub_ = std::move(first_stub_);
    Cluster::TearDown();
    second_.reset();
  }

  // Runs `call` against the second orchestrator (the fixture's helpers use
  // stub_).
  template <typename Call>
  auto OnSecond(Call call) {
    std::swap(stub_, second_stub_);
    auto result = call();
    std::swap(stub_, second_stub_);
    return result;
  }

  // gyre-agent with `slots`, listing both orchestrators; returns once it
  // registered with both.
  ChildProcess* StartListedAgent(int slots) {
    const std::string port = address_.substr(address_.rfind(':') + 1);
    auto agent = ChildProcess::Start(
        {Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0",
         absl::StrCat("--orchestrator_address=localhost:", port, ",", second_address_),
         "--orchestrator_resolve_interval=1s", absl::StrCat("--slots=", slots),
         "--work_dir=" + root_ + "/agent", "--shutdown_grace=2s", "--allow_root_tasks=true",
         "--id=listed"},
        {"GYRE_NAME=listed"});
    EXPECT_TRUE(agent.ok()) << agent.status();
    if (!agent.ok()) return nullptr;
    ChildProcess* process = agent->get();
    agents_.push_back(*std::move(agent));
    int registered = 0;
    EXPECT_TRUE(process
                    ->WaitForLine(
                        [&](const std::string& line) {
                          registered +=
                              absl::StrContains(line, "registered with the orchestrator") ? 1 : 0;
                          return registered == 2;
                        },
                        absl::Seconds(20))
                    .ok())
        << process->Output();
    return process;
  }

  static std::string Read(const std::string& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

  std::unique_ptr<ChildProcess> second_;
  std::string second_address_;
  std::unique_ptr<v1::OrchestratorService::Stub> first_stub_;
  std::unique_ptr<v1::OrchestratorService::Stub> second_stub_;
};

TEST_F(AgentTwoOrchestratorsTest, RunsWorkFromBothNeverMoreAtOnceThanItsSlots) {
  ChildProcess* agent = StartListedAgent(/*slots=*/2);
  ASSERT_NE(agent, nullptr);
  // The DNS name was resolved by the agent to the address it stands for.
  EXPECT_TRUE(
      absl::StrContains(agent->Output(), "127.0.0.1:" + address_.substr(address_.rfind(':') + 1)))
      << agent->Output();
  const std::string dir = root_ + "/counts";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const std::string first = Start(CountingWorkflow("first", dir, 6, "0.3"));
  const std::string second =
      OnSecond([&] { return Start(CountingWorkflow("second", dir, 6, "0.3")); });
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(OnSecond([&] { return Wait(second); }), v1::EXECUTION_SUCCEEDED);

  // Every task ran once, from both orchestrators, at most two at a time.
  int from_first = 0;
  int from_second = 0;
  for (absl::string_view line : absl::StrSplit(Read(dir + "/ran"), '\n', absl::SkipEmpty())) {
    from_first += absl::StrContains(first, line) ? 1 : 0;
    from_second += absl::StrContains(second, line) ? 1 : 0;
  }
  EXPECT_EQ(from_first, 6);
  EXPECT_EQ(from_second, 6);
  int most = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(Read(dir + "/max")), &most));
  EXPECT_GE(most, 1);
  EXPECT_LE(most, 2) << "more tasks ran at once than the agent has slots";
}

TEST_F(AgentTwoOrchestratorsTest, AnOrchestratorGoingAwayMidRunDoesNotStopTheOther) {
  ChildProcess* agent = StartListedAgent(/*slots=*/2);
  ASSERT_NE(agent, nullptr);
  const std::string dir = root_ + "/counts";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  // The second orchestrator's work is running when it dies.
  const std::string doomed =
      OnSecond([&] { return Start(CountingWorkflow("doomed", dir, 1, "30")); });
  ASSERT_FALSE(doomed.empty());
  ASSERT_TRUE(OnSecond([&] { return AwaitTaskState(doomed, "t0", v1::TASK_RUNNING); }));
  second_->Signal(SIGKILL);
  ASSERT_TRUE(second_->WaitForExit(absl::Seconds(10)).has_value());
  // The first one's work still runs on the agent, with the slots the dead
  // one no longer holds credit for once its tasks end... and its own.
  const std::string first = Start(CountingWorkflow("first", dir, 4, "0.1"));
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED) << agent->Output();
}

}  // namespace
}  // namespace gyre::e2e
