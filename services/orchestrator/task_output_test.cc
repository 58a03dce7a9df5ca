#include "services/orchestrator/task_output.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

TEST(TaskOutputTest, FlattensAnObjectAndReadsItAsADecisionToo) {
  const ParsedOutput parsed = ParseTaskOutput(R"({"A": "x", "N": 1, "O": {"k": [1]}})");
  EXPECT_EQ(parsed.outputs_error, "");
  EXPECT_EQ(parsed.outputs,
            (std::map<std::string, std::string>{{"A", "x"}, {"N", "1"}, {"O", "{\"k\":[1]}"}}));
  EXPECT_TRUE(absl::StartsWith(parsed.decision_error, "evaluator output: unknown key \""))
      << parsed.decision_error;
  const ParsedOutput decision = ParseTaskOutput(R"({"run": ["deploy"]})");
  EXPECT_EQ(decision.decision_error, "");
  EXPECT_EQ(decision.decision.run(0), "deploy");
}

TEST(TaskOutputTest, DeepOrLargeJsonIsRefusedBeforeParsing) {
  const std::string deep = R"({"K":)" + std::string(200000, '[') + std::string(200000, ']') + "}";
  const ParsedOutput parsed = ParseTaskOutput(deep);
  EXPECT_TRUE(absl::StartsWith(parsed.outputs_error, "$GYRE_OUTPUT: JSON nested deeper than 32"))
      << parsed.outputs_error;
  EXPECT_TRUE(absl::StartsWith(parsed.decision_error, "evaluator output: JSON nested deeper"))
      << parsed.decision_error;
  EXPECT_TRUE(parsed.outputs.empty());
  const ParsedOutput large = ParseTaskOutput(R"({"K": ")" + std::string(1 << 20, 'v') + R"("})");
  EXPECT_TRUE(absl::StrContains(large.outputs_error, "at most 1048576")) << large.outputs_error;
}

TEST(TaskOutputTest, KeysAreCheckedAsContextKeys) {
  const ParsedOutput parsed = ParseTaskOutput(R"({"PATH": "/tmp/evil"})");
  EXPECT_TRUE(absl::StartsWith(parsed.outputs_error, "$GYRE_OUTPUT: context key \"PATH\""))
      << parsed.outputs_error;
  EXPECT_TRUE(parsed.outputs.empty());
}

TEST(TaskOutputTest, ARecordWithItsVerdictIsNotParsedAgain) {
  v1::TaskResultRecorded record;
  record.mutable_result()->set_output_json("not even JSON");
  record.set_output_parsed(true);
  (*record.mutable_outputs())["A"] = "b";
  const ParsedOutput parsed = RecordedOutput(record);
  EXPECT_TRUE(parsed.recorded);
  EXPECT_EQ(parsed.outputs_error, "");
  EXPECT_EQ(parsed.outputs, (std::map<std::string, std::string>{{"A", "b"}}));
  record.set_output_error("$GYRE_OUTPUT: refused then");
  EXPECT_EQ(RecordedOutput(record).outputs_error, "$GYRE_OUTPUT: refused then");
  EXPECT_EQ(RecordedOutput(record).decision_error, "$GYRE_OUTPUT: refused then");
}

TEST(TaskOutputTest, AnOlderRecordIsParsedAgainAsItWasThenButBounded) {
  v1::TaskResultRecorded record;
  // Applied then (protobuf's parser flattened it): a replay applies it too.
  record.mutable_result()->set_output_json(R"({"run": [["deploy"]], "PATH": "x"})");
  const ParsedOutput parsed = RecordedOutput(record);
  EXPECT_FALSE(parsed.recorded);
  EXPECT_EQ(parsed.outputs_error, "") << "keys are not checked again";
  EXPECT_EQ(parsed.outputs.at("PATH"), "x");
  record.mutable_result()->set_output_json(R"({"run": [["deploy"]]})");
  EXPECT_EQ(RecordedOutput(record).decision_error, "");
  EXPECT_EQ(RecordedOutput(record).decision.run(0), "deploy");
  record.mutable_result()->set_output_json(std::string(100000, '['));
  EXPECT_TRUE(absl::StrContains(RecordedOutput(record).outputs_error, "nested deeper"));
}

}  // namespace
}  // namespace gyre::orchestrator
