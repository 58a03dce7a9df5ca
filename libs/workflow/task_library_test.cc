#include "libs/workflow/task_library.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "libs/workflow/workflow_graph.h"

namespace gyre::workflow {
namespace {

using Tasks = std::vector<std::pair<std::string, std::vector<std::string>>>;

gyre::v1::WorkflowDefinition Definition(const std::string& name, const Tasks& tasks) {
  gyre::v1::WorkflowDefinition def;
  def.set_name(name);
  for (const auto& [id, deps] : tasks) {
    gyre::v1::TaskSpec* task = def.add_tasks();
    task->set_id(id);
    task->add_command("echo");
    task->add_command(id);
    for (const std::string& dep : deps) task->add_depends_on(dep);
  }
  return def;
}

// fetch <- clean <- daily, clean <- weekly; unrelated stands alone.
gyre::v1::WorkflowDefinition Library() {
  return Definition("workflows/task-library", {{"unrelated", {}},
                                               {"daily", {"clean"}},
                                               {"weekly", {"clean"}},
                                               {"clean", {"fetch"}},
                                               {"fetch", {}}});
}

std::vector<std::string> Ids(const gyre::v1::WorkflowDefinition& def) {
  std::vector<std::string> ids;
  for (const gyre::v1::TaskSpec& task : def.tasks()) ids.push_back(task.id());
  return ids;
}

TEST(IncludeLibraryTasksTest, PullsInTheDependencyAndWhatItDependsOnInLibraryOrder) {
  gyre::v1::WorkflowDefinition def = Definition("workflows/mine", {{"summary", {"clean"}}});
  ASSERT_TRUE(IncludeLibraryTasks(Library(), &def).ok());
  EXPECT_EQ(Ids(def), (std::vector<std::string>{"summary", "clean", "fetch"}));
  EXPECT_EQ(def.tasks(1).command(1), "clean");  // the library's task, whole
  EXPECT_TRUE(ValidateWorkflowGraph(def).ok());
}

TEST(IncludeLibraryTasksTest, AWorkflowWithoutLibraryDependenciesIsUnchanged) {
  const gyre::v1::WorkflowDefinition original =
      Definition("workflows/mine", {{"a", {}}, {"b", {"a"}}});
  gyre::v1::WorkflowDefinition def = original;
  ASSERT_TRUE(IncludeLibraryTasks(Library(), &def).ok());
  EXPECT_EQ(def.SerializeAsString(), original.SerializeAsString());
}

TEST(IncludeLibraryTasksTest, IncludingTwiceChangesNothing) {
  gyre::v1::WorkflowDefinition def =
      Definition("workflows/mine", {{"summary", {"daily", "weekly"}}});
  ASSERT_TRUE(IncludeLibraryTasks(Library(), &def).ok());
  EXPECT_EQ(Ids(def), (std::vector<std::string>{"summary", "daily", "weekly", "clean", "fetch"}));
  const std::string once = def.SerializeAsString();
  ASSERT_TRUE(IncludeLibraryTasks(Library(), &def).ok());
  EXPECT_EQ(def.SerializeAsString(), once);
}

TEST(IncludeLibraryTasksTest, TheWorkflowsOwnTaskWinsOverALibraryTaskItDependsOnDirectly) {
  gyre::v1::WorkflowDefinition def =
      Definition("workflows/mine", {{"clean", {}}, {"summary", {"clean"}}});
  ASSERT_TRUE(IncludeLibraryTasks(Library(), &def).ok());
  EXPECT_EQ(Ids(def), (std::vector<std::string>{"clean", "summary"}));
}

TEST(IncludeLibraryTasksTest, AnOwnTaskThatALibraryTaskNeedsMustBeTheLibrarysTask) {
  gyre::v1::WorkflowDefinition def =
      Definition("workflows/mine", {{"fetch", {}}, {"summary", {"clean"}}});
  def.mutable_tasks(0)->set_shell(true);
  def.mutable_tasks(0)->clear_command();
  def.mutable_tasks(0)->add_command("curl example.com");
  EXPECT_EQ(IncludeLibraryTasks(Library(), &def).message(),
            "task \"fetch\": the task library's task of that id (which \"clean\" depends on) is "
            "not the same as this workflow's; rename the workflow's task");
  EXPECT_EQ(def.tasks_size(), 2);  // nothing added on error
}

TEST(IncludeLibraryTasksTest, UnknownDependencySuggestsFromBothWorkflowAndLibrary) {
  gyre::v1::WorkflowDefinition def = Definition("workflows/mine", {{"summary", {"clen"}}});
  EXPECT_EQ(IncludeLibraryTasks(Library(), &def).message(),
            "task \"summary\": unknown dependency \"clen\": no task of this workflow or of the "
            "task library has that id (did you mean \"clean\"?)");
  def = Definition("workflows/mine", {{"extract", {}}, {"load", {"extrct"}}});
  EXPECT_EQ(IncludeLibraryTasks(Library(), &def).message(),
            "task \"load\": unknown dependency \"extrct\": no task of this workflow or of the "
            "task library has that id (did you mean \"extract\"?)");
}

}  // namespace
}  // namespace gyre::workflow
