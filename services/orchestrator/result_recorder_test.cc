#include "services/orchestrator/result_recorder.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/orchestrator/memory_state_store.h"
#include "services/orchestrator/task_output.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_components.h"
#include "services/orchestrator/testing/fake_agent_channel.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::EngineComponents;
using ::gyre::orchestrator::testing::RecordingChannel;
using ::gyre::orchestrator::testing::Registration;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;
using ::gyre::orchestrator::testing::Writes;

v1::TaskResult Result(const v1::AttemptRef& ref, uint64_t sequence,
                      v1::AttemptOutcome outcome = v1::ATTEMPT_SUCCEEDED,
                      const std::string& output = "") {
  v1::TaskResult result;
  *result.mutable_ref() = ref;
  result.set_sequence(sequence);
  result.set_outcome(outcome);
  result.set_output_json(output);
  return result;
}

class ResultRecorderTest : public ::testing::Test {
 protected:
  ResultRecorderTest() : c_(Options(store_.get())) {
    channel_ = std::make_shared<RecordingChannel>();
    agent_ = c_.Connect(Registration("a1", 8), channel_);
  }
  static EngineComponents::Options Options(StateStore* store) {
    EngineComponents::Options options;
    options.store = store;
    return options;
  }

  // Applies `results` as one agent message of a1.
  void Record(const std::vector<v1::TaskResult>& results) {
    c_.Tick();
    std::vector<const v1::TaskResult*> pointers;
    std::vector<ParsedOutput> parsed;
    for (const v1::TaskResult& result : results) {
      pointers.push_back(&result);
      parsed.push_back(ParseTaskOutput(result.output_json()));
    }
    c_.results.RecordResults(*agent_, pointers, absl::MakeSpan(parsed), c_.out);
  }

  // The task results recorded so far, as a restart would read them.
  std::vector<v1::TaskResultRecorded> Recorded() {
    std::vector<v1::TaskResultRecorded> recorded;
    std::unique_ptr<StateStore> reader = NewMemoryStateStore(data_);
    EXPECT_TRUE(reader
                    ->Load([](v1::EngineSnapshot) { return absl::OkStatus(); },
                           [&](const v1::StateRecord& record) {
                             if (record.has_task_result()) recorded.push_back(record.task_result());
                             return absl::OkStatus();
                           })
                    .ok());
    return recorded;
  }

  std::shared_ptr<MemoryStateStoreData> data_ = NewMemoryStateStoreData();
  std::unique_ptr<StateStore> store_ = NewMemoryStateStore(data_);
  EngineComponents c_;
  std::shared_ptr<RecordingChannel> channel_;
  AgentEntry* agent_ = nullptr;
};

TEST_F(ResultRecorderTest, OnlyTheCurrentAttemptCountsOnceAndEveryResultIsAcknowledged) {
  ExecutionEntry& exec = c_.Start(Workflow({Writes(Task("t"), {"K"}), Task("u", {"t"})}));
  std::vector<v1::TaskAssignment> leased = c_.Dispatch(*agent_, *channel_, 8);
  ASSERT_EQ(leased.size(), 1u);
  const v1::AttemptRef ref = leased[0].ref();
  v1::AttemptRef stale = ref;
  stale.set_attempt(ref.attempt() + 5);

  Record({Result(ref, 1, v1::ATTEMPT_SUCCEEDED, R"({"K": "v"})"),
          Result(ref, 2, v1::ATTEMPT_FAILED),  // the same attempt again: ignored
          Result(stale, 3, v1::ATTEMPT_FAILED)});
  const TaskEntry& task = exec.tasks[EngineComponents::TaskIndex(exec, "t")];
  EXPECT_EQ(task.state, v1::TASK_SUCCEEDED);
  EXPECT_EQ(task.details_or_empty().outputs, (std::map<std::string, std::string>{{"K", "v"}}));
  ASSERT_EQ(task.attempts.size(), 1u);
  EXPECT_EQ(task.attempts[0].outcome, v1::ATTEMPT_SUCCEEDED);
  EXPECT_TRUE(agent_->leases.empty());
  EXPECT_EQ(EngineComponents::StateOf(exec, "u"), v1::TASK_READY);

  // One record, with its outputs; all three acknowledged.
  std::vector<v1::TaskResultRecorded> recorded = Recorded();
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].agent_id(), "a1");
  EXPECT_EQ(recorded[0].result().ref().attempt(), ref.attempt());
  EXPECT_EQ(recorded[0].outputs().at("K"), "v");
  ASSERT_FALSE(channel_->acks().empty());
  EXPECT_EQ(channel_->acks().back(), 3u);

  // Sent again in a later message (its acknowledgement was lost): nothing
  // recorded, still acknowledged.
  Record({Result(ref, 4)});
  EXPECT_EQ(Recorded().size(), 1u);
  EXPECT_EQ(channel_->acks().back(), 4u);
  EXPECT_EQ(task.state, v1::TASK_SUCCEEDED);
}

TEST_F(ResultRecorderTest, AResultFromAnotherAgentOrForAnUnknownTaskIsRejected) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t")}));
  std::vector<v1::TaskAssignment> leased = c_.Dispatch(*agent_, *channel_, 8);
  ASSERT_EQ(leased.size(), 1u);
  c_.Tick();
  v1::TaskResult result = Result(leased[0].ref(), 1);
  ParsedOutput parsed;
  EXPECT_FALSE(c_.results.HandleResult("impostor", result, parsed, nullptr, c_.out));
  EXPECT_EQ(EngineComponents::StateOf(exec, "t"), v1::TASK_LEASED);
  v1::AttemptRef unknown = leased[0].ref();
  unknown.set_task_id("nope");
  v1::TaskResult lost = Result(unknown, 2);
  EXPECT_FALSE(c_.results.HandleResult("a1", lost, parsed, nullptr, c_.out));

  EXPECT_TRUE(c_.results.HandleResult("a1", result, parsed, nullptr, c_.out));
  EXPECT_EQ(EngineComponents::StateOf(exec, "t"), v1::TASK_SUCCEEDED);
  // Once taken, the same result is not taken again.
  EXPECT_FALSE(c_.results.HandleResult("a1", result, parsed, nullptr, c_.out));
}

TEST_F(ResultRecorderTest, AnUndeclaredOutputFailsTheAttemptAndIsNotPassedOn) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("t"), Task("u", {"t"})}));
  std::vector<v1::TaskAssignment> leased = c_.Dispatch(*agent_, *channel_, 8);
  ASSERT_EQ(leased.size(), 1u);
  Record({Result(leased[0].ref(), 1, v1::ATTEMPT_SUCCEEDED, R"({"SECRET": "x"})")});
  const TaskEntry& task = exec.tasks[EngineComponents::TaskIndex(exec, "t")];
  EXPECT_EQ(task.state, v1::TASK_FAILED);
  EXPECT_TRUE(task.details_or_empty().outputs.empty());
  EXPECT_EQ(EngineComponents::StateOf(exec, "u"), v1::TASK_SKIPPED);
  std::vector<v1::TaskResultRecorded> recorded = Recorded();
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_FALSE(recorded[0].output_error().empty());
}

}  // namespace
}  // namespace gyre::orchestrator
