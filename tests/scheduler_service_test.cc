// The real gyre-scheduler process over gRPC on loopback: RankAndPlace ranks
// and places a batch (a GPU task keeps the GPU agent while CPU work flows
// elsewhere), says why the rest waits, and rejects a malformed batch.
#include <grpcpp/grpcpp.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "gyre/v1/scheduler_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/scratch_dir.h"

namespace gyre {
namespace {

using testing::ChildProcess;

std::string BinaryPath(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

class SchedulerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  void Start(std::vector<std::string> extra) {
    std::vector<std::string> argv = {BinaryPath("services/scheduler/gyre-scheduler"),
                                     "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto process = ChildProcess::Start(argv);
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = *std::move(process);
    auto serving = process_->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
        absl::Seconds(20));
    ASSERT_TRUE(serving.ok()) << serving.status();
    stub_ = v1::SchedulerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port")),
        grpc::InsecureChannelCredentials()));
  }

  grpc::Status Call(const v1::RankAndPlaceRequest& request, v1::RankAndPlaceResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->RankAndPlace(&context, request, response);
  }

  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<v1::SchedulerService::Stub> stub_;
};

TEST_F(SchedulerServiceTest, GpuTaskKeepsTheGpuAgentWhileCpuWorkFlowsElsewhere) {
  v1::RankAndPlaceRequest request;
  for (int i = 0; i < 4; ++i) {
    v1::ReadyTaskInfo* t = request.add_tasks();
    t->set_task_run(absl::StrCat("executions/e/tasks/cpu", i));
    t->set_queue("default");
    t->set_execution("executions/e");
    t->set_predicted_seconds(30);
    t->mutable_resources()->set_cpu(1);
  }
  v1::ReadyTaskInfo* gpu = request.add_tasks();
  gpu->set_task_run("executions/e/tasks/train");
  gpu->set_queue("default");
  gpu->set_execution("executions/e");
  gpu->set_predicted_seconds(30);
  gpu->mutable_resources()->set_gpus(1);
  for (const auto& [name, gpus] : {std::pair{"agents/cpu", 0}, std::pair{"agents/gpu", 1}}) {
    v1::AgentInfo* a = request.add_agents();
    a->set_name(name);
    a->add_queues("default");
    a->set_slots(2);
    a->set_free_slots(2);
    a->mutable_resources()->set_cpu(8);
    a->mutable_resources()->set_gpus(gpus);
    a->set_state(v1::AgentInfo::CONNECTED);
  }
  v1::RankAndPlaceResponse response;
  const grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Two CPU tasks on the CPU agent, the GPU task on the GPU agent although
  // it ranks last; only then may a CPU task take the GPU agent's other slot.
  // The fourth CPU task waits, to start when the first slot frees (30 s).
  int on_cpu = 0;
  bool gpu_on_gpu_agent = false;
  for (const v1::Placement& p : response.placements()) {
    if (p.task_run() == "executions/e/tasks/train") gpu_on_gpu_agent = p.agent() == "agents/gpu";
    if (p.agent() == "agents/cpu") ++on_cpu;
  }
  EXPECT_TRUE(gpu_on_gpu_agent) << response.DebugString();
  EXPECT_EQ(on_cpu, 2) << response.DebugString();
  EXPECT_EQ(response.placements_size(), 4) << response.DebugString();
  ASSERT_EQ(response.unplaced_size(), 1) << response.DebugString();
  EXPECT_TRUE(absl::StrContains(response.unplaced(0).reason(), "busy"))
      << response.unplaced(0).reason();
  EXPECT_EQ(response.unplaced(0).estimated_start_seconds(), 30);
}

TEST_F(SchedulerServiceTest, RejectsAMalformedBatchNamingTheField) {
  v1::RankAndPlaceRequest request;
  v1::ReadyTaskInfo* t = request.add_tasks();
  t->set_task_run("executions/e/tasks/x");
  t->set_priority(500);
  v1::RankAndPlaceResponse response;
  const grpc::Status status = Call(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "priority 500, outside 0..100"))
      << status.error_message();
}

