// Several real gyre-orchestrator processes sharing one real PostgreSQL 15 by
// shard leases (postgres_sharding, issue 21), each with its own real
// gyre-agent: executions spread over them complete, and each task's success
// is recorded exactly once in the store, when one is killed (SIGKILL), when
// one is stopped past its lease and continued (SIGSTOP/SIGCONT: fencing),
// and when one joins mid-run (shards move); every one exports the cluster's
// desired workers, not those of its own part of the backlog; with the
// relational projection on, each projects its shards into one set of tables.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "gyre/v1/state_record.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/free_port.h"
#include "libs/testing/http_get.h"
#include "libs/testing/postgres_server.h"
#include "libs/testing/scratch_dir.h"
#include "libs/workflow/workflow_parser.h"
#include "services/orchestrator/shard_map.h"
#include "tests/cluster_fixture.h"

namespace gyre::e2e {
namespace {

using ::gyre::orchestrator::kDefaultShardCount;
using ::gyre::orchestrator::ShardOfExecution;
using ::testing::HasSubstr;

// The lease ttl the orchestrators run with: short, to keep takeovers fast.
constexpr char kTtl[] = "1500ms";

struct Orchestrator {
  std::string id;
  std::unique_ptr<ChildProcess> process;
  std::string address;
  int metrics_port = 0;
  std::unique_ptr<v1::OrchestratorService::Stub> stub;
  std::string agent_id;
  std::unique_ptr<ChildProcess> agent;
  bool alive = true;
};

class ShardedOrchestratorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> database = gyre::testing::PostgresServer::Shared().CreateDatabase();
    ASSERT_TRUE(database.ok()) << database.status();
    dsn_ = gyre::testing::PostgresServer::Shared().SocketDsn(*database);
  }

  void TearDown() override {
    for (auto& orchestrator : orchestrators_) {
      if (orchestrator->process != nullptr) orchestrator->process->Signal(SIGCONT);
    }
    if (HasFailure()) {
      for (auto& orchestrator : orchestrators_) {
        // The ends: the start (256 adoptions) says little.
        auto tail = [](const std::string& text, size_t bytes) {
          return text.size() > bytes ? text.substr(text.size() - bytes) : text;
        };
        if (orchestrator->process != nullptr) {
          std::cerr << "---- " << orchestrator->id << " ----\n"
                    << tail(orchestrator->process->Output(), 15000) << "\n";
        }
        if (orchestrator->agent != nullptr) {
          std::cerr << "---- " << orchestrator->agent_id << " ----\n"
                    << tail(orchestrator->agent->Output(), 5000) << "\n";
        }
      }
    }
    orchestrators_.clear();
  }

  // Starts orchestrator `id` and one agent of its own; returns once it
  // adopted its first round of shards (readiness) and its agent registered.
  // `grpc_port`: 0 for any; `agent_addresses`: the orchestrators its agent
  // connects to (empty: this one only).
  // `extra_env`: more settings ("GYRE_KEY=value") for the orchestrator.
  Orchestrator& StartOrchestrator(const std::string& id,
                                  const std::string& snapshot_every_records = "0",
                                  int grpc_port = 0, const std::string& agent_addresses = "",
                                  const std::vector<std::string>& extra_env = {}) {
    auto orchestrator = std::make_unique<Orchestrator>();
    orchestrator->id = id;
    std::vector<std::string> env = {"GYRE_STORE=postgres",
                                    "GYRE_POSTGRES_DSN=" + dsn_,
                                    "GYRE_POSTGRES_SHARDING=true",
                                    "GYRE_ORCHESTRATOR_ID=" + id,
                                    absl::StrCat("GYRE_SHARD_LEASE_TTL=", kTtl),
                                    "GYRE_LEASE_TIMEOUT=1500ms",
                                    "GYRE_HEARTBEAT_INTERVAL=200ms",
                                    "GYRE_SNAPSHOT_EVERY_RECORDS=" + snapshot_every_records,
                                    "GYRE_POSTGRES_RETRY_FOR=10s",
                                    "GYRE_RETENTION_INTERVAL=0s"};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    // The relational projection (on by default) only where a test asks
    // for it: the others check the record stream.
    if (std::none_of(extra_env.begin(), extra_env.end(), [](const std::string& setting) {
          return absl::StartsWith(setting, "GYRE_POSTGRES_PROJECTION=");
        })) {
      env.push_back("GYRE_POSTGRES_PROJECTION=false");
    }
    auto process = ChildProcess::Start({Binary("services/orchestrator/gyre-orchestrator"),
                                        absl::StrCat("--grpc_address=127.0.0.1:", grpc_port),
                                        "--metrics_address=127.0.0.1:0", "--shutdown_grace=2s"},
                                       env);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return *orchestrators_.emplace_back(std::move(orchestrator));
    orchestrator->process = *std::move(process);
    auto serving = orchestrator->process->WaitForLine(IsServing, absl::Seconds(30));
    EXPECT_TRUE(serving.ok()) << serving.status() << orchestrator->process->Output();
    if (serving.ok()) {
      orchestrator->address =
          absl::StrCat("127.0.0.1:", *testing::JsonIntField(*serving, "grpc_port"));
      orchestrator->metrics_port = testing::JsonIntField(*serving, "metrics_port").value_or(0);
    }
    auto ready = orchestrator->process->WaitForLine(
        [](const std::string& line) { return absl::StrContains(line, "shards adopted: ready"); },
        absl::Seconds(30));
    EXPECT_TRUE(ready.ok()) << ready.status() << orchestrator->process->Output();
    orchestrator->stub = v1::OrchestratorService::NewStub(
        grpc::CreateChannel(orchestrator->address, grpc::InsecureChannelCredentials()));
    orchestrator->agent_id = id + "-agent";
    auto agent = ChildProcess::Start(
        {Binary("services/agent/gyre-agent"), "--grpc_address=127.0.0.1:0",
         "--metrics_address=127.0.0.1:0",
         "--orchestrator_address=" +
             (agent_addresses.empty() ? orchestrator->address : agent_addresses),
         "--slots=8", "--work_dir=" + root_ + "/" + orchestrator->agent_id, "--shutdown_grace=2s",
         "--allow_root_tasks=true"},
        {"GYRE_NAME=" + orchestrator->agent_id});
    EXPECT_TRUE(agent.ok()) << agent.status();
    if (agent.ok()) {
      orchestrator->agent = *std::move(agent);
      EXPECT_TRUE(orchestrator->agent
                      ->WaitForLine(
                          [](const std::string& line) {
                            return absl::StrContains(line, "registered with the orchestrator");
                          },
                          absl::Seconds(20))
                      .ok());
    }
    return *orchestrators_.emplace_back(std::move(orchestrator));
  }

