#include "services/orchestrator/global_task_table.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

using Waiters = std::vector<std::pair<uint32_t, uint32_t>>;

TEST(GlobalTaskTableTest, TheFirstRunOwnsTheIdentityOthersWaitAndLaterOnesAreSatisfied) {
  GlobalTaskTable globals;
  const GlobalTask* global = nullptr;
  EXPECT_EQ(globals.Claim("id", "executions/e1/tasks/t", 0, 3, &global),
            GlobalTaskTable::Verdict::kRun);
  EXPECT_EQ(global->owner, "executions/e1/tasks/t");
  // The owner asking again (a retry) still runs it.
  EXPECT_EQ(globals.Claim("id", "executions/e1/tasks/t", 0, 3, &global),
            GlobalTaskTable::Verdict::kRun);
  EXPECT_EQ(globals.Claim("id", "executions/e2/tasks/t", 1, 3, &global),
            GlobalTaskTable::Verdict::kWait);
  EXPECT_EQ(globals.Claim("id", "executions/e3/tasks/u", 2, 0, &global),
            GlobalTaskTable::Verdict::kWait);
  EXPECT_EQ(global->waiters, (Waiters{{1, 3}, {2, 0}}));
  // Another identity is unaffected.
  EXPECT_EQ(globals.Claim("other", "executions/e2/tasks/t", 1, 4, &global),
            GlobalTaskTable::Verdict::kRun);

  // The owner succeeds: its waiters are handed over once, with its outputs kept.
  Waiters woken = globals.Settle("id", "executions/e1/tasks/t", true, {{"K", "v"}});
  EXPECT_EQ(woken, (Waiters{{1, 3}, {2, 0}}));
  EXPECT_TRUE(globals.all().at("id").waiters.empty());
  EXPECT_EQ(globals.Claim("id", "executions/e4/tasks/t", 3, 3, &global),
            GlobalTaskTable::Verdict::kSatisfied);
  EXPECT_EQ(global->owner, "executions/e1/tasks/t");
  EXPECT_EQ(global->outputs, (std::map<std::string, std::string>{{"K", "v"}}));
}

TEST(GlobalTaskTableTest, OnlyTheOwnerSettlesAndAFailureHandsTheIdentityOn) {
  GlobalTaskTable globals;
  const GlobalTask* global = nullptr;
  globals.Claim("id", "executions/e1/tasks/t", 0, 0, &global);
  globals.Claim("id", "executions/e2/tasks/t", 1, 0, &global);
  globals.Claim("id", "executions/e3/tasks/t", 2, 0, &global);

  // A run that does not own the identity changes nothing.
  EXPECT_TRUE(globals.Settle("id", "executions/e2/tasks/t", true, {}).empty());
  EXPECT_TRUE(globals.Settle("unknown", "executions/e1/tasks/t", true, {}).empty());
  EXPECT_EQ(globals.all().at("id").waiters.size(), 2u);

  // The owner fails: the waiters are woken and the first to claim runs it.
  Waiters woken = globals.Settle("id", "executions/e1/tasks/t", false, {});
  EXPECT_EQ(woken, (Waiters{{1, 0}, {2, 0}}));
  EXPECT_FALSE(globals.all().contains("id"));
  EXPECT_EQ(globals.Claim("id", "executions/e2/tasks/t", 1, 0, &global),
            GlobalTaskTable::Verdict::kRun);
  EXPECT_EQ(globals.Claim("id", "executions/e3/tasks/t", 2, 0, &global),
            GlobalTaskTable::Verdict::kWait);
  EXPECT_EQ(global->owner, "executions/e2/tasks/t");
  EXPECT_FALSE(global->succeeded);
}

}  // namespace
}  // namespace gyre::orchestrator