TEST_F(SchedulerServiceTest, TenantWeightsFromTheConfigFileSetTheFairShares) {
  testing::ScratchDir dir("scheduler-config");
  const std::string config = dir.path() + "/scheduler.yaml";
  std::ofstream(config) << "tenant_weights: {vip: 100}\naging_grace: 1h\n";
  process_.reset();
  Start({"--config=" + config});
  // Two executions, one ready task each; "vip" has 10x the remaining work
  // but 100x the weight, so its task ranks first.
  v1::RankAndPlaceRequest request;
  for (const char* e : {"executions/small", "executions/vip"}) {
    v1::ReadyTaskInfo* t = request.add_tasks();
    t->set_task_run(absl::StrCat(e, "/tasks/t"));
    t->set_queue("default");
    t->set_execution(e);
    t->set_predicted_seconds(1);
    v1::ExecutionLoad* load = request.add_executions();
    load->set_execution(e);
    load->set_tenant(absl::EndsWith(e, "vip") ? "vip" : "");
    load->set_remaining_work_seconds(absl::EndsWith(e, "vip") ? 10'000 : 1'000);
  }
  v1::RankAndPlaceResponse response;
  const grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.unplaced_size(), 2);
  EXPECT_EQ(response.unplaced(0).task_run(), "executions/vip/tasks/t") << response.DebugString();
}

TEST_F(SchedulerServiceTest, LabelWeightsFromTheConfigFileSetTheFairSharesByTeam) {
  testing::ScratchDir dir("scheduler-config");
  const std::string config = dir.path() + "/scheduler.yaml";
  std::ofstream(config) << "fair_share_label: team\nlabel_weights: {ml: 100}\naging_grace: 1h\n";
  process_.reset();
  Start({"--config=" + config});
  // Two executions of one tenant, one ready task each; "big" has 10x the
  // remaining work, but its task is labelled team: ml, of weight 100, so it
  // ranks first.
  v1::RankAndPlaceRequest request;
  for (const char* e : {"executions/small", "executions/big"}) {
    v1::ReadyTaskInfo* t = request.add_tasks();
    t->set_task_run(absl::StrCat(e, "/tasks/t"));
    t->set_queue("default");
    t->set_execution(e);
    t->set_predicted_seconds(1);
    if (absl::EndsWith(e, "big")) (*t->mutable_labels())["team"] = "ml";
    v1::ExecutionLoad* load = request.add_executions();
    load->set_execution(e);
    load->set_remaining_work_seconds(absl::EndsWith(e, "big") ? 10'000 : 1'000);
  }
  v1::RankAndPlaceResponse response;
  grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.unplaced_size(), 2);
  EXPECT_EQ(response.unplaced(0).task_run(), "executions/big/tasks/t") << response.DebugString();
  // Without the label the big execution competes at weight 1 and goes last.
  request.mutable_tasks(1)->clear_labels();
  status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.unplaced_size(), 2);
  EXPECT_EQ(response.unplaced(0).task_run(), "executions/small/tasks/t") << response.DebugString();
}

TEST(SchedulerConfigTest, AZeroTenantWeightStopsTheStartNamingTheKey) {
  testing::ScratchDir dir("scheduler-config");
  const std::string config = dir.path() + "/scheduler.yaml";
  std::ofstream(config) << "tenant_weights: {batch: 0}\n";
  auto process = ChildProcess::Start({BinaryPath("services/scheduler/gyre-scheduler"),
                                      "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                                      "--config=" + config});
  ASSERT_TRUE(process.ok()) << process.status();
  const std::optional<int> status = (*process)->WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(status.has_value()) << (*process)->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << (*process)->Output();
  EXPECT_TRUE(absl::StrContains((*process)->Output(), "tenant_weights[\"batch\"] is 0"))
      << (*process)->Output();
}

}  // namespace
}  // namespace gyre