  // shard -> owner, by the leases live now.
  std::map<uint32_t, std::string> Owners() {
    pqxx::connection connection(dsn_);
    pqxx::read_transaction tx(connection);
    std::map<uint32_t, std::string> owners;
    for (const pqxx::row& row : tx.exec("SELECT shard, owner FROM shard_leases "
                                        "WHERE owner IS NOT NULL AND expires_at > now()")) {
      owners[row[0].as<uint32_t>()] = row[1].as<std::string>();
    }
    return owners;
  }

  // Waits (generously) until the live orchestrators among `ids` hold every
  // shard, evenly (floor or ceil of the shard count over them), and each
  // reports as many adopted (orchestrator_shards_owned is not scraped: the
  // leases are PostgreSQL's word). Returns how long it took.
  absl::Duration AwaitBalanced(const std::vector<std::string>& ids) {
    const absl::Time start = absl::Now();
    const absl::Time deadline = start + absl::Seconds(30);
    std::map<std::string, size_t> counts;
    while (absl::Now() < deadline) {
      counts.clear();
      const std::map<uint32_t, std::string> owners = Owners();
      for (const auto& [shard, owner] : owners) counts[owner]++;
      bool even = owners.size() == kDefaultShardCount && counts.size() == ids.size();
      for (const std::string& id : ids) {
        const size_t floor = kDefaultShardCount / ids.size();
        even = even && (counts[id] == floor || counts[id] == floor + 1);
      }
      if (even) return absl::Now() - start;
      absl::SleepFor(absl::Milliseconds(100));
    }
    std::string shown;
    for (const auto& [owner, count] : counts) absl::StrAppend(&shown, owner, "=", count, " ");
    ADD_FAILURE() << "shards never spread evenly over the live orchestrators: " << shown;
    return absl::Now() - start;
  }

  // One sample of `orchestrator`'s /metrics (as Cluster::Metric reads
  // its one orchestrator's), or -1.
  static double Metric(const Orchestrator& orchestrator, const std::string& sample) {
    return testing::MetricSample(orchestrator.metrics_port, sample);
  }

