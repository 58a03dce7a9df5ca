#include "services/orchestrator/queue_table.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/orchestrator/engine_metrics.h"

namespace gyre::orchestrator {
namespace {

TEST(QueueTableTest, ANameKeepsItsIndexAndAForgottenOnesIndexIsReused) {
  EngineMetrics metrics(nullptr);
  QueueTable queues(metrics);
  const uint32_t a = queues.IndexOf("a");
  const uint32_t b = queues.IndexOf("b");
  EXPECT_NE(a, b);
  EXPECT_EQ(queues.IndexOf("a"), a);
  EXPECT_EQ(queues.at(b).name, "b");
  EXPECT_EQ(queues.size(), 2u);

  // Served by one agent, then by none: nobody uses "a" any more.
  queues.at(a).agents = 1;
  queues.Unserve(a);
  EXPECT_EQ(queues.size(), 1u);
  EXPECT_EQ(queues.all()[a], nullptr);
  // The next new name takes the freed index; "a" comes back as new.
  const uint32_t c = queues.IndexOf("c");
  EXPECT_EQ(c, a);
  EXPECT_EQ(queues.at(c).name, "c");
  EXPECT_EQ(queues.at(c).agents, 0);
  EXPECT_NE(queues.IndexOf("a"), c);
  EXPECT_EQ(queues.size(), 3u);
}

TEST(QueueTableTest, AQueueSomethingStillUsesIsNotForgotten) {
  EngineMetrics metrics(nullptr);
  QueueTable queues(metrics);
  const uint32_t named = queues.IndexOf("named");
  queues.at(named).agents = 1;
  queues.at(named).named_by_task = true;  // an execution's task refers to it
  queues.Unserve(named);
  const uint32_t busy = queues.IndexOf("busy");
  queues.at(busy).agents = 1;
  queues.at(busy).queued = 3;  // tasks wait in it
  queues.Unserve(busy);
  const uint32_t shared = queues.IndexOf("shared");
  queues.at(shared).agents = 2;  // another agent still serves it
  queues.Unserve(shared);

  EXPECT_EQ(queues.size(), 3u);
  EXPECT_EQ(queues.IndexOf("named"), named);
  EXPECT_EQ(queues.IndexOf("busy"), busy);
  EXPECT_EQ(queues.IndexOf("shared"), shared);
  EXPECT_EQ(queues.at(shared).agents, 1);
}

TEST(QueueTableTest, CheckRoomCountsOnlyNewDistinctNamesAgainstTheLimit) {
  EngineMetrics metrics(nullptr);
  QueueTable queues(metrics);
  for (size_t i = 0; i + 1 < QueueTable::kMaxQueues; ++i) queues.IndexOf(absl::StrCat("q", i));
  ASSERT_EQ(queues.size(), QueueTable::kMaxQueues - 1);

  const std::string known = "q0", fresh = "fresh", other = "other";
  // Known names and repeats cost nothing; one new name fits.
  std::vector<const std::string*> fits = {&known, &fresh, &fresh, &known};
  EXPECT_TRUE(queues.CheckRoom(fits, "test").ok());
  // Two new names would pass kMaxQueues.
  std::vector<const std::string*> over = {&fresh, &other};
  absl::Status status = queues.CheckRoom(over, "start execution");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_NE(status.message().find("start execution"), std::string::npos) << status;
  EXPECT_NE(status.message().find(absl::StrCat(QueueTable::kMaxQueues)), std::string::npos)
      << status;
  // CheckRoom made nothing known.
  EXPECT_EQ(queues.size(), QueueTable::kMaxQueues - 1);

  queues.IndexOf(fresh);  // the table is full
  std::vector<const std::string*> one_more = {&other};
  EXPECT_EQ(queues.CheckRoom(one_more, "register").code(), absl::StatusCode::kResourceExhausted);
  std::vector<const std::string*> known_only = {&fresh, &known};
  EXPECT_TRUE(queues.CheckRoom(known_only, "register").ok());
}

}  // namespace
}  // namespace gyre::orchestrator
