// RankAndPlace latency (issue 25): 10,000 ready tasks onto 1,000 agents,
// over gRPC to a real gyre-scheduler process on loopback, beside the same
// batch ranked in this process (what the RPC adds is the difference).
// Target: < 50 ms per batch; p50 and p99 printed.
//
//   scripts/build rank_and_place_bench gyre-scheduler
//   build/bench/rank_and_place_bench --calls=100
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gyre/v1/scheduler_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "services/scheduler/batch_scheduler.h"

ABSL_FLAG(int, calls, 100, "measured RankAndPlace calls (after 5 warm-up calls)");
ABSL_FLAG(int, tasks, 10000, "ready tasks per batch");
ABSL_FLAG(int, agents, 1000, "agents per batch");
ABSL_FLAG(std::string, bin_dir, "build", "build directory with services/scheduler/gyre-scheduler");

namespace {

// Four queues; 5% of tasks need a GPU, 10% a zone label; 200 executions;
// agents have 4 slots, half of them free, and 10% have 2 GPUs.
gyre::v1::RankAndPlaceRequest Batch(int task_count, int agent_count) {
  const char* queues[] = {"default", "cpu", "io", "gpu"};
  std::mt19937 rng(7);
  gyre::v1::RankAndPlaceRequest request;
  for (int i = 0; i < task_count; ++i) {
    gyre::v1::ReadyTaskInfo* t = request.add_tasks();
    const int e = i % 200;
    t->set_task_run(absl::StrCat("executions/e", e, "/tasks/t", i));
    t->set_execution(absl::StrCat("executions/e", e));
    t->set_queue(queues[i % 4]);
    t->set_task_type(absl::StrCat(queues[i % 4], "/type", i % 37));
    t->set_priority(i % 10 == 0 ? 50 : 0);
    t->set_waiting_seconds(rng() % 600);
    t->set_predicted_seconds(1 + rng() % 300);
    t->set_upward_rank_seconds(t->predicted_seconds() + rng() % 3000);
    t->mutable_resources()->set_cpu(0.5 + (rng() % 4));
    t->mutable_resources()->set_memory_bytes((int64_t{1} + rng() % 8) << 30);
    if (i % 20 == 0) t->mutable_resources()->set_gpus(1);
    if (i % 10 == 1) (*t->mutable_agent_selector())["zone"] = "eu";
  }
  for (int e = 0; e < 200; ++e) {
    gyre::v1::ExecutionLoad* load = request.add_executions();
    load->set_execution(absl::StrCat("executions/e", e));
    load->set_tenant(absl::StrCat("team", e % 5));
    load->set_remaining_work_seconds(1000 + rng() % 100000);
  }
  for (int a = 0; a < agent_count; ++a) {
    gyre::v1::AgentInfo* agent = request.add_agents();
    agent->set_name(absl::StrCat("agents/a", a));
    agent->add_queues(queues[a % 4]);
    (*agent->mutable_labels())["zone"] = a % 2 == 0 ? "eu" : "us";
    agent->set_slots(4);
    agent->set_free_slots(2);
    agent->set_state(gyre::v1::AgentInfo::CONNECTED);
    agent->mutable_resources()->set_cpu(16);
    agent->mutable_resources()->set_memory_bytes(int64_t{64} << 30);
    if (a % 10 == 3) agent->mutable_resources()->set_gpus(2);
  }
  return request;
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const gyre::v1::RankAndPlaceRequest request =
      Batch(absl::GetFlag(FLAGS_tasks), absl::GetFlag(FLAGS_agents));

  // In process: the domain logic alone.
  gyre::scheduler::BatchScheduler local;
  std::vector<double> local_ms;
  int placed = 0;
  for (int i = 0; i < calls + 5; ++i) {
    const absl::Time start = absl::Now();
    auto response = local.RankAndPlace(request);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!response.ok()) {
      std::fprintf(stderr, "%s\n", response.status().ToString().c_str());
      return 1;
    }
    placed = response->placements_size();
    if (i >= 5) local_ms.push_back(ms);
  }

  auto process = gyre::testing::ChildProcess::Start(
      {absl::StrCat(absl::GetFlag(FLAGS_bin_dir), "/services/scheduler/gyre-scheduler"),
       "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0"});
  if (!process.ok()) {
    std::fprintf(stderr, "%s\n", process.status().ToString().c_str());
    return 1;
  }
  auto serving = (*process)->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
      absl::Seconds(30));
  if (!serving.ok()) {
    std::fprintf(stderr, "%s\n", serving.status().ToString().c_str());
    return 1;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto stub = gyre::v1::SchedulerService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", *gyre::testing::JsonIntField(*serving, "grpc_port")),
      grpc::InsecureChannelCredentials(), args));
  std::vector<double> rpc_ms;
  for (int i = 0; i < calls + 5; ++i) {
    grpc::ClientContext context;
    gyre::v1::RankAndPlaceResponse response;
    const absl::Time start = absl::Now();
    const grpc::Status status = stub->RankAndPlace(&context, request, &response);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!status.ok()) {
      std::fprintf(stderr, "RankAndPlace: %s\n", status.error_message().c_str());
      return 1;
    }
    if (i >= 5) rpc_ms.push_back(ms);
  }
  std::printf("RankAndPlace, %d tasks onto %d agents (%d placed), %d calls, request %zu bytes\n",
              request.tasks_size(), request.agents_size(), placed, calls, request.ByteSizeLong());
  std::printf("  in process:  p50 %.1f ms  p99 %.1f ms\n", Percentile(local_ms, 0.5),
              Percentile(local_ms, 0.99));
  std::printf("  over gRPC:   p50 %.1f ms  p99 %.1f ms   target < 50 ms\n", Percentile(rpc_ms, 0.5),
              Percentile(rpc_ms, 0.99));
  return 0;
}
