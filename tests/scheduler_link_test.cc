// The orchestrator's link to gyre-scheduler and UpdatePriority, with real
// processes: a gyre-orchestrator, a one-slot gyre-agent and (when attached)
// a gyre-scheduler, over gRPC on loopback. Ready tasks wait behind a
// blocker that holds the only slot until the test releases it, so the order
// they then run in is the order the orchestrator queued them in.
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

using ::google::protobuf::util::TimeUtil;

// A side task listed first (local dispatch takes it first) and a chain of
// four: c1 heads the critical path, so the scheduler puts it first.
constexpr char kCriticalPathWorkflow[] = R"(
name: critical
tasks:
  - {id: side, builtin: sleep, duration: 50ms}
  - {id: c1, builtin: sleep, duration: 50ms}
  - {id: c2, builtin: sleep, duration: 50ms, depends_on: c1}
  - {id: c3, builtin: sleep, duration: 50ms, depends_on: c2}
  - {id: c4, builtin: sleep, duration: 50ms, depends_on: c3}
)";

class SchedulerLinkTest : public Cluster {
 protected:
  // Holds the agent's only slot until Release().
  std::string StartBlocker() {
    const std::string execution = Start(absl::StrCat(
        "name: blocker\ntasks:\n  - id: block\n    shell: true\n    command: 'while [ ! -f ",
        release_file_, " ]; do sleep 0.05; done'\n"));
    EXPECT_TRUE(AwaitTaskState(execution, "block", v1::TASK_RUNNING)) << "the blocker never ran";
    return execution;
  }
  void Release() { std::ofstream(release_file_) << "go"; }

  // When `task`'s first attempt was leased.
  absl::Time LeaseTime(const std::string& execution, const std::string& task) {
    const v1::TaskRun run = Task(execution, task);
    EXPECT_GT(run.attempts_size(), 0) << task << " never leased";
    if (run.attempts_size() == 0) return absl::InfiniteFuture();
    return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(run.attempts(0).lease_time()));
  }

  bool AwaitMetricAtLeast(const std::string& sample, double value) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (Metric(sample) >= value) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  v1::Execution UpdatePriority(const std::string& name, int priority) {
    grpc::ClientContext call;
    v1::UpdatePriorityRequest request;
    request.set_name(name);
    request.set_priority(priority);
    v1::Execution execution;
    const grpc::Status status = stub_->UpdatePriority(&call, request, &execution);
    EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
    return execution;
  }

  const std::string release_file_ = root_ + "/release";
};

