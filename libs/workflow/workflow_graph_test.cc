#include "libs/workflow/workflow_graph.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/common/limits.h"

namespace gyre::workflow {
namespace {

gyre::v1::WorkflowDefinition Definition(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& tasks) {
  gyre::v1::WorkflowDefinition def;
  def.set_name("workflows/etl");
  for (const auto& [id, deps] : tasks) {
    gyre::v1::TaskSpec* task = def.add_tasks();
    task->set_id(id);
    task->add_command("true");
    for (const std::string& dep : deps) task->add_depends_on(dep);
  }
  return def;
}

TEST(WorkflowGraphTest, AcceptsADag) {
  EXPECT_TRUE(ValidateWorkflowGraph(Definition({{"a", {}}, {"b", {"a"}}, {"c", {"a", "b"}}})).ok());
}

TEST(WorkflowGraphTest, UnknownDependencySuggestsTheNearestTask) {
  EXPECT_EQ(ValidateWorkflowGraph(Definition({{"extract", {}}, {"load", {"extrct"}}})).message(),
            "task \"load\": unknown dependency \"extrct\" (did you mean \"extract\"?)");
}

TEST(WorkflowGraphTest, CycleIsPrintedAsAPath) {
  EXPECT_EQ(ValidateWorkflowGraph(Definition({{"a", {"c"}}, {"b", {"a"}}, {"c", {"b"}}})).message(),
            "dependency cycle: a -> b -> c -> a");
}

TEST(WorkflowGraphTest, ALongChainValidatesWithoutExhaustingTheStack) {
  gyre::v1::WorkflowDefinition def;
  def.set_name("workflows/chain");
  // Deep enough that a recursive search would overflow an 8 MiB stack.
  constexpr int kTasks = 200'000;
  for (int i = 0; i < kTasks; ++i) {
    gyre::v1::TaskSpec* task = def.add_tasks();
    task->set_id("t" + std::to_string(i));
    task->add_command("true");
    // Each depends on the next: the search from t0 runs the whole chain deep.
    if (i + 1 < kTasks) task->add_depends_on("t" + std::to_string(i + 1));
  }
  // Over the default task limit, as an orchestrator may be configured.
  const WorkflowSizeLimits limits{.max_tasks = kTasks};
  EXPECT_TRUE(ValidateWorkflowGraph(def, limits).ok());
  def.mutable_tasks(kTasks - 1)->add_depends_on("t0");
  const absl::Status cycle = ValidateWorkflowGraph(def, limits);
  EXPECT_TRUE(absl::StartsWith(cycle.message(),
                               "dependency cycle of 200000 tasks: t0 -> t199999 -> t199998 -> "))
      << cycle.message().substr(0, 100);
  EXPECT_TRUE(absl::EndsWith(cycle.message(),
                             " -> ... -> t9 -> t8 -> t7 -> t6 -> t5 -> t4 -> t3 -> "
                             "t2 -> t1 -> t0"))
      << cycle.message();
  EXPECT_LT(cycle.message().size(), 400u);
}

TEST(WorkflowGraphTest, DuplicateIdIsRejected) {
  EXPECT_EQ(ValidateWorkflowGraph(Definition({{"a", {}}, {"a", {}}})).message(),
            "duplicate task id \"a\"");
}

TEST(WorkflowGraphTest, TaskIdsAreNamesNotPaths) {
  for (const std::string id : {"extract", "load_2", "v1.2-final", "_private", "7z"}) {
    EXPECT_TRUE(ValidateWorkflowGraph(Definition({{id, {}}})).ok()) << id;
  }
  for (const std::string& id : std::vector<std::string>{"..", ".", ".hidden", "-rf", "a/b", "a b",
                                                        "", std::string(129, 'a')}) {
    // An over-long id is quoted cut, with its length.
    const std::string quoted =
        id.size() > 128 ? "\"" + id.substr(0, 128) + "...\" (129 bytes)" : "\"" + id + "\"";
    EXPECT_EQ(ValidateWorkflowGraph(Definition({{id, {}}})).message(),
              "invalid task id " + quoted +
                  " (letters, digits, '_', '-', '.', starting with a letter, digit or '_'; 1 to "
                  "128)")
        << id;
  }
}

TEST(WorkflowGraphTest, TaskNeedsExactlyOneOfCommandOrBuiltin) {
  auto def = Definition({{"a", {}}});
  def.mutable_tasks(0)->mutable_builtin()->set_kind(gyre::v1::BuiltinExecutor::NOOP);
  EXPECT_EQ(ValidateWorkflowGraph(def).message(),
            "task \"a\": needs exactly one of command or builtin");
}

TEST(WorkflowGraphTest, PriorityOutOfRangeIsRejected) {
  auto def = Definition({{"a", {}}});
  def.mutable_tasks(0)->set_priority(101);
  EXPECT_EQ(ValidateWorkflowGraph(def).message(),
            "task \"a\": priority 101 is out of range [0, 100]");
}

TEST(WorkflowGraphTest, SelectTargetsKeepsTransitiveDependenciesInOrder) {
  auto def = std::make_shared<const gyre::v1::WorkflowDefinition>(
      Definition({{"a", {}}, {"x", {}}, {"b", {"a"}}, {"c", {"b"}}}));
  auto selected = SelectTargets(def, {"c"});
  ASSERT_TRUE(selected.ok());
  ASSERT_EQ((*selected)->tasks_size(), 3);
  EXPECT_EQ((*selected)->tasks(0).id(), "a");
  EXPECT_EQ((*selected)->tasks(2).id(), "c");
  EXPECT_EQ(SelectTargets(def, {"cc"}).status().message(),
            "unknown target task \"cc\" (did you mean \"c\"?)");
}

TEST(WorkflowGraphTest, EvaluatorDecisionRejectsUnknownKeys) {
  EXPECT_TRUE(ParseEvaluatorDecision(R"({"run": ["a"], "skip": []})").ok());
  EXPECT_FALSE(ParseEvaluatorDecision(R"({"rnu": ["a"]})").ok());
  EXPECT_FALSE(ParseEvaluatorDecision("not json").ok());
  EXPECT_FALSE(ParseEvaluatorDecision("").ok());
}

TEST(EvaluatorDecisionTest, OnlyTheDocumentedShapeIsAccepted) {
  auto full = ParseEvaluatorDecision(
      R"({"run": ["deploy"], "skip": ["rollback"],
          "start": [{"workflow": "report", "context": {"OWNER": "data"}}],
          "context": {"VERDICT": "ship"}})");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->run(0), "deploy");
  EXPECT_EQ(full->start(0).workflow(), "report");
  EXPECT_EQ(full->start(0).context().at("OWNER"), "data");
  EXPECT_EQ(full->context().at("VERDICT"), "ship");
  // protobuf's JSON parser flattened a list of lists into "run".
  auto nested = ParseEvaluatorDecision(R"({"run": [["deploy"]]})");
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(std::string(nested.status().message()),
                                "\"run\" entry 0 is a list, not a task id string"))
      << std::string(nested.status().message());
  for (const char* bad :
       {R"({"run": "deploy"})", R"({"context": {"A": 1}})", R"(["deploy"])",
        R"({"start": [{"workflow": "r", "when": "now"}]})", R"({"start": [{"context": {}}]})",
        R"({"start": {"workflow": "r"}})", R"({"run": [""]})", R"({"skip": [null]})"}) {
    auto decision = ParseEvaluatorDecision(bad);
    EXPECT_EQ(decision.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(decision.status().message(), "evaluator output: ")) << bad;
  }
  EXPECT_TRUE(
      absl::StrContains(std::string(ParseEvaluatorDecision(R"({"rnu": []})").status().message()),
                        "unknown key \"rnu\" (did you mean \"run\"?)"))
      << std::string(ParseEvaluatorDecision(R"({"rnu": []})").status().message());
}

