// Agent join tokens through the real binaries: with hashes configured, an
// agent without a token or with a wrong one is refused before it is given
// any work, and the refusal is logged without the token; the right token
// (either of two, for rotation) registers and runs tasks; with no hashes
// configured, registration stays open and the orchestrator says so once.
#include <fstream>

#include "absl/strings/ascii.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

constexpr char kToken[] = "join-token-4f9c2a7e1b";
constexpr char kOldToken[] = "join-token-retiring-77d0";
constexpr char kWrongToken[] = "join-token-guessed-0000";

int ExitCode(ChildProcess& process, absl::Duration limit = absl::Seconds(60)) {
  const std::optional<int> status = process.WaitForExit(limit);
  return status.has_value() && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

// `gyre hash-token`'s output for `token`, given on stdin.
std::string HashOf(const std::string& token, const std::string& dir) {
  const std::string file = dir + "/token.txt";
  std::ofstream(file) << token << "\n";
  auto hash = ChildProcess::Start(
      {"/bin/sh", "-c", absl::StrCat(Binary("cmd/gyre/gyre"), " hash-token < ", file)});
  EXPECT_TRUE(hash.ok()) << hash.status();
  if (!hash.ok()) return "";
  EXPECT_EQ(ExitCode(**hash), 0) << (*hash)->Output();
  std::string output = (*hash)->Output();
  return std::string(absl::StripAsciiWhitespace(output));
}

bool Registered(const std::string& line) {
  return absl::StrContains(line, "registered with the orchestrator");
}

class JoinTokenTest : public Cluster {
 protected:
  std::vector<std::string> ExtraOrchestratorEnv() override {
    if (hashes_.empty()) {
      hashes_ = absl::StrCat("[", HashOf(kToken, root_), ", ", HashOf(kOldToken, root_), "]");
    }
    return {"GYRE_AGENT_JOIN_TOKEN_HASHES=" + hashes_};
  }

  std::unique_ptr<ChildProcess> StartAgentWith(const std::string& name,
                                               const std::vector<std::string>& env) {
    auto agent = ChildProcess::Start(
        {Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0", "--orchestrator_address=" + address_,
         "--work_dir=" + root_ + "/" + name, "--shutdown_grace=2s", "--allow_root_tasks=true"},
        env);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? *std::move(agent) : nullptr;
  }

  std::string hashes_;
};

TEST_F(JoinTokenTest, AgentWithoutOrWithWrongTokenIsRefusedAndLoggedWithoutTheToken) {
  const std::string execution = Start("name: waits\ntasks:\n  - id: t\n    command: [\"true\"]\n");
  ASSERT_FALSE(execution.empty());

  auto anonymous = StartAgentWith("anonymous", {});
  auto guesser = StartAgentWith("guesser", {absl::StrCat("GYRE_JOIN_TOKEN=", kWrongToken)});
  ASSERT_NE(anonymous, nullptr);
  ASSERT_NE(guesser, nullptr);
  const auto refusal = [](absl::string_view why) {
    return [why](const std::string& line) {
      return absl::StrContains(line, "agent registration refused") && absl::StrContains(line, why);
    };
  };
  EXPECT_TRUE(orchestrator_->WaitForLine(refusal("no join token"), absl::Seconds(20)).ok())
      << orchestrator_->Output();
  EXPECT_TRUE(
      orchestrator_->WaitForLine(refusal("not one of agent_join_token_hashes"), absl::Seconds(20))
          .ok())
      << orchestrator_->Output();

  // Neither was given work: the task still waits, and no agent is listed.
  EXPECT_EQ(Task(execution, "t").state(), v1::TASK_READY);
  {
    grpc::ClientContext call;
    v1::ListAgentsResponse agents;
    ASSERT_TRUE(stub_->ListAgents(&call, v1::ListAgentsRequest(), &agents).ok());
    EXPECT_EQ(agents.agents_size(), 0) << agents.DebugString();
  }
  EXPECT_FALSE(absl::StrContains(anonymous->Output(), "registered with the orchestrator"));
  EXPECT_FALSE(absl::StrContains(guesser->Output(), "registered with the orchestrator"));

  // The agent with the token registers and runs it.
  auto member = StartAgentWith("member", {absl::StrCat("GYRE_JOIN_TOKEN=", kToken)});
  ASSERT_NE(member, nullptr);
  EXPECT_TRUE(member->WaitForLine(Registered, absl::Seconds(20)).ok()) << member->Output();
  EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);

  // No token, right or wrong, is in any log.
  for (const std::string& output :
       {orchestrator_->Output(), anonymous->Output(), guesser->Output(), member->Output()}) {
    EXPECT_FALSE(absl::StrContains(output, kWrongToken)) << output;
    EXPECT_FALSE(absl::StrContains(output, kToken)) << output;
  }
}

TEST_F(JoinTokenTest, EitherOfTwoTokensRegistersSoTokensCanRotate) {
  const std::string token_file = root_ + "/old-token";
  std::ofstream(token_file) << kOldToken << "\n";  // as `echo` writes a Secret
  auto old_member = StartAgentWith("old", {"GYRE_JOIN_TOKEN_FILE=" + token_file});
  auto new_member = StartAgentWith("new", {absl::StrCat("GYRE_JOIN_TOKEN=", kToken)});
  ASSERT_NE(old_member, nullptr);
  ASSERT_NE(new_member, nullptr);
  EXPECT_TRUE(old_member->WaitForLine(Registered, absl::Seconds(20)).ok()) << old_member->Output();
  EXPECT_TRUE(new_member->WaitForLine(Registered, absl::Seconds(20)).ok()) << new_member->Output();
}

TEST(JoinTokenConfigTest, NoHashesLeavesRegistrationOpenWithOneWarning) {
  gyre::testing::ScratchDir scratch("gyre_join");
  auto orchestrator = ChildProcess::Start(
      {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--data_dir=" + scratch.path() + "/data"});
  ASSERT_TRUE(orchestrator.ok()) << orchestrator.status();
  ASSERT_TRUE((*orchestrator)->WaitForLine(IsServing, absl::Seconds(20)).ok());
  const std::string output = (*orchestrator)->Output();
  const std::string warning = "no agent_join_token_hashes configured";
  EXPECT_TRUE(absl::StrContains(output, warning)) << output;
  EXPECT_EQ(output.find(warning), output.rfind(warning)) << "warned more than once:\n" << output;

  // A value that is not a hash (the token itself, pasted by mistake) stops
  // the start with the entry named and the value not echoed.
  auto misconfigured = ChildProcess::Start(
      {Binary("services/orchestrator/gyre-orchestrator"), "--grpc_address=127.0.0.1:0",
       "--metrics_address=127.0.0.1:0", "--data_dir=" + scratch.path() + "/data2"},
      {absl::StrCat("GYRE_AGENT_JOIN_TOKEN_HASHES=[", kToken, "]")});
  ASSERT_TRUE(misconfigured.ok());
  EXPECT_EQ(ExitCode(**misconfigured), 2);
  EXPECT_TRUE(absl::StrContains((*misconfigured)->Output(), "agent_join_token_hashes[0]"))
      << (*misconfigured)->Output();
  EXPECT_FALSE(absl::StrContains((*misconfigured)->Output(), kToken));
}

}  // namespace
}  // namespace gyre::e2e
