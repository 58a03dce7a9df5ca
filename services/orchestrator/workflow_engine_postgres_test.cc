// The engine on the PostgreSQL store (a real PostgreSQL 15 the test starts):
// what one change of the engine costs in commits. A single task's latency is
// its sequential commits (docs/architecture.md, "Storage"), so a submission
// and the lease dispatch gives it must not be split over two.

#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/fake_agent_channel.h"
#include "services/orchestrator/testing/postgres_test_server.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Credit;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::ResultMessage;
using ::gyre::orchestrator::testing::ScratchDatabase;
using ::gyre::orchestrator::testing::StartRequest;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

// Transactions that wrote the records (rows one transaction wrote carry its
// id, xmin), and the records.
std::pair<int64_t, int64_t> TransactionsAndRecords(const std::string& dsn) {
  pqxx::connection connection(dsn);
  pqxx::nontransaction tx(connection);
  const pqxx::row row = tx.exec1("SELECT count(DISTINCT xmin::text), count(*) FROM state_records");
  return {row[0].as<int64_t>(), row[1].as<int64_t>()};
}

TEST(WorkflowEnginePostgresTest, ASubmissionAndTheLeaseItGetsAreOneCommit) {
  ScratchDatabase database;
  std::unique_ptr<StateStore> store = NewPostgresStateStore(database.options());
  WorkflowEngine::Options options;
  options.store = store.get();
  options.snapshot_every_records = 0;
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  auto channel = std::make_shared<RecordingChannel>();
  constexpr int kExecutions = 20;
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", kExecutions), channel).ok());
  for (int i = 0; i < kExecutions; ++i) {
    ASSERT_TRUE(engine.StartExecution(StartRequest(Workflow({Task("t")}))).ok());
    // Leased at once (a free slot): the assignment goes out once the lease
    // is durable.
    ASSERT_EQ(channel->Take(1).size(), 1u) << "execution " << i << " was not leased";
  }
  ASSERT_TRUE(engine.AwaitDurable().ok());
  const auto [transactions, records] = TransactionsAndRecords(database.dsn());
  EXPECT_EQ(records, 2 * kExecutions) << "a submission and a lease per execution";
  EXPECT_EQ(transactions, kExecutions)
      << "each submission must be committed together with its lease";
}

TEST(WorkflowEnginePostgresTest, AResultAndTheLeaseOfTheTaskItReleasesAreOneCommit) {
  ScratchDatabase database;
  std::unique_ptr<StateStore> store = NewPostgresStateStore(database.options());
  WorkflowEngine::Options options;
  options.store = store.get();
  options.snapshot_every_records = 0;
  WorkflowEngine engine(options);
  ASSERT_TRUE(engine.Recover().ok());
  auto channel = std::make_shared<RecordingChannel>();
  constexpr int kLayers = 10;
  // One slot, and credit for every task up front: a result frees the slot
  // and the next lease needs no more credit.
  ASSERT_TRUE(engine.RegisterAgent(Registration("a1", 1), channel).ok());
  ASSERT_TRUE(engine.HandleAgentMessage("a1", Credit(kLayers)).ok());
  std::vector<v1::TaskSpec> chain = {Task("t0")};
  for (int i = 1; i < kLayers; ++i) {
    chain.push_back(Task("t" + std::to_string(i), {chain.back().id()}));
  }
  ASSERT_TRUE(engine.StartExecution(StartRequest(Workflow(chain))).ok());
  uint64_t sequence = 0;
  for (int i = 0; i < kLayers; ++i) {
    std::vector<v1::TaskAssignment> assigned = channel->Take(1);
    ASSERT_EQ(assigned.size(), 1u) << "task t" << i << " was not leased";
    // The result frees the slot and makes the next task ready: its lease
    // rides with the result.
    v1::AgentMessage result = ResultMessage(assigned[0].ref(), ++sequence);
    ASSERT_TRUE(engine.HandleAgentMessage("a1", result).ok());
  }
  ASSERT_TRUE(engine.AwaitDurable().ok());
  const auto [transactions, records] = TransactionsAndRecords(database.dsn());
  EXPECT_EQ(records, 1 + 2 * kLayers) << "the submission, then a lease and a result per task";
  EXPECT_EQ(transactions, 1 + kLayers)
      << "the submission with the first lease, each result with the next lease, the last alone";
}

}  // namespace
}  // namespace gyre::orchestrator