TEST(EvaluatorDecisionTest, BoundedInDepthSizeAndNames) {
  const std::string deep =
      R"({"run": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_TRUE(absl::StrContains(std::string(ParseEvaluatorDecision(deep).status().message()),
                                "nested deeper than 32 levels"))
      << std::string(ParseEvaluatorDecision(deep).status().message());
  EXPECT_TRUE(absl::StrContains(
      std::string(
          ParseEvaluatorDecision(std::string(kMaxOutputJsonBytes + 1, ' ')).status().message()),
      "at most 1048576"))
      << std::string(
             ParseEvaluatorDecision(std::string(kMaxOutputJsonBytes + 1, ' ')).status().message());
  const std::string long_id = std::string(200000, 'z');
  const auto status = ParseEvaluatorDecision(R"({"run": [")" + long_id + R"("]})").status();
  EXPECT_TRUE(absl::StrContains(std::string(status.message()), "is not 1 to 128 bytes long"))
      << std::string(status.message());
  EXPECT_LT(status.message().size(), 1000u) << "the id is quoted cut";
}

TEST(WorkflowGraphTest, SizesAreBoundedPerTaskFieldAndPerDefinition) {
  gyre::v1::WorkflowDefinition def;
  def.set_name("workflows/big");
  gyre::v1::TaskSpec* task = def.add_tasks();
  task->set_id("t0");
  task->add_command(std::string(limits::kMaxTaskFieldBytes + 1, 'c'));
  EXPECT_EQ(ValidateWorkflowGraph(def).message(),
            "task \"t0\": command element 0 is 65537 bytes; at most 65536");
  task->set_command(0, "true");
  (*task->mutable_env())["E"] = std::string(limits::kMaxTaskFieldBytes, 'e');
  EXPECT_EQ(ValidateWorkflowGraph(def).message(),
            "task \"t0\": env E is 65537 bytes; at most 65536");
  task->mutable_env()->clear();
  // Each field within its limit, the whole over a log record's share.
  const size_t tasks = limits::kMaxDefinitionBytes / limits::kMaxTaskFieldBytes + 1;
  for (size_t i = 1; i < tasks; ++i) {
    gyre::v1::TaskSpec* more = def.add_tasks();
    more->set_id("t" + std::to_string(i));
    more->add_command("true");
    more->set_description(std::string(limits::kMaxTaskFieldBytes, 'd'));
  }
  const absl::Status status = ValidateWorkflowGraph(def);
  EXPECT_TRUE(absl::StrContains(status.message(), "a definition is at most 50331648")) << status;
}

}  // namespace
}  // namespace gyre::workflow
