#include "libs/workflow/task_library.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "libs/common/nearest_match.h"

namespace gyre::workflow {

absl::Status IncludeLibraryTasks(const gyre::v1::WorkflowDefinition& library,
                                 gyre::v1::WorkflowDefinition* definition) {
  absl::flat_hash_map<std::string, int> own;
  for (int i = 0; i < definition->tasks_size(); ++i) own.emplace(definition->tasks(i).id(), i);
  absl::flat_hash_map<std::string, int> in_library;
  for (int i = 0; i < library.tasks_size(); ++i) in_library.emplace(library.tasks(i).id(), i);

  // Library tasks needed, each with the task that first needed it (for
  // messages); the library's own dependencies are known (it was validated
  // when loaded), so only the workflow's may be unknown.
  absl::flat_hash_map<int, std::string> needed;
  std::vector<int> stack;
  for (const gyre::v1::TaskSpec& task : definition->tasks()) {
    for (const std::string& dependency : task.depends_on()) {
      if (own.contains(dependency)) continue;
      auto it = in_library.find(dependency);
      if (it == in_library.end()) {
        std::vector<std::string> candidates;
        for (const auto& [id, index] : own) {
          if (id != task.id()) candidates.push_back(id);
        }
        for (const auto& [id, index] : in_library) candidates.push_back(id);
        return absl::InvalidArgumentError(
            absl::StrCat("task \"", task.id(), "\": unknown dependency \"", dependency,
                         "\": no task of this workflow or of the task library has that id",
                         DidYouMean(dependency, candidates)));
      }
      if (needed.emplace(it->second, task.id()).second) stack.push_back(it->second);
    }
  }
  while (!stack.empty()) {
    const gyre::v1::TaskSpec& task = library.tasks(stack.back());
    stack.pop_back();
    for (const std::string& dependency : task.depends_on()) {
      const int index = in_library.at(dependency);
      if (needed.emplace(index, task.id()).second) stack.push_back(index);
    }
  }

  // In library order, so that the result (and the first error) does not
  // depend on hashing.
  std::vector<int> in_order;
  for (const auto& [index, needed_by] : needed) in_order.push_back(index);
  std::sort(in_order.begin(), in_order.end());
  std::vector<int> added;
  for (const int index : in_order) {
    const gyre::v1::TaskSpec& task = library.tasks(index);
    auto same_id = own.find(task.id());
    if (same_id == own.end()) {
      added.push_back(index);
    } else if (!google::protobuf::util::MessageDifferencer::Equals(
                   definition->tasks(same_id->second), task)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task \"", task.id(), "\": the task library's task of that id (which \"",
          needed.at(index),
          "\" depends on) is not the same as this workflow's; rename the workflow's task"));
    }
  }
  for (const int index : added) *definition->add_tasks() = library.tasks(index);
  return absl::OkStatus();
}

}  // namespace gyre::workflow
