#include "services/orchestrator/task_environment.h"

#include "gtest/gtest.h"
#include "libs/common/limits.h"

namespace gyre::orchestrator {
namespace {

const ExecutionBuiltins kBuiltins{"ex1", "etl", "2026-11-22", "2026-11-22T10:00:00Z"};

TEST(TaskEnvironmentTest, ArgvExpandsContextAndBuiltinsPerElement) {
  gyre::v1::TaskSpec spec;
  spec.set_id("load");
  spec.add_command("load.py");
  spec.add_command("--region=${REGION}");
  spec.add_command("${DATE}/${ATTEMPT}");
  gyre::v1::TaskAssignment assignment;
  ASSERT_TRUE(BuildTaskEnvironment(spec, {{"REGION", "eu west; rm -rf /"}}, kBuiltins, 2, nullptr,
                                   &assignment)
                  .ok());
  ASSERT_EQ(assignment.command_size(), 3);
  // One argv element, spaces and shell syntax included: nothing is re-split.
  EXPECT_EQ(assignment.command(1), "--region=eu west; rm -rf /");
  EXPECT_EQ(assignment.command(2), "2026-11-22/2");
}

TEST(TaskEnvironmentTest, ShellScriptsAreNeverExpandedValuesArriveAsEnvironment) {
  gyre::v1::TaskSpec spec;
  spec.set_id("greet");
  spec.set_shell(true);
  spec.add_command("echo \"${NAME}\"");
  gyre::v1::TaskAssignment assignment;
  ASSERT_TRUE(
      BuildTaskEnvironment(spec, {{"NAME", "$(reboot)"}}, kBuiltins, 1, nullptr, &assignment).ok());
  EXPECT_EQ(assignment.command(0), "echo \"${NAME}\"");
  EXPECT_EQ(assignment.env().at("NAME"), "$(reboot)");
  EXPECT_TRUE(assignment.shell());
}

TEST(TaskEnvironmentTest, EnvironmentCarriesContextTaskEnvAndGyreVariables) {
  gyre::v1::TaskSpec spec;
  spec.set_id("t");
  (*spec.mutable_env())["OUT"] = "/data/${EXECUTION_ID}";
  (*spec.mutable_env())["REGION"] = "override";
  gyre::v1::TaskAssignment assignment;
  ASSERT_TRUE(
      BuildTaskEnvironment(spec, {{"REGION", "eu"}}, kBuiltins, 3, nullptr, &assignment).ok());
  EXPECT_EQ(assignment.env().at("OUT"), "/data/ex1");
  EXPECT_EQ(assignment.env().at("REGION"), "override");
  EXPECT_EQ(assignment.env().at("GYRE_TASK_ID"), "t");
  EXPECT_EQ(assignment.env().at("GYRE_ATTEMPT"), "3");
  EXPECT_EQ(assignment.env().at("GYRE_WORKFLOW"), "etl");
}

TEST(TaskEnvironmentTest, UndefinedVariableNamesTaskAndVariable) {
  gyre::v1::TaskSpec spec;
  spec.set_id("load");
  spec.add_command("${MISSING}");
  gyre::v1::TaskAssignment assignment;
  const absl::Status status = BuildTaskEnvironment(spec, {}, kBuiltins, 1, nullptr, &assignment);
  EXPECT_EQ(status.message(),
            "task \"load\": command: undefined variable \"MISSING\" in \"${MISSING}\"");
}

TEST(TaskEnvironmentTest, ExecSizeIsCountedAsExecveDoesAndCheckedAgainstTheBudget) {
  gyre::v1::TaskAssignment assignment;
  assignment.mutable_ref()->set_task_id("big");
  assignment.add_command("true");
  (*assignment.mutable_env())["A"] = "xy";
  size_t bytes = 0;
  ASSERT_TRUE(CheckExecSize(assignment, &bytes).ok());
  // "true\0" and "A=xy\0", a pointer to each, and the two null pointers.
  EXPECT_EQ(bytes, 5 + 5 + 4 * sizeof(char*));

  // One string over Linux's MAX_ARG_STRLEN (a ${VAR} expanded into a value).
  (*assignment.mutable_env())["A"] = std::string(limits::kMaxExecStringBytes, 'x');
  absl::Status status = CheckExecSize(assignment, &bytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("environment variable A is"), std::string::npos) << status;

  // Every string within it, the whole over the budget.
  assignment.mutable_env()->clear();
  for (int i = 0; i < 30; ++i) {
    (*assignment.mutable_env())["V" + std::to_string(i)] = std::string(64 * 1024, 'v');
  }
  status = CheckExecSize(assignment, &bytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("task \"big\" cannot run: its command line and environment"),
            std::string::npos)
      << status;
  EXPECT_GT(bytes, limits::kMaxTaskExecBytes);
}

TEST(TaskEnvironmentTest, OnlyDeclaredContextReachesTheEnvironmentYetEveryValueExpands) {
  gyre::v1::WorkflowDefinition definition;
  (*definition.mutable_default_context())["REGION"] = "eu";
  gyre::v1::TaskSpec& producer = *definition.add_tasks();
  producer.set_id("extract");
  producer.add_outputs("ORDERS");
  gyre::v1::TaskSpec spec;
  spec.set_id("load");
  spec.add_command("echo");
  spec.add_command("${HOME}");
  (*spec.mutable_env())["MY_HOME"] = "${HOME}";
  const workflow::DeclaredContext declared(definition);
  const std::map<std::string, std::string> context = {
      {"REGION", "eu"}, {"ORDERS", "250"}, {"HOME", "/tmp/evil"}};
  gyre::v1::TaskAssignment assignment;
  ASSERT_TRUE(BuildTaskEnvironment(spec, context, kBuiltins, 1, &declared, &assignment).ok());
  EXPECT_EQ(assignment.env().at("REGION"), "eu");
  EXPECT_EQ(assignment.env().at("ORDERS"), "250");
  EXPECT_EQ(assignment.env().count("HOME"), 0u) << "undeclared: not in the environment";
  EXPECT_EQ(assignment.command(1), "/tmp/evil") << "the author named it: it expands";
  EXPECT_EQ(assignment.env().at("MY_HOME"), "/tmp/evil");

  definition.set_context_passthrough(true);
  const workflow::DeclaredContext open(definition);
  ASSERT_TRUE(BuildTaskEnvironment(spec, context, kBuiltins, 1, &open, &assignment).ok());
  EXPECT_EQ(assignment.env().at("HOME"), "/tmp/evil") << "the workflow opted in";
}

}  // namespace
}  // namespace gyre::orchestrator
