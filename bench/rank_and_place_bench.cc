// RankAndPlace latency (issue 25): 10,000 ready tasks onto 1,000 agents,
// over gRPC to a real gyre-scheduler process on loopback, beside the same
// batch ranked in this process (what the RPC adds is the difference).
// Target: < 50 ms per batch; p50 and p99 printed.
//
//   scripts/build rank_and_place_bench gyre-scheduler
//   build/bench/rank_and_place_bench --runs=3 --calls=30
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "gyre/v1/scheduler_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "services/scheduler/batch_scheduler.h"

ABSL_FLAG(int, calls, 30, "measured RankAndPlace calls per run and way (after 5 warm-ups)");
ABSL_FLAG(int, runs, 3, "runs; each prints its p50 and p99, then the medians of the runs");
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

double LoadAverage() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  const gyre::v1::RankAndPlaceRequest request =
      Batch(absl::GetFlag(FLAGS_tasks), absl::GetFlag(FLAGS_agents));

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

  // In process: the domain logic alone (what the handler runs once the
  // request is parsed).
  gyre::scheduler::BatchScheduler local;
  int placed = 0;
  auto in_process = [&]() -> double {
    gyre::v1::RankAndPlaceResponse response;
    const absl::Time start = absl::Now();
    const absl::Status status = local.RankAndPlace(request, &response);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      std::exit(1);
    }
    placed = response.placements_size();
    return ms;
  };
  // Over gRPC, as the orchestrator's link calls it: the answer parsed onto
  // an arena that is dropped whole.
  auto over_grpc = [&]() -> double {
    google::protobuf::Arena arena;
    auto* response = google::protobuf::Arena::CreateMessage<gyre::v1::RankAndPlaceResponse>(&arena);
    grpc::ClientContext context;
    const absl::Time start = absl::Now();
    const grpc::Status status = stub->RankAndPlace(&context, request, response);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!status.ok()) {
      std::fprintf(stderr, "RankAndPlace: %s\n", status.error_message().c_str());
      std::exit(1);
    }
    return ms;
  };
  // What the RPC does around the scheduling, in process, with the messages
  // on the heap (the synchronous handler's way before 2026-12-04) or on one
  // arena per call (the callback handler's): parse the request, rank and
  // place, serialize the answer, parse it as the client does. Same run, so
  // the two compare on the same machine load.
  const std::string request_bytes = request.SerializeAsString();
  auto codec = [&](bool arena_allocated) -> double {
    const absl::Time start = absl::Now();
    std::string answer_bytes;
    if (arena_allocated) {
      google::protobuf::ArenaOptions options;
      options.start_block_size = 64 << 10;
      options.max_block_size = 1 << 20;
      google::protobuf::Arena arena(options);
      auto* req = google::protobuf::Arena::CreateMessage<gyre::v1::RankAndPlaceRequest>(&arena);
      auto* resp = google::protobuf::Arena::CreateMessage<gyre::v1::RankAndPlaceResponse>(&arena);
      if (!req->ParseFromString(request_bytes) || !local.RankAndPlace(*req, resp).ok())
        std::exit(1);
      resp->SerializeToString(&answer_bytes);
      google::protobuf::Arena client_arena;
      auto* parsed =
          google::protobuf::Arena::CreateMessage<gyre::v1::RankAndPlaceResponse>(&client_arena);
      if (!parsed->ParseFromString(answer_bytes)) std::exit(1);
    } else {
      gyre::v1::RankAndPlaceRequest req;
      gyre::v1::RankAndPlaceResponse resp;
      if (!req.ParseFromString(request_bytes) || !local.RankAndPlace(req, &resp).ok()) std::exit(1);
      resp.SerializeToString(&answer_bytes);
      gyre::v1::RankAndPlaceResponse parsed;
      if (!parsed.ParseFromString(answer_bytes)) std::exit(1);
    }
    return absl::ToDoubleMilliseconds(absl::Now() - start);
  };
  for (int i = 0; i < 5; ++i) {
    in_process();
    over_grpc();
    codec(false);
    codec(true);
  }

  std::printf(
      "RankAndPlace, %d tasks onto %d agents, %d runs of %d calls each way, request %zu "
      "bytes\n",
      request.tasks_size(), request.agents_size(), runs, calls, request.ByteSizeLong());
  std::vector<double> local_p50, local_p99, rpc_p50, rpc_p99, heap_p50, arena_p50;
  for (int run = 0; run < runs; ++run) {
    const double load_before = LoadAverage();
    std::vector<double> local_ms, rpc_ms, heap_ms, arena_ms;
    // Alternated call by call, so all see the same machine.
    for (int i = 0; i < calls; ++i) {
      local_ms.push_back(in_process());
      rpc_ms.push_back(over_grpc());
      heap_ms.push_back(codec(false));
      arena_ms.push_back(codec(true));
    }
    heap_p50.push_back(Percentile(heap_ms, 0.5));
    arena_p50.push_back(Percentile(arena_ms, 0.5));
    local_p50.push_back(Percentile(local_ms, 0.5));
    local_p99.push_back(Percentile(local_ms, 0.99));
    rpc_p50.push_back(Percentile(rpc_ms, 0.5));
    rpc_p99.push_back(Percentile(rpc_ms, 0.99));
    std::printf(
        "  run %d (load average %.1f -> %.1f, %d placed): in process p50 %.1f p99 %.1f ms;"
        " over gRPC p50 %.1f p99 %.1f ms; parse+rank+serialize+parse p50: heap %.1f, arena"
        " %.1f ms\n",
        run + 1, load_before, LoadAverage(), placed, local_p50.back(), local_p99.back(),
        rpc_p50.back(), rpc_p99.back(), heap_p50.back(), arena_p50.back());
  }
  std::printf("median of %d runs:\n", runs);
  std::printf("  in process:  p50 %.1f ms  p99 %.1f ms\n", Median(local_p50), Median(local_p99));
  std::printf(
      "  with the RPC's parsing and serializing, in process, p50: heap %.1f, arena %.1f ms\n",
      Median(heap_p50), Median(arena_p50));
  std::printf("  over gRPC:   p50 %.1f ms  p99 %.1f ms   target < 50 ms: %s\n", Median(rpc_p50),
              Median(rpc_p99), Median(rpc_p50) < 50 ? "met at p50" : "MISSED at p50");
  return 0;
}