  // Waits (generously: a few lease rounds) until `sample` of
  // `orchestrator`'s /metrics reads `expected`; returns the last value read.
  static double AwaitMetric(const Orchestrator& orchestrator, const std::string& sample,
                            double expected) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    double value = Metric(orchestrator, sample);
    while (value != expected && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      value = Metric(orchestrator, sample);
    }
    return value;
  }

  // Queue `queue` as `orchestrator`'s ListQueues shows it (empty if absent).
  static v1::QueueInfo ListedQueue(const Orchestrator& orchestrator, const std::string& queue) {
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ListQueuesResponse response;
    const grpc::Status status =
        orchestrator.stub->ListQueues(&call, v1::ListQueuesRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const v1::QueueInfo& info : response.queues()) {
      if (info.name() == "queues/" + queue) return info;
    }
    return v1::QueueInfo();
  }

  Orchestrator* Find(const std::string& id) {
    for (auto& orchestrator : orchestrators_) {
      if (orchestrator->id == id) return orchestrator.get();
    }
    return nullptr;
  }

  // Starts `count` executions of a one-task workflow (`task_yaml` is the
  // task's body), spread round-robin over the live orchestrators; a start
  // refused by one (it owns no shard yet) is tried on the next. Returns
  // their names; `started_on` counts them per orchestrator.
  // Starts `count` executions (StartExecutions) and counts them by the
  // orchestrator that owns each one's shard now.
  std::map<std::string, int> StartAndCountOwned(int count, const std::string& task_yaml) {
    const std::vector<std::string> names = StartExecutions(count, task_yaml);
    const std::map<uint32_t, std::string> owners = Owners();
    std::map<std::string, int> owned;
    for (const std::string& name : names) {
      owned[owners.at(ShardOfExecution(name, kDefaultShardCount))]++;
    }
    return owned;
  }

  std::vector<std::string> StartExecutions(int count, const std::string& task_yaml,
                                           std::map<std::string, int>* started_on = nullptr) {
    absl::StatusOr<v1::WorkflowDefinition> def = workflow::ParseWorkflowYaml(
        absl::StrCat("name: sharded\ntasks:\n  - id: t\n", task_yaml), "sharded.yaml");
    EXPECT_TRUE(def.ok()) << def.status();
    std::vector<std::string> names;
    size_t next = 0;
    for (int i = 0; i < count; ++i) {
      bool started = false;
      for (size_t tries = 0; tries < 2 * orchestrators_.size() && !started; ++tries) {
        Orchestrator& on = *orchestrators_[next++ % orchestrators_.size()];
        if (!on.alive || on.stub == nullptr) continue;
        v1::StartExecutionRequest request;
        *request.mutable_definition() = *def;
        request.set_request_id(absl::StrCat("start-", i));
        grpc::ClientContext call;
        call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
        v1::Execution execution;
        const grpc::Status status = on.stub->StartExecution(&call, request, &execution);
        if (!status.ok()) continue;
        names.push_back(execution.name());
        if (started_on != nullptr) (*started_on)[on.id]++;
        started = true;
      }
      EXPECT_TRUE(started) << "execution " << i << " could not be started anywhere";
    }
    return names;
  }

  // Executions of `names` that ended SUCCEEDED, by what the live
  // orchestrators list (each lists those of its own shards).
  std::set<std::string> Succeeded(std::set<std::string>* failed = nullptr) {
    std::set<std::string> done;
    for (auto& orchestrator : orchestrators_) {
      if (!orchestrator->alive || orchestrator->stub == nullptr) continue;
      v1::ListExecutionsRequest request;
      request.set_page_size(1000);
      request.add_states(v1::EXECUTION_SUCCEEDED);
      request.add_states(v1::EXECUTION_FAILED);
      do {
        grpc::ClientContext call;
        call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        v1::ListExecutionsResponse page;
        if (!orchestrator->stub->ListExecutions(&call, request, &page).ok()) break;
        for (const v1::Execution& execution : page.executions()) {
          if (execution.state() == v1::EXECUTION_SUCCEEDED) {
            done.insert(execution.name());
          } else if (failed != nullptr) {
            failed->insert(execution.name());
          }
        }
        request.set_page_token(page.next_page_token());
      } while (!request.page_token().empty());
    }
    return done;
  }

  // Waits (generously) until every one of `names` succeeded.
  void AwaitAllSucceeded(const std::vector<std::string>& names,
                         absl::Duration timeout = absl::Seconds(45)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::set<std::string> done;
    std::set<std::string> failed;
    while (absl::Now() < deadline) {
      done = Succeeded(&failed);
      ASSERT_TRUE(failed.empty()) << failed.size() << " execution(s) failed, e.g. "
                                  << *failed.begin();
      size_t missing = 0;
      for (const std::string& name : names) missing += done.contains(name) ? 0 : 1;
      if (missing == 0) return;
      absl::SleepFor(absl::Milliseconds(300));
    }
    size_t missing = 0;
    std::string example;
    for (const std::string& name : names) {
      if (!done.contains(name)) {
        ++missing;
        example = name;
      }
    }
    ADD_FAILURE() << missing << " of " << names.size() << " executions never succeeded, e.g. "
                  << example << " (shard " << ShardOfExecution(example, kDefaultShardCount) << ")";
  }

  // From the store itself: per "execution/task", the success results
  // recorded; and per agent, the records naming it (leases and results).
  struct Stored {
    std::map<std::string, int> successes;
    std::map<std::string, int> by_agent;
  };
  Stored ReadStore() {
    pqxx::connection connection(dsn_);
    pqxx::read_transaction tx(connection);
    Stored stored;
    for (const pqxx::row& row : tx.exec("SELECT record FROM shard_records WHERE shard >= 0")) {
      const pqxx::binarystring bytes(row[0]);
      v1::StateRecord record;
      EXPECT_TRUE(record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
      if (record.has_task_result()) {
        const v1::TaskResult& result = record.task_result().result();
        stored.by_agent[record.task_result().agent_id()]++;
        if (result.outcome() == v1::ATTEMPT_SUCCEEDED) {
          stored.successes[absl::StrCat(result.ref().execution(), "/", result.ref().task_id())]++;
        }
      } else if (record.has_task_leased()) {
        stored.by_agent[record.task_leased().agent_id()]++;
      }
    }
    return stored;
  }

  // Records naming an agent whose id starts with `name` (gyre-agent adds a
  // suffix to its name).
  int RecordsNaming(const std::string& name) {
    int total = 0;
    for (const auto& [agent, count] : ReadStore().by_agent) {
      if (absl::StartsWith(agent, name)) total += count;
    }
    return total;
  }

  // Every execution of `names` has its one task's success recorded exactly
  // once in the store. A success is seen (listed) as soon as it is applied,
  // a moment before its record commits: missing ones are read again for a
  // while; one recorded twice fails at once.
  void ExpectEachSuccessRecordedOnce(const std::vector<std::string>& names) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      const Stored stored = ReadStore();
      int doubled = 0;
      int missing = 0;
      std::string example;
      for (const std::string& name : names) {
        // A ref names its execution by id or by name: either counts.
        const std::string id(name.substr(name.find('/') + 1));
        int count = 0;
        for (const std::string& key : {id + "/t", name + "/t"}) {
          auto it = stored.successes.find(key);
          if (it != stored.successes.end()) count += it->second;
        }
        if (count > 1 && ++doubled <= 5) {
          ADD_FAILURE() << name << ": its success is recorded " << count << " times";
        }
        if (count == 0) {
          ++missing;
          example = name;
        }
      }
      EXPECT_EQ(doubled, 0) << "executions whose success is recorded more than once";
      if (missing == 0 || absl::Now() > deadline) {
        EXPECT_EQ(missing, 0) << "executions whose success is not in the store, e.g. " << example;
        return;
      }
      if (doubled > 0) return;
      absl::SleepFor(absl::Milliseconds(200));
    }
  }

  // The lease-ttl-bound a takeover is expected within, for the log.
  static absl::Duration Ttl() { return absl::Milliseconds(1500); }

  gyre::testing::ScratchDir scratch_{"gyre_sharded"};
  std::string root_ = scratch_.path();
  std::string dsn_;
  std::vector<std::unique_ptr<Orchestrator>> orchestrators_;
};

