#include "libs/workflow/workflow_parser.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"
#include "libs/workflow/workflow_graph.h"

namespace gyre::workflow {
namespace {

namespace v1 = ::gyre::v1;

std::string Error(const std::string& yaml) {
  auto parsed = ParseWorkflowYaml(yaml, "etl.yaml");
  EXPECT_FALSE(parsed.ok()) << "expected an error for:\n" << yaml;
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

TEST(WorkflowParserTest, ParsesEveryField) {
  auto parsed = ParseWorkflowYaml(R"(
name: etl
description: Nightly ETL
context: {REGION: eu, BATCH: 100}
default_queue: cpu
tasks:
  - id: extract
    description: Pull rows
    command: [python3, extract.py, "--region=${REGION}"]
    env: {MODE: fast}
    labels: {department: ai-research}
    agent_selector: {zone: a}
    resources: {cpu: 1.5, memory: 512Mi, gpu: 1}
    timeout: 10m
    retries: {count: 3, initial_backoff: 2s, max_backoff: 1m, multiplier: 3, jitter: 0.5}
    priority: 80
  - id: load
    command: "echo $REGION"
    shell: true
    depends_on: extract
    queue: gpu
    global: true
  - id: judge
    builtin: sleep
    duration: 1.5s
    depends_on: [extract, load]
    evaluator: true
    retries: 2
)",
                                  "etl.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const v1::WorkflowDefinition& def = *parsed;
  EXPECT_EQ(def.name(), "workflows/etl");
  EXPECT_EQ(def.default_context().at("BATCH"), "100");
  EXPECT_EQ(def.default_queue(), "cpu");
  ASSERT_EQ(def.tasks_size(), 3);
  const v1::TaskSpec& extract = def.tasks(0);
  EXPECT_EQ(extract.command_size(), 3);
  EXPECT_EQ(extract.command(2), "--region=${REGION}");
  EXPECT_EQ(extract.resources().memory_bytes(), 512 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(extract.resources().cpu(), 1.5);
  EXPECT_EQ(extract.timeout().seconds(), 600);
  EXPECT_EQ(extract.retry().max_retries(), 3);
  EXPECT_EQ(extract.retry().max_backoff().seconds(), 60);
  EXPECT_EQ(extract.priority(), 80);
  EXPECT_EQ(extract.labels().at("department"), "ai-research");
  const v1::TaskSpec& load = def.tasks(1);
  EXPECT_TRUE(load.shell());
  EXPECT_EQ(load.command(0), "echo $REGION");
  EXPECT_EQ(load.depends_on(0), "extract");
  EXPECT_TRUE(load.global());
  const v1::TaskSpec& judge = def.tasks(2);
  EXPECT_EQ(judge.builtin().kind(), v1::BuiltinExecutor::SLEEP);
  EXPECT_EQ(judge.builtin().duration().nanos(), 500000000);
  EXPECT_TRUE(judge.evaluator());
  EXPECT_EQ(judge.retry().max_retries(), 2);
}

TEST(WorkflowParserTest, UnknownDependencyPointsAtItWithSuggestion) {
  EXPECT_EQ(Error("name: etl\ntasks:\n  - id: extract\n    builtin: noop\n"
                  "  - id: load\n    builtin: noop\n    depends_on: [extrct]\n"),
            "etl.yaml:7:18: task \"load\": unknown dependency \"extrct\" (did you mean "
            "\"extract\"?)");
}

// The library: raw <- clean.
v1::WorkflowDefinition Library() {
  absl::StatusOr<v1::WorkflowDefinition> library = ParseWorkflowYaml(
      "name: task-library\ntasks:\n  - {id: raw, builtin: noop}\n"
      "  - {id: clean, builtin: noop, depends_on: [raw]}\n",
      "library");
  EXPECT_TRUE(library.ok()) << library.status();
  return *library;
}

TEST(WorkflowParserTest, ADependencyOnALibraryTaskPullsItInWithItsDependencies) {
  const v1::WorkflowDefinition library = Library();
  absl::StatusOr<v1::WorkflowDefinition> def = ParseWorkflowYaml(
      "name: etl\ntasks:\n  - id: report\n    builtin: noop\n    depends_on: [clean]\n", "etl.yaml",
      &library);
  ASSERT_TRUE(def.ok()) << def.status();
  ASSERT_EQ(def->tasks_size(), 3);
  EXPECT_EQ(def->tasks(1).id(), "raw");
  EXPECT_EQ(def->tasks(2).id(), "clean");
  // Without the library the same dependency is unknown, as before.
  EXPECT_EQ(Error("name: etl\ntasks:\n  - id: report\n    builtin: noop\n"
                  "    depends_on: [clean]\n"),
            "etl.yaml:5:18: task \"report\": unknown dependency \"clean\"");
}

TEST(WorkflowParserTest, UnknownDependencyWithALibrarySuggestsFromBoth) {
  const v1::WorkflowDefinition library = Library();
  EXPECT_EQ(std::string(ParseWorkflowYaml("name: etl\ntasks:\n  - id: report\n    builtin: noop\n"
                                          "    depends_on: [clan]\n",
                                          "etl.yaml", &library)
                            .status()
                            .message()),
            "etl.yaml:5:18: task \"report\": unknown dependency \"clan\": no task of this "
            "workflow or of the task library has that id (did you mean \"clean\"?)");
  // A task of the workflow that a pulled-in library task would depend on.
  EXPECT_EQ(std::string(ParseWorkflowYaml("name: etl\ntasks:\n  - id: raw\n    command: [curl, x]\n"
                                          "  - id: report\n    builtin: noop\n"
                                          "    depends_on: [clean]\n",
                                          "etl.yaml", &library)
                            .status()
                            .message()),
            "etl.yaml:3:9: task \"raw\": the task library's task of that id (which \"clean\" "
            "depends on) is not the same as this workflow's; rename the workflow's task");
}

TEST(WorkflowParserTest, AContextKeyThatChangesWhatRunsIsRefusedWhereItIs) {
  EXPECT_EQ(Error("name: etl\ncontext:\n  REGION: eu\n  LD_PRELOAD: /tmp/x.so\ntasks:\n"
                  "  - {id: a, builtin: noop}\n"),
            "etl.yaml:4:3: context key \"LD_PRELOAD\" is refused: it changes what code programs "
            "load or run; set it in a task's env if the workflow needs it");
  // A task's env is the author's: it may set them.
  EXPECT_TRUE(ParseWorkflowYaml("name: etl\ntasks:\n  - id: a\n    command: [python3, a.py]\n"
                                "    env: {PYTHONPATH: /opt/lib}\n",
                                "etl.yaml")
                  .ok());
}

TEST(WorkflowParserTest, UnknownTaskKeySuggestsTheNearest) {
  EXPECT_EQ(Error("name: etl\ntasks:\n  - id: a\n    builtin: noop\n    depnds_on: [b]\n"),
            "etl.yaml:5:5: task \"a\": unknown key \"depnds_on\" (did you mean \"depends_on\"?)");
}

TEST(WorkflowParserTest, AVersionKeyIsExplainedNotJustUnknown) {
  EXPECT_EQ(Error("name: etl\nversion: 3\ntasks:\n  - id: a\n    builtin: noop\n"),
            "etl.yaml:2:1: version: versions are assigned by the orchestrator (a changed "
            "definition registered under the same name gets the next one); remove this key");
}

TEST(WorkflowParserTest, UnknownTopLevelAndNestedKeys) {
  EXPECT_EQ(Error("name: etl\ntask:\n  - id: a\n"),
            "etl.yaml:2:1: unknown key \"task\" (did you mean \"tasks\"?)");
  EXPECT_EQ(Error("name: etl\ntasks:\n  - id: a\n    builtin: noop\n    resources: {mem: 1}\n"),
            "etl.yaml:5:17: task \"a\": resources: unknown key \"mem\" (did you mean "
            "\"memory\"?)");
}

TEST(WorkflowParserTest, CyclePrintsItsPath) {
  EXPECT_EQ(Error("name: etl\ntasks:\n"
                  "  - {id: a, builtin: noop, depends_on: [c]}\n"
                  "  - {id: b, builtin: noop, depends_on: [a]}\n"
                  "  - {id: c, builtin: noop, depends_on: [b]}\n"),
            "etl.yaml:3:10: dependency cycle: a -> b -> c -> a");
}

TEST(WorkflowParserTest, DuplicateIdNamesBothPlaces) {
  EXPECT_EQ(Error("name: etl\ntasks:\n  - {id: a, builtin: noop}\n  - {id: a, builtin: noop}\n"),
            "etl.yaml:4:10: duplicate task id \"a\" (first defined at etl.yaml:3:10)");
}

TEST(WorkflowParserTest, BadDurationAndOutOfRangeValues) {
  EXPECT_EQ(Error("name: etl\ntasks:\n  - {id: a, builtin: noop, timeout: soon}\n"),
            "etl.yaml:3:37: task \"a\": timeout: invalid duration \"soon\" (expected e.g. "
            "\"30s\", \"10m\", \"1h30m\")");
  EXPECT_EQ(Error("name: etl\ntasks:\n  - {id: a, builtin: noop, priority: 101}\n"),
            "etl.yaml:3:38: task \"a\": priority: value 101 is out of range [0, 100]");
  EXPECT_EQ(Error("name: etl\ntasks:\n  - {id: a, builtin: noop, retries: 1000}\n"),
            "etl.yaml:3:37: task \"a\": retries: value 1000 is out of range [0, 100]");
}

TEST(WorkflowParserTest, CommandStringWithoutShellIsRefused) {
  EXPECT_EQ(Error("name: etl\ntasks:\n  - {id: a, command: \"rm -rf $X\"}\n"),
            "etl.yaml:3:22: task \"a\": command: a string runs in a shell only with shell: "
            "true; otherwise give an argv list");
}

TEST(WorkflowParserTest, InvalidYamlAndMissingPiecesAreNamed) {
  EXPECT_NE(Error("name: etl\ntasks: [\n").find("etl.yaml:"), std::string::npos);
  EXPECT_EQ(Error("tasks:\n  - {id: a, builtin: noop}\n"),
            "etl.yaml:1:1: the workflow needs a name");
  EXPECT_EQ(Error("name: etl\ntasks:\n  - {id: a}\n"),
            "etl.yaml:3:5: task \"a\": needs a command (or builtin: noop | sleep)");
  EXPECT_EQ(Error("name: ETL\ntasks:\n  - {id: a, builtin: noop}\n"),
            "etl.yaml:1:1: invalid workflow name \"ETL\" (lower-case letters, digits and '-'; 1 "
            "to 63)");
}

TEST(WorkflowParserTest, OutputsAndContextPassthroughAreParsed) {
  auto parsed = ParseWorkflowYaml(R"(
name: etl
context_passthrough: true
tasks:
  - {id: extract, builtin: noop, outputs: [ORDERS, CUSTOMERS]}
  - {id: judge, builtin: noop, evaluator: true, outputs: VERDICT}
)",
                                  "etl.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->context_passthrough());
  ASSERT_EQ(parsed->tasks(0).outputs_size(), 2);
  EXPECT_EQ(parsed->tasks(0).outputs(1), "CUSTOMERS");
  ASSERT_EQ(parsed->tasks(1).outputs_size(), 1);
  EXPECT_EQ(parsed->tasks(1).outputs(0), "VERDICT");
}

TEST(WorkflowParserTest, ContractViolationsPointAtTheirPlace) {
  EXPECT_EQ(Error("name: w\ntasks:\n  - id: t\n    builtin: noop\n    outputs: [OK, LD_PRELOAD]\n"),
            "etl.yaml:5:19: task \"t\": outputs: context key \"LD_PRELOAD\" is refused: it changes "
            "what code programs load or run; set it in a task's env if the workflow needs it");
  EXPECT_EQ(Error("name: w\ntasks:\n  - id: t\n    builtin: noop\n    outputs: [HOME-DIR]\n"),
            "etl.yaml:5:15: task \"t\": outputs: context key \"HOME-DIR\" is not a valid "
            "environment variable name ([A-Za-z_][A-Za-z0-9_]*, up to 128 characters)");
  EXPECT_EQ(Error("name: w\ntasks:\n  - id: t\n    command: [env]\n    env: {\"A=B\": x}\n"),
            "etl.yaml:5:11: task \"t\": env: variable name \"A=B\" must be non-empty, without '=' "
            "or NUL");
  EXPECT_EQ(Error("name: w\ntasks:\n  - id: t\n    command: [env]\n    env: {\"\": x}\n"),
            "etl.yaml:5:11: task \"t\": env: variable name \"\" must be non-empty, without '=' "
            "or NUL");
  EXPECT_EQ(Error("name: w\ntasks:\n  - id: t\n    builtin: noop\n    retries: {jitter: 2}\n"),
            "etl.yaml:5:23: task \"t\": retries.jitter: value 2 is out of range [0, 1]");
  EXPECT_EQ(
      Error("name: w\ntasks:\n  - id: t\n    builtin: noop\n    retries: {multiplier: 0.5}\n"),
      "etl.yaml:5:27: task \"t\": retries.multiplier: value 0.5 is out of range [1, 100]");
  EXPECT_EQ(Error("name: w\ntasks:\n  - id: t\n    builtin: noop\n    timeout: -5s\n"),
            "etl.yaml:5:14: task \"t\": timeout: invalid duration \"-5s\" (expected e.g. \"30s\", "
            "\"10m\", \"1h30m\")");
  EXPECT_EQ(Error("name: w\ncontext_passthrough: maybe\ntasks:\n  - {id: t, builtin: noop}\n"),
            "etl.yaml:2:22: context_passthrough: invalid boolean \"maybe\" (expected true or "
            "false)");
}

TEST(WorkflowParserTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadWorkflowFile("/nonexistent/etl.yaml").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gyre::workflow

namespace gyre::workflow {
namespace {

class TaskLibraryTest : public ::testing::Test {
 protected:
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  gyre::testing::ScratchDir scratch_{"gyre_library"};
  std::string dir_ = scratch_.path();
};

TEST_F(TaskLibraryTest, LoadsTasksAcrossFilesWithCrossFileDependencies) {
  Write("ingest.yaml", "tasks:\n  - {id: raw, builtin: noop}\n");
  Write("reports.yml", "tasks:\n  - {id: daily-report, builtin: noop, depends_on: [raw]}\n");
  Write("notes.txt", "not yaml, ignored");
  auto library = LoadTaskLibrary(dir_);
  ASSERT_TRUE(library.ok()) << library.status();
  EXPECT_EQ(library->name(), "workflows/task-library");
  ASSERT_EQ(library->tasks_size(), 2);
  EXPECT_EQ(library->tasks(1).depends_on(0), "raw");
}

TEST_F(TaskLibraryTest, DuplicateAcrossFilesAndUnknownDependencyAreNamed) {
  Write("a.yaml", "tasks:\n  - {id: raw, builtin: noop}\n");
  Write("b.yaml", "tasks:\n  - {id: raw, builtin: noop}\n");
  EXPECT_EQ(
      LoadTaskLibrary(dir_).status().message(),
      dir_ + "/b.yaml:2:10: duplicate task id \"raw\" (first defined at " + dir_ + "/a.yaml:2:10)");
  std::filesystem::remove(dir_ + "/b.yaml");
  Write("b.yaml", "tasks:\n  - {id: report, builtin: noop, depends_on: [rwa]}\n");
  EXPECT_EQ(std::string(LoadTaskLibrary(dir_).status().message()),
            "task library " + dir_ +
                ": task \"report\": unknown dependency \"rwa\" (did you mean \"raw\"?)");
}

TEST_F(TaskLibraryTest, LibraryFilesDeclareContextMergedAcrossFiles) {
  Write("a.yaml", "context: {REGION: eu}\ntasks:\n  - {id: raw, builtin: noop, outputs: [ROWS]}\n");
  Write("b.yaml", "context: {REGION: eu, DAY: mon}\ntasks:\n  - {id: report, builtin: noop}\n");
  auto library = LoadTaskLibrary(dir_);
  ASSERT_TRUE(library.ok()) << library.status();
  EXPECT_EQ(library->default_context().at("REGION"), "eu");
  EXPECT_EQ(library->default_context().at("DAY"), "mon");
  EXPECT_EQ(library->tasks(0).outputs(0), "ROWS");
  std::filesystem::remove(dir_ + "/b.yaml");
  Write("b.yaml", "context: {REGION: us}\ntasks:\n  - {id: report, builtin: noop}\n");
  EXPECT_EQ(std::string(LoadTaskLibrary(dir_).status().message()),
            dir_ + "/b.yaml:1:11: context \"REGION\" is declared twice with different values");
}

TEST_F(TaskLibraryTest, MissingDirectoryIsNotFound) {
  EXPECT_EQ(LoadTaskLibrary("/nonexistent/library").status().code(), absl::StatusCode::kNotFound);
}

TEST(WorkflowParserTest, DuplicateKeyIsAnErrorNamingBothPlaces) {
  EXPECT_EQ(Error("name: etl\ntasks:\n  - id: a\n    builtin: noop\nname: other\n"),
            "etl.yaml:5:1: duplicate key \"name\" (first at etl.yaml:1:1)");
  EXPECT_EQ(Error("name: etl\ntasks:\n  - id: a\n    builtin: noop\n    env: {X: 1}\n"
                  "    env: {Y: 2}\n"),
            "etl.yaml:6:5: duplicate key \"env\" (first at etl.yaml:5:5)");
}

TEST(WorkflowParserTest, TaskAndEdgeCountsAreBounded) {
  std::string yaml = "name: big\ntasks:\n";
  for (int i = 0; i <= 10; ++i) absl::StrAppend(&yaml, "- {id: t", i, ", builtin: noop}\n");
  EXPECT_TRUE(ParseWorkflowYaml(yaml, "big.yaml").ok());
  EXPECT_EQ(ParseWorkflowYaml(yaml, "big.yaml", nullptr, {.max_tasks = 10}).status().message(),
            "big.yaml:3:1: workflow \"big\" has 11 tasks; at most 10 are accepted (the "
            "orchestrator's max_workflow_tasks)");
  // The orchestrator passes its configured limits.
  v1::WorkflowDefinition definition;
  definition.set_name("workflows/dense");
  for (int i = 0; i < 100; ++i) {
    v1::TaskSpec* task = definition.add_tasks();
    task->set_id(absl::StrCat("t", i));
    task->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    for (int j = 0; j < i; ++j) task->add_depends_on(absl::StrCat("t", j));
  }
  EXPECT_TRUE(ValidateWorkflowGraph(definition).ok());
  EXPECT_EQ(ValidateWorkflowGraph(definition, {.max_tasks = 100, .max_edges = 4000}).message(),
            "workflow \"dense\" has 4950 dependencies (depends_on entries); at most 4000 are "
            "accepted (the orchestrator's max_workflow_edges)");
  EXPECT_EQ(ValidateWorkflowGraph(definition, {.max_tasks = 99}).message(),
            "workflow \"dense\" has 100 tasks; at most 99 are accepted (the orchestrator's "
            "max_workflow_tasks)");
}

TEST(WorkflowParserTest, OversizedFileIsRefusedBeforeItIsRead) {
  gyre::testing::ScratchDir dir("gyre_big_yaml");
  const std::string path = dir.path() + "/big.yaml";
  std::ofstream(path) << "name: big\n# " << std::string(17 << 20, 'x') << "\n";
  auto loaded = LoadWorkflowFile(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("at most 16777216 are accepted"), std::string::npos)
      << loaded.status();
}

}  // namespace
}  // namespace gyre::workflow
