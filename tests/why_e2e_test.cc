// "Why isn't my task running?" across real processes: a GPU task waits for
// the one busy GPU agent while CPU work flows on another agent, and a task
// whose label selector no agent matches; `gyre why` names each reason, and
// ListTaskRuns (what the gateway's GET /executions/{id} returns) carries it
// as data.
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

// `hold` takes the GPU agent's only slot for a minute (its priority puts it
// first there); `train` needs that GPU too; c1 and c2 need none and run on
// the CPU agent; `mars` asks for a label no agent has.
constexpr char kWorkflow[] = R"(
name: why-e2e
tasks:
  - {id: hold, builtin: sleep, duration: 60s, priority: 90, resources: {gpu: 1}}
  - {id: train, builtin: sleep, duration: 1s, resources: {gpu: 1}}
  - {id: c1, builtin: sleep, duration: 100ms}
  - {id: c2, builtin: sleep, duration: 100ms, depends_on: [c1]}
  - {id: mars, builtin: noop, agent_selector: {zone: mars}}
  - {id: after, builtin: noop, depends_on: [train]}
)";

class WhyE2eTest : public Cluster {
 protected:
  // `gyre why` with `arguments`: its output, after it exited 0.
  std::string Why(const std::vector<std::string>& arguments) {
    std::vector<std::string> argv = {Binary("cmd/gyre/gyre"), "why"};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    argv.push_back("--orchestrator=" + address_);
    auto why = ChildProcess::Start(argv);
    EXPECT_TRUE(why.ok()) << why.status();
    if (!why.ok()) return "";
    const std::optional<int> status = (*why)->WaitForExit(absl::Seconds(30));
    const std::string output = (*why)->Output();
    EXPECT_TRUE(status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output;
    return output;
  }
};

TEST_F(WhyE2eTest, GyreWhyNamesBusyGpuSlotsAndTheLabelNoAgentHas) {
  // GPUs and labels are config-file keys (no flags).
  std::ofstream(root_ + "/gpu1.yaml") << "gpus: 1\nlabels: {zone: earth}\n";
  std::ofstream(root_ + "/cpu1.yaml") << "gpus: 0\n";
  StartAgent("gpu1", 1, {"--config=" + root_ + "/gpu1.yaml"});
  StartAgent("cpu1", 2, {"--config=" + root_ + "/cpu1.yaml"});
  const std::string execution = Start(kWorkflow);
  // CPU work flows on the other agent while `hold` keeps the GPU agent
  // (a builtin stays LEASED: it reports no start). Agent ids are the name
  // and a random suffix.
  ASSERT_TRUE(AwaitTaskState(execution, "c2", v1::TASK_SUCCEEDED));
  EXPECT_TRUE(absl::StartsWith(Task(execution, "c2").attempts(0).agent(), "agents/cpu1-"));
  const v1::TaskRun hold = Task(execution, "hold");
  ASSERT_TRUE(hold.state() == v1::TASK_LEASED || hold.state() == v1::TASK_RUNNING)
      << hold.DebugString();
  EXPECT_TRUE(absl::StartsWith(hold.attempts(0).agent(), "agents/gpu1-"));

  const v1::TaskRun train = Task(execution, "train");
  ASSERT_EQ(train.state(), v1::TASK_READY);
  EXPECT_EQ(train.waiting().kind(), v1::WaitingExplanation::SLOTS_BUSY) << train.DebugString();
  EXPECT_EQ(train.waiting().queue_position(), 1);
  EXPECT_EQ(train.waiting().best_candidate().agent(), hold.attempts(0).agent());
  EXPECT_EQ(train.waiting().matching_agents(), 1);

  const std::string one = Why({execution, "train"});
  EXPECT_TRUE(absl::StrContains(one,
                                "slots busy: all 1 slot(s) of the agent(s) that could run "
                                "it (gpu1-"))
      << one;
  EXPECT_TRUE(absl::StrContains(one, ") are busy; position 1 in queue \"default\"")) << one;
  EXPECT_TRUE(absl::StrContains(one, "queue position: 1")) << one;

  // Every waiting task of the execution, and nothing about those that run
  // or ended.
  const std::string all = Why({execution});
  EXPECT_TRUE(absl::StrContains(all, "no matching agent")) << all;
  EXPECT_TRUE(absl::StrContains(all, "failing requirement: label zone=mars")) << all;
  EXPECT_TRUE(absl::StrContains(all, "label zone=mars (it has zone=earth)") ||
              absl::StrContains(all, "label zone=mars (it has no label zone)"))
      << all;
  EXPECT_TRUE(absl::StrContains(all, "waiting on: train (ready)")) << all;
  EXPECT_FALSE(absl::StrContains(all, "  hold ")) << all;
  EXPECT_FALSE(absl::StrContains(all, "  c2 ")) << all;

  // ListTaskRuns carries the same, as data (the gateway returns it).
  grpc::ClientContext call;
  v1::ListTaskRunsRequest list;
  list.set_parent(execution);
  v1::ListTaskRunsResponse runs;
  ASSERT_TRUE(stub_->ListTaskRuns(&call, list, &runs).ok());
  bool saw_mars = false;
  for (const v1::TaskRun& run : runs.task_runs()) {
    if (run.task_id() != "mars") continue;
    saw_mars = true;
    EXPECT_EQ(run.waiting().kind(), v1::WaitingExplanation::NO_MATCHING_AGENT);
    EXPECT_EQ(run.waiting().failing_requirement(), "label zone=mars");
  }
  EXPECT_TRUE(saw_mars);
  ASSERT_TRUE(Cancel(execution).ok());
}

}  // namespace
}  // namespace gyre::e2e