// (a) Two orchestrators share 1,000 no-op executions: each starts on the
// one asked (its id drawn in an owned shard), both get some, every one
// completes and each success is recorded once; asking the wrong one names
// the owner.
TEST_F(ShardedOrchestratorsTest, TwoOrchestratorsShareAThousandExecutions) {
  StartOrchestrator("orch-a");
  StartOrchestrator("orch-b");
  AwaitBalanced({"orch-a", "orch-b"});
  // The engines hold what the leases say (the gauge follows the adoptions),
  // and orch-a handed half of its shards to orch-b.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && (Metric(*Find("orch-a"), "orchestrator_shards_owned") != 128 ||
                                    Metric(*Find("orch-b"), "orchestrator_shards_owned") != 128)) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Metric(*Find("orch-a"), "orchestrator_shards_owned"), 128);
  EXPECT_EQ(Metric(*Find("orch-b"), "orchestrator_shards_owned"), 128);
  EXPECT_EQ(Metric(*Find("orch-a"), "orchestrator_shard_handovers_total{kind=\"released\"}"), 128);
  EXPECT_EQ(Metric(*Find("orch-b"), "orchestrator_shard_handovers_total{kind=\"adopted\"}"), 128);
  std::map<std::string, int> started_on;
  const std::vector<std::string> names = StartExecutions(1000, "    builtin: noop\n", &started_on);
  ASSERT_EQ(names.size(), 1000u);
  EXPECT_GT(started_on["orch-a"], 300);
  EXPECT_GT(started_on["orch-b"], 300);
  AwaitAllSucceeded(names);
  ExpectEachSuccessRecordedOnce(names);

  // Asked of the orchestrator that does not own it, an execution is
  // answered by its owner (the call is forwarded): clients need not know
  // who owns what.
  const std::string& name = names.front();
  const std::string owner = Owners()[ShardOfExecution(name, kDefaultShardCount)];
  Orchestrator* other = Find(owner == "orch-a" ? "orch-b" : "orch-a");
  ASSERT_NE(other, nullptr);
  grpc::ClientContext call;
  v1::GetExecutionRequest request;
  request.set_name(name);
  v1::Execution execution;
  const grpc::Status status = other->stub->GetExecution(&call, request, &execution);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(execution.name(), name);
  EXPECT_EQ(execution.state(), v1::EXECUTION_SUCCEEDED);
  // ListExecutions through either lists both orchestrators' executions,
  // each once, across pages.
  std::set<std::string> listed;
  std::string page_token;
  for (int page = 0; page < 100; ++page) {
    grpc::ClientContext list_call;
    v1::ListExecutionsRequest list;
    list.set_page_size(400);
    list.set_page_token(page_token);
    v1::ListExecutionsResponse response;
    const grpc::Status list_status = other->stub->ListExecutions(&list_call, list, &response);
    ASSERT_TRUE(list_status.ok()) << list_status.error_message();
    EXPECT_EQ(response.unavailable_members_size(), 0);
    for (const v1::Execution& listed_execution : response.executions()) {
      EXPECT_TRUE(listed.insert(listed_execution.name()).second)
          << listed_execution.name() << " listed twice";
    }
    page_token = response.next_page_token();
    if (page_token.empty()) break;
  }
  EXPECT_EQ(listed, std::set<std::string>(names.begin(), names.end()));
}

