#include "services/orchestrator/task_identity.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

gyre::v1::TaskSpec Spec() {
  gyre::v1::TaskSpec spec;
  spec.set_id("load");
  spec.add_command("load.py");
  (*spec.mutable_env())["B"] = "2";
  (*spec.mutable_env())["A"] = "1";
  return spec;
}

TEST(TaskIdentityTest, SameSpecAndContextGiveTheSameIdentity) {
  EXPECT_EQ(TaskIdentity(Spec(), {{"REGION", "eu"}}), TaskIdentity(Spec(), {{"REGION", "eu"}}));
  EXPECT_EQ(TaskIdentity(Spec(), {}).size(), 32u);
}

TEST(TaskIdentityTest, AnyChangeGivesADifferentIdentity) {
  const std::string base = TaskIdentity(Spec(), {{"REGION", "eu"}});
  EXPECT_NE(TaskIdentity(Spec(), {{"REGION", "us"}}), base);
  EXPECT_NE(TaskIdentity(Spec(), {{"REGION", "eu"}, {"X", ""}}), base);
  gyre::v1::TaskSpec changed = Spec();
  changed.add_command("--fast");
  EXPECT_NE(TaskIdentity(changed, {{"REGION", "eu"}}), base);
}

TEST(TaskIdentityTest, ContextBoundariesMatter) {
  EXPECT_NE(TaskIdentity(Spec(), {{"ab", "c"}}), TaskIdentity(Spec(), {{"a", "bc"}}));
}

TEST(PredictionIdentityTest, StableForTheSameWorkflowSpecAndInputs) {
  const std::vector<std::pair<std::string, double>> sizes = {{"input_bytes", 1e6}};
  const std::string base = PredictionIdentity("workflows/etl", Spec(), sizes);
  EXPECT_EQ(PredictionIdentity("workflows/etl", Spec(), sizes), base);
  EXPECT_EQ(base.size(), 32u);
  // Never a global task's identity of the same spec.
  EXPECT_NE(PredictionIdentity("", Spec(), {}), TaskIdentity(Spec(), {}));
}

TEST(PredictionIdentityTest, WorkflowSpecOrInputsChangedGiveADifferentIdentity) {
  const std::vector<std::pair<std::string, double>> sizes = {{"input_bytes", 1e6}};
  const std::string base = PredictionIdentity("workflows/etl", Spec(), sizes);
  EXPECT_NE(PredictionIdentity("workflows/other", Spec(), sizes), base);
  EXPECT_NE(PredictionIdentity("workflows/etl", Spec(), {{"input_bytes", 1e6 + 1}}), base);
  EXPECT_NE(PredictionIdentity("workflows/etl", Spec(), {}), base);
  gyre::v1::TaskSpec changed = Spec();
  changed.add_command("--fast");
  EXPECT_NE(PredictionIdentity("workflows/etl", changed, sizes), base);
}

}  // namespace
}  // namespace gyre::orchestrator
