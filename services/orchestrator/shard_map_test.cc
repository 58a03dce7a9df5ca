#include "services/orchestrator/shard_map.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

TEST(ShardMapTest, AnExecutionsShardIsStableAndTheSameForItsResourceName) {
  // Pinned values: every orchestrator and every version must agree, so a
  // change of hash is a change of where executions live (a migration).
  EXPECT_EQ(ShardOfExecution("", 256), 0xcbf29ce484222325ull % 256);
  EXPECT_EQ(ShardOfExecution("a", 256), 0xaf63dc4c8601ec8cull % 256);
  EXPECT_EQ(ShardOfExecution("executions/e-42", 256), ShardOfExecution("e-42", 256));
  EXPECT_EQ(ShardOfExecution("e-42", 1), 0u);
}

TEST(ShardMapTest, ExecutionsSpreadOverEveryShard) {
  std::vector<int> count(256);
  for (int i = 0; i < 25600; ++i) ++count[ShardOfExecution(absl::StrCat("e-", i), 256)];
  for (int shard = 0; shard < 256; ++shard) {
    EXPECT_GT(count[shard], 40) << shard;  // 100 expected
    EXPECT_LT(count[shard], 180) << shard;
  }
}

TEST(ShardMapTest, EveryRecordKindButDefinitionsNamesItsExecutionsShard) {
  const uint32_t shard = ShardOfExecution("e-7", 256);
  std::vector<v1::StateRecord> records(11);
  records[0].mutable_execution_started()->set_execution_id("e-7");
  records[1].mutable_task_leased()->set_execution_id("e-7");
  records[2].mutable_task_result()->mutable_result()->mutable_ref()->set_execution(
      "executions/e-7");
  records[3].mutable_execution_control()->set_execution_id("e-7");
  records[4].mutable_attempt_started()->set_execution_id("e-7");
  records[5].mutable_attempt_lost()->set_execution_id("e-7");
  records[6].mutable_task_retry_due()->set_execution_id("e-7");
  records[7].mutable_attempt_not_started()->set_execution_id("e-7");
  records[8].mutable_priority_changed()->set_execution_id("e-7");
  records[9].mutable_executions_expired()->add_execution_ids("e-7");
  records[10].mutable_task_logs_expired()->add_execution_ids("e-7");
  std::set<int> kinds;
  for (const v1::StateRecord& record : records) {
    kinds.insert(record.kind_case());
    EXPECT_EQ(ShardOfRecord(record, 256), shard) << record.ShortDebugString();
    // One execution's records name it bare; the expiries name several.
    const bool several = record.has_executions_expired() || record.has_task_logs_expired();
    EXPECT_EQ(ExecutionOfRecord(record), several ? "" : "e-7") << record.ShortDebugString();
  }
  v1::StateRecord stored;
  stored.mutable_workflow_stored();
  v1::StateRecord deleted;
  deleted.mutable_workflow_deleted()->set_name("workflows/w");
  EXPECT_EQ(ShardOfRecord(stored, 256), std::nullopt);
  EXPECT_EQ(ShardOfRecord(deleted, 256), std::nullopt);
  EXPECT_EQ(ExecutionOfRecord(stored), "");
  EXPECT_EQ(ExecutionOfRecord(deleted), "");
  // A new record kind must be given a shard here (this fails until it is).
  EXPECT_EQ(kinds.size() + 2,
            static_cast<size_t>(
                v1::StateRecord::GetDescriptor()->FindOneofByName("kind")->field_count()));
}

}  // namespace
}  // namespace gyre::orchestrator