// Desired workers with several orchestrators (issue 21): executions whose one
// task waits on a queue no agent serves, spread over two orchestrators that
// each own part of them. Each exports the cluster's desired workers
// (factor 1: one per task), not its own part's: its backlog plus the
// other's, exchanged with the lease heartbeats; ListQueues shows the
// cluster's depth. With one SIGKILLed, the survivor adopts its shards and
// its tasks, and still exports the same figure.
TEST_F(ShardedOrchestratorsTest, EveryOrchestratorExportsTheClustersDesiredWorkers) {
  const std::vector<std::string> pools = {
      "GYRE_WORKER_POOLS={batch: {min: 0, max: 1000, factor: 1}}"};
  StartOrchestrator("orch-a", "0", 0, "", pools);
  StartOrchestrator("orch-b", "0", 0, "", pools);
  AwaitBalanced({"orch-a", "orch-b"});
  constexpr int kExecutions = 40;
  std::map<std::string, int> owned =
      StartAndCountOwned(kExecutions, "    queue: batch\n    builtin: noop\n");
  ASSERT_EQ(owned["orch-a"] + owned["orch-b"], kExecutions);
  ASSERT_GT(owned["orch-a"], 0) << "orch-a owns none of the executions";
  ASSERT_GT(owned["orch-b"], 0) << "orch-b owns none of the executions";
  std::cout << "executions owned: orch-a " << owned["orch-a"] << ", orch-b " << owned["orch-b"]
            << "\n";

  const std::string desired = "orchestrator_desired_workers{worker_type=\"batch\"}";
  const std::string depth = "gyre_queue_depth{worker_type=\"batch\"}";
  for (const char* id : {"orch-a", "orch-b"}) {
    const Orchestrator& orchestrator = *Find(id);
    // Its own tasks alone in its depth (dashboards sum it over replicas)...
    EXPECT_EQ(AwaitMetric(orchestrator, depth, owned[id]), owned[id]) << id;
    // ...the cluster's in its desired workers.
    EXPECT_EQ(AwaitMetric(orchestrator, desired, kExecutions), kExecutions) << id;
    const v1::QueueInfo listed = ListedQueue(orchestrator, "batch");
    EXPECT_EQ(listed.depth(), kExecutions) << id;
    EXPECT_EQ(listed.running(), 0) << id;
    EXPECT_EQ(listed.desired_workers(), kExecutions) << id;
  }

  Orchestrator* victim = Find("orch-b");
  victim->process->Signal(SIGKILL);
  victim->alive = false;
  EXPECT_TRUE(victim->process->WaitForExit(absl::Seconds(10)).has_value());
  victim->agent->Signal(SIGKILL);
  AwaitBalanced({"orch-a"});
  const Orchestrator& survivor = *Find("orch-a");
  EXPECT_EQ(AwaitMetric(survivor, depth, kExecutions), kExecutions)
      << "orch-a adopted orch-b's queued tasks";
  EXPECT_EQ(AwaitMetric(survivor, desired, kExecutions), kExecutions);
  EXPECT_EQ(ListedQueue(survivor, "batch").desired_workers(), kExecutions);
}