// With a gyre-scheduler attached (scheduler_address).
class AttachedSchedulerTest : public SchedulerLinkTest {
 protected:
  void SetUp() override {
    auto scheduler =
        ChildProcess::Start({Binary("services/scheduler/gyre-scheduler"),
                             "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0"});
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = *std::move(scheduler);
    auto serving = scheduler_->WaitForLine(IsServing, absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status();
    scheduler_address_ = absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
    Cluster::SetUp();
  }
  void TearDown() override {
    Cluster::TearDown();
    scheduler_.reset();
  }
  std::vector<std::string> ExtraOrchestratorEnv() override {
    return {"GYRE_SCHEDULER_ADDRESS=" + scheduler_address_};
  }

  std::unique_ptr<ChildProcess> scheduler_;
  std::string scheduler_address_;
};

TEST_F(AttachedSchedulerTest, CriticalPathTaskRunsBeforeAShortSideTask) {
  StartAgent("one-slot", /*slots=*/1);
  const std::string blocker = StartBlocker();
  const double reordered = Metric("gyre_scheduler_link_reordered_tasks_total");
  const std::string execution = Start(kCriticalPathWorkflow);
  // Both ready tasks were queued again in the scheduler's order.
  ASSERT_TRUE(AwaitMetricAtLeast("gyre_scheduler_link_reordered_tasks_total", reordered + 2))
      << orchestrator_->Output() << scheduler_->Output();
  Release();
  EXPECT_EQ(Wait(blocker), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  EXPECT_LT(LeaseTime(execution, "c1"), LeaseTime(execution, "side"))
      << "the head of the critical path should take the free slot before the side task";
  EXPECT_GT(Metric("gyre_scheduler_link_calls_total{outcome=\"ok\"}"), 0);
}

TEST_F(AttachedSchedulerTest, DispatchGoesOnLocallyWhenTheSchedulerIsKilled) {
  StartAgent("one-slot", /*slots=*/1);
  std::vector<std::string> executions;
  for (int i = 0; i < 3; ++i) {
    std::string yaml = absl::StrCat("name: chain", i, "\ntasks:\n");
    for (int t = 0; t < 8; ++t) {
      absl::StrAppend(&yaml, "  - {id: t", t, ", builtin: sleep, duration: 20ms",
                      t > 0 ? absl::StrCat(", depends_on: t", t - 1) : "", "}\n");
      absl::StrAppend(&yaml, "  - {id: s", t, ", builtin: sleep, duration: 20ms}\n");
    }
    executions.push_back(Start(yaml));
  }
  ASSERT_TRUE(AwaitMetricAtLeast("gyre_scheduler_link_calls_total{outcome=\"ok\"}", 1))
      << orchestrator_->Output();
  scheduler_->Signal(SIGKILL);
  ASSERT_TRUE(scheduler_->WaitForExit(absl::Seconds(10)).has_value());
  for (const std::string& execution : executions) {
    EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED) << execution;
  }
  EXPECT_TRUE(AwaitMetricAtLeast("gyre_scheduler_link_calls_total{outcome=\"failed\"}", 1))
      << "the link should have tried the dead scheduler while tasks were queued";
}

// The same scene without a scheduler: the local order (workflow order)
// stands, so the test above can tell the scheduler's order from it.
TEST_F(SchedulerLinkTest, WithoutASchedulerTheWorkflowOrderStands) {
  StartAgent("one-slot", /*slots=*/1);
  const std::string blocker = StartBlocker();
  const std::string execution = Start(kCriticalPathWorkflow);
  ASSERT_TRUE(AwaitTaskState(execution, "c1", v1::TASK_READY));
  Release();
  EXPECT_EQ(Wait(blocker), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(execution), v1::EXECUTION_SUCCEEDED);
  EXPECT_LT(LeaseTime(execution, "side"), LeaseTime(execution, "c1"));
}

TEST_F(SchedulerLinkTest, UpdatePriorityReordersQueuedTasks) {
  StartAgent("one-slot", /*slots=*/1);
  const std::string blocker = StartBlocker();
  const std::string first = Start(
      "name: first\ntasks:\n"
      "  - {id: a, builtin: sleep, duration: 20ms}\n"
      "  - {id: b, builtin: sleep, duration: 20ms}\n"
      "  - {id: c, builtin: sleep, duration: 20ms}\n");
  const std::string second =
      Start("name: second\ntasks:\n  - {id: x, builtin: sleep, duration: 20ms}\n");
  ASSERT_TRUE(AwaitTaskState(second, "x", v1::TASK_READY));
  // A task's priority, then a whole execution's: c (90), x (80), then a, b.
  UpdatePriority(first + "/tasks/c", 90);
  EXPECT_EQ(UpdatePriority(second, 80).priority(), 80);
  EXPECT_EQ(Task(first, "c").priority(), 90);
  Release();
  EXPECT_EQ(Wait(blocker), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(first), v1::EXECUTION_SUCCEEDED);
  EXPECT_EQ(Wait(second), v1::EXECUTION_SUCCEEDED);
  const absl::Time c = LeaseTime(first, "c");
  const absl::Time x = LeaseTime(second, "x");
  const absl::Time a = LeaseTime(first, "a");
  const absl::Time b = LeaseTime(first, "b");
  EXPECT_LT(c, x) << "priority 90 before 80";
  EXPECT_LT(x, a) << "priority 80 before 50";
  EXPECT_LT(a, b) << "equal priorities keep their order";
}

}  // namespace
}  // namespace gyre::e2e