// With a predictor, each orchestrator forecasts its own executions' load and
// exports the sum of the live members' forecasts: every replica's
// orchestrator_forecast_workers covers the whole cluster's pending work, as
// its orchestrator_desired_workers does. Alone, each would forecast about
// its own share (the smaller share here: at most 20 sleeps, about 24 workers
// with the recent arrivals), under the 40 pending.
TEST_F(ShardedOrchestratorsTest, EveryOrchestratorForecastsTheClustersWorkers) {
  auto predictor =
      ChildProcess::Start({Binary("services/predictor/gyre-predictor"),
                           "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                           "--shutdown_grace=2s", "--data_dir=" + root_ + "/predictor"});
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  auto serving = (*predictor)->WaitForLine(IsServing, absl::Seconds(20));
  ASSERT_TRUE(serving.ok()) << serving.status() << (*predictor)->Output();
  const std::vector<std::string> env = {
      "GYRE_WORKER_POOLS={batch: {min: 0, max: 1000, factor: 1}}",
      absl::StrCat("GYRE_PREDICTOR_ADDRESS=127.0.0.1:",
                   testing::JsonIntField(*serving, "grpc_port").value_or(0)),
      "GYRE_FORECAST_INTERVAL=1s"};
  StartOrchestrator("orch-a", "0", 0, "", env);
  StartOrchestrator("orch-b", "0", 0, "", env);
  AwaitBalanced({"orch-a", "orch-b"});
  constexpr int kExecutions = 40;
  // No agent serves "batch": every task stays pending.
  std::map<std::string, int> owned =
      StartAndCountOwned(kExecutions, "    queue: batch\n    builtin: sleep\n    duration: 120s\n");
  ASSERT_EQ(owned["orch-a"] + owned["orch-b"], kExecutions);
  ASSERT_GT(owned["orch-a"], 0) << "orch-a owns none of the executions";
  ASSERT_GT(owned["orch-b"], 0) << "orch-b owns none of the executions";

  for (const char* horizon : {"60s", "300s"}) {
    const std::string forecast = absl::StrCat("orchestrator_forecast_workers{horizon=\"", horizon,
                                              "\",worker_type=\"batch\"}");
    for (const char* id : {"orch-a", "orch-b"}) {
      const absl::Time deadline = absl::Now() + absl::Seconds(20);
      double value = Metric(*Find(id), forecast);
      while (value < kExecutions && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(100));
        value = Metric(*Find(id), forecast);
      }
      EXPECT_GE(value, kExecutions) << id << " (owns " << owned[id] << "), horizon " << horizon;
    }
  }
}

// (b) Three orchestrators; one is SIGKILLed mid-run: the two others take its
// shards over within about the ttl, and every execution completes with its
// success recorded once (its agent's leased attempts are lost and retried
// on the survivors' agents).
TEST_F(ShardedOrchestratorsTest, AKilledOrchestratorsShardsAreTakenOverAndNothingIsDoubled) {
  StartOrchestrator("orch-a");
  StartOrchestrator("orch-b");
  StartOrchestrator("orch-c");
  AwaitBalanced({"orch-a", "orch-b", "orch-c"});
  const std::vector<std::string> names =
      StartExecutions(450, "    builtin: sleep\n    duration: 100ms\n");
  ASSERT_EQ(names.size(), 450u);
  // Mid-run: some done, most not.
  absl::SleepFor(absl::Milliseconds(500));
  Orchestrator* victim = Find("orch-c");
  victim->process->Signal(SIGKILL);
  victim->alive = false;
  EXPECT_TRUE(victim->process->WaitForExit(absl::Seconds(10)).has_value());
  victim->agent->Signal(SIGKILL);  // the pod goes as a whole
  const absl::Duration takeover = AwaitBalanced({"orch-a", "orch-b"});
  std::cout << "takeover after SIGKILL: " << absl::FormatDuration(takeover) << " (lease ttl "
            << kTtl << ")\n";
  AwaitAllSucceeded(names);
  ExpectEachSuccessRecordedOnce(names);
}

// (b') As (b) with per-shard snapshots (5 records per shard: 1280 over the
// 256 shards): the survivors adopt the dead one's shards from their
// snapshots plus the records after them, and each task has one successful
// attempt (read through the API: snapshots delete the records they cover).
TEST_F(ShardedOrchestratorsTest, AKilledOrchestratorsShardsAreAdoptedFromTheirSnapshots) {
  for (const char* id : {"orch-a", "orch-b", "orch-c"}) StartOrchestrator(id, "1280");
  AwaitBalanced({"orch-a", "orch-b", "orch-c"});
  const std::vector<std::string> names =
      StartExecutions(450, "    builtin: sleep\n    duration: 100ms\n");
  ASSERT_EQ(names.size(), 450u);
  // Until some of orch-c's shards have a snapshot (written each poll for
  // shards 5 records past their last): those are adopted from it.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  int64_t snapshotted = 0;
  while (snapshotted == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    pqxx::connection connection(dsn_);
    pqxx::read_transaction tx(connection);
    snapshotted = tx.exec1(
                        "SELECT count(DISTINCT s.shard) FROM shard_snapshots s "
                        "JOIN shard_leases l ON l.shard = s.shard WHERE l.owner = 'orch-c'")[0]
                      .as<int64_t>();
  }
  ASSERT_GT(snapshotted, 0) << "orch-c wrote no shard snapshot";
  Orchestrator* victim = Find("orch-c");
  victim->process->Signal(SIGKILL);
  victim->alive = false;
  EXPECT_TRUE(victim->process->WaitForExit(absl::Seconds(10)).has_value());
  victim->agent->Signal(SIGKILL);
  AwaitBalanced({"orch-a", "orch-b"});
  AwaitAllSucceeded(names);
  std::cout << "orch-c's shards adopted from a snapshot: " << snapshotted << "\n";
  int wrong = 0;
  for (const std::string& name : names) {
    std::optional<v1::TaskRun> run;
    for (auto& orchestrator : orchestrators_) {
      if (!orchestrator->alive) continue;
      grpc::ClientContext call;
      v1::GetTaskRunRequest request;
      request.set_name(name + "/tasks/t");
      v1::TaskRun got;
      if (orchestrator->stub->GetTaskRun(&call, request, &got).ok()) run = got;
    }
    int succeeded = 0;
    if (run.has_value()) {
      for (const v1::TaskAttempt& attempt : run->attempts()) {
        succeeded += attempt.outcome() == v1::ATTEMPT_SUCCEEDED ? 1 : 0;
      }
    }
    if (succeeded != 1 && ++wrong <= 5) {
      ADD_FAILURE() << name << ": " << succeeded << " successful attempt(s)"
                    << (run.has_value() ? "" : " (no orchestrator has it)");
    }
  }
  EXPECT_EQ(wrong, 0);
}

// An orchestrator shut down gracefully (SIGTERM) first makes its shards'
// records durable, then frees its leases and leaves the member list: the
// other takes the shards at its next round, without waiting for the ttl,
// and everything completes with each success recorded once.
TEST_F(ShardedOrchestratorsTest, AnOrchestratorLeavingGracefullyHandsItsShardsOver) {
  StartOrchestrator("orch-a");
  StartOrchestrator("orch-b");
  AwaitBalanced({"orch-a", "orch-b"});
  const std::vector<std::string> names =
      StartExecutions(200, "    builtin: sleep\n    duration: 100ms\n");
  ASSERT_EQ(names.size(), 200u);
  Orchestrator* leaving = Find("orch-b");
  leaving->process->Signal(SIGTERM);
  leaving->alive = false;
  EXPECT_TRUE(leaving->process
                  ->WaitForLine(
                      [](const std::string& line) {
                        return absl::StrContains(line, "left the orchestrators sharing");
                      },
                      absl::Seconds(20))
                  .ok());
  EXPECT_EQ(leaving->process->WaitForExit(absl::Seconds(20)), 0);
  leaving->agent->Signal(SIGKILL);
  {
    pqxx::connection connection(dsn_);
    pqxx::read_transaction tx(connection);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM orchestrators WHERE id = 'orch-b'")[0].as<int64_t>(),
              0);
  }
  const absl::Duration takeover = AwaitBalanced({"orch-a"});
  std::cout << "takeover after a graceful leave: " << absl::FormatDuration(takeover) << "\n";
  AwaitAllSucceeded(names);
  ExpectEachSuccessRecordedOnce(names);
}

// (c) An orchestrator stopped (SIGSTOP) past its lease: the other takes its
// shards; continued (SIGCONT), it finds its leases lapsed and writes nothing
// (a write it tries is refused by fencing), and everything completes on the
// other with each success recorded once.
TEST_F(ShardedOrchestratorsTest, AnOrchestratorStoppedPastItsLeaseWritesNothingOnceContinued) {
  StartOrchestrator("orch-a");
  StartOrchestrator("orch-b");
  AwaitBalanced({"orch-a", "orch-b"});
  const std::vector<std::string> names =
      StartExecutions(300, "    builtin: sleep\n    duration: 100ms\n");
  ASSERT_EQ(names.size(), 300u);
  absl::SleepFor(absl::Milliseconds(300));
  Orchestrator* stopped = Find("orch-b");
  stopped->process->Signal(SIGSTOP);
  stopped->alive = false;  // not asked while stopped
  const absl::Duration takeover = AwaitBalanced({"orch-a"});
  std::cout << "takeover after SIGSTOP: " << absl::FormatDuration(takeover) << "\n";
  // Its agent kept running its attempts and sending their results to it
  // (they wait in its socket). The records naming that agent (its leases
  // and results) were all written by orch-b, the only one it talks to.
  const int before = RecordsNaming(stopped->agent_id);
  EXPECT_GT(before, 0) << "orch-b's agent ran nothing before the stop";
  stopped->process->Signal(SIGCONT);
  // It wakes up to leases it no longer holds, and to its agent's results.
  EXPECT_TRUE(stopped->process
                  ->WaitForLine(
                      [](const std::string& line) {
                        return absl::StrContains(line, "shard leases lapsed without renewal") ||
                               absl::StrContains(line, "is no longer this orchestrator's lease");
                      },
                      absl::Seconds(20))
                  .ok())
      << stopped->process->Output();
  // Give whatever it does next (apply its agent's results, try to append
  // them) time to reach the store, while it could not yet have rejoined
  // (that takes the other's hand-over: rounds of ttl/3 each).
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(RecordsNaming(stopped->agent_id), before)
      << "the orchestrator whose leases lapsed wrote records after it was continued";
  // It is not let back in: a hand-over to it would move shards under
  // today's agents, which send a refused result only to the orchestrator
  // they know (ShardMovedWhileRunning covers moves).
  stopped->process->Signal(SIGKILL);
  stopped->agent->Signal(SIGKILL);
  AwaitAllSucceeded(names);
  ExpectEachSuccessRecordedOnce(names);
}

// (d) A third orchestrator joins mid-run: the two others hand shards over
// to it while their executions run (each released shard's records durable
// before its lease goes, then replayed by the new owner), and nothing is
// lost or doubled. Every agent lists all three orchestrators (ports chosen
// before they start; the third is connected once it runs), so a result the
// old owner refuses as moved is re-sent to the new one.
TEST_F(ShardedOrchestratorsTest, ShardsMovedWhileTheirExecutionsRunLoseAndDoubleNothing) {
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int> port = testing::FreePort();
    ASSERT_TRUE(port.ok()) << port.status();
    ports.push_back(*port);
  }
  const std::string all =
      absl::StrCat("127.0.0.1:", ports[0], ",127.0.0.1:", ports[1], ",127.0.0.1:", ports[2]);
  StartOrchestrator("orch-a", "0", ports[0], all);
  StartOrchestrator("orch-b", "0", ports[1], all);
  AwaitBalanced({"orch-a", "orch-b"});
  // About 5 s of work for the two agents (8 slots each).
  const std::vector<std::string> names =
      StartExecutions(400, "    builtin: sleep\n    duration: 200ms\n");
  ASSERT_EQ(names.size(), 400u);
  StartOrchestrator("orch-c", "0", ports[2], all);
  AwaitBalanced({"orch-a", "orch-b", "orch-c"});
  // The moves happened mid-run, and took executions with them.
  const size_t done_at_move = Succeeded().size();
  EXPECT_LT(done_at_move, names.size()) << "the run was over before the shards moved";
  const std::map<uint32_t, std::string> owners = Owners();
  int moved = 0;
  for (const std::string& name : names) {
    moved += owners.at(ShardOfExecution(name, kDefaultShardCount)) == "orch-c" ? 1 : 0;
  }
  EXPECT_GT(moved, 0) << "no execution was in a shard that moved";
  std::cout << "executions in moved shards: " << moved << ", done when they moved: " << done_at_move
            << " of " << names.size() << "\n";
  AwaitAllSucceeded(names);
  ExpectEachSuccessRecordedOnce(names);
}

// The relational projection sharded (issue 21): two orchestrators with it
// on (and a shard snapshot every poll, which keeps the records the
// projection has not read) each project the shards they own and the
// definitions into one set of tables: every execution SUCCEEDED there, one
// SUCCEEDED run and one result event per task, and both report no lag.
TEST_F(ShardedOrchestratorsTest, EachProjectsItsShardsIntoTheRelationalTables) {
  const std::vector<std::string> projection = {"GYRE_POSTGRES_PROJECTION=true"};
  StartOrchestrator("orch-a", "256", 0, "", projection);
  StartOrchestrator("orch-b", "256", 0, "", projection);
  AwaitBalanced({"orch-a", "orch-b"});
  std::map<std::string, int> started_on;
  const std::vector<std::string> names = StartExecutions(40, "    builtin: noop\n", &started_on);
  ASSERT_EQ(names.size(), 40u);
  EXPECT_GT(started_on["orch-a"], 0);
  EXPECT_GT(started_on["orch-b"], 0);
  AwaitAllSucceeded(names);

  std::string ids;  // a SQL array literal of the executions' bare ids
  for (const std::string& name : names) {
    absl::StrAppend(&ids, ids.empty() ? "{" : ",", name.substr(name.find('/') + 1));
  }
  ids += "}";
  struct Tables {
    int64_t succeeded = 0;  // executions SUCCEEDED
    int64_t runs = 0;       // SUCCEEDED task runs
    int64_t tasks = 0;      // tasks with exactly one SUCCEEDED run
    int64_t results = 0;    // task_result events
  };
  auto read = [&] {
    pqxx::connection connection(dsn_);
    pqxx::read_transaction tx(connection);
    Tables tables;
    tables.succeeded = tx.exec_params1(
                             "SELECT count(*) FROM executions "
                             "WHERE state = 'SUCCEEDED' AND id = ANY($1::text[])",
                             ids)[0]
                           .as<int64_t>();
    tables.runs = tx.exec_params1(
                        "SELECT count(*) FROM task_runs "
                        "WHERE state = 'SUCCEEDED' AND execution_id = ANY($1::text[])",
                        ids)[0]
                      .as<int64_t>();
    tables.tasks = tx.exec_params1(
                         "SELECT count(*) FROM (SELECT 1 FROM task_runs "
                         "WHERE execution_id = ANY($1::text[]) GROUP BY execution_id, task_id "
                         "HAVING count(*) FILTER (WHERE state = 'SUCCEEDED') = 1) t",
                         ids)[0]
                       .as<int64_t>();
    tables.results = tx.exec_params1(
                           "SELECT count(*) FROM events "
                           "WHERE kind = 'task_result' AND execution_id = ANY($1::text[])",
                           ids)[0]
                         .as<int64_t>();
    return tables;
  };
  // Eventually consistent: the projection follows within a few polls.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  Tables tables = read();
  while (tables.succeeded < 40 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    tables = read();
  }
  EXPECT_EQ(AwaitMetric(*Find("orch-a"), "gyre_projection_lag_records", 0), 0);
  EXPECT_EQ(AwaitMetric(*Find("orch-b"), "gyre_projection_lag_records", 0), 0);
  tables = read();
  EXPECT_EQ(tables.succeeded, 40) << "executions SUCCEEDED in `executions`";
  EXPECT_EQ(tables.runs, 40) << "SUCCEEDED rows in `task_runs`, one per task";
  EXPECT_EQ(tables.tasks, 40) << "tasks with exactly one SUCCEEDED run";
  EXPECT_EQ(tables.results, 40) << "task_result events: none lost to a snapshot, none doubled";
  // A cursor per shard with records, not one for everything.
  pqxx::connection connection(dsn_);
  pqxx::read_transaction tx(connection);
  EXPECT_GT(
      tx.exec1("SELECT count(*) FROM projection_cursor WHERE name LIKE 'shard:%'")[0].as<int64_t>(),
      1);
}

}  // namespace
}  // namespace gyre::e2e
