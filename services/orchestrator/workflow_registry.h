#ifndef GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_REGISTRY_H_
#define GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/workflow/workflow_graph.h"

namespace gyre::orchestrator {

// Stored workflow definitions, every version of each.
// Owns: the definitions (shared, never changed once stored), their names
// and version numbers, resolving "workflows/{w}[/versions/{v}]", paging
// them, and preparing a definition (the task library's tasks it depends on pulled
// in, validated).
// Must not touch: executions, the store (the engine records what it adds).
// Not thread-safe: used under the engine lock, except the static methods.
class WorkflowRegistry {
 public:
  using Definition = std::shared_ptr<const gyre::v1::WorkflowDefinition>;
  using Versions = std::vector<Definition>;

  // No state (callable off the engine lock). Names `def` "workflows/...",
  // pulls in the tasks of `task_library` (may be null) it depends on and
  // validates the graph (within `limits`): what every stored or inline
  // definition goes through.
  static absl::Status Prepare(const Definition& task_library, gyre::v1::WorkflowDefinition& def,
                              const workflow::WorkflowSizeLimits& limits = {});
  // No state. A request's inline definition, prepared, with its targets
  // applied. Takes the definition out of `req`.
  static absl::StatusOr<Definition> InlineDefinition(
      const Definition& task_library, gyre::v1::StartExecutionRequest& req,
      const workflow::WorkflowSizeLimits& limits = {});

  // Stores `def` (prepared) as version 1 (`create`) or as the next version
  // of an existing workflow, setting its version and create time;
  // AlreadyExists or NotFound otherwise.
  absl::Status AddVersion(gyre::v1::WorkflowDefinition& def, bool create, absl::Time now);
  // Appends a stored version as it was recorded (replay, snapshots).
  void Restore(Definition def);
  // Forgets every version of `name` ("workflows/w"); false if none was kept.
  // Executions keep their own definitions.
  bool Remove(const std::string& name) { return workflows_.erase(name) > 0; }

  // What a "did you mean" compares, to be made after the lock is released.
  struct Suggestion {
    std::string word;
    std::vector<std::string> candidates;
  };
  // The stored workflow `workflow` names (latest or given version). When it
  // is not found and `suggestion` is not null, the message has no "did you
  // mean" and `suggestion` gets what the caller needs to add one.
  absl::StatusOr<Definition> Resolve(absl::string_view workflow,
                                     Suggestion* suggestion = nullptr) const;
  // The latest version of `name` ("w" or "workflows/w"), or null.
  const gyre::v1::WorkflowDefinition* Latest(absl::string_view name) const;

  // Up to `limit` latest versions of workflows named after `after` (all
  // from the first when empty), by name; `*more` says whether any is left.
  // A non-empty `tenant` keeps only that tenant's (TenantOrDefault).
  std::vector<Definition> Page(const std::string& after, size_t limit, bool* more,
                               absl::string_view tenant = {}) const;
  // ListWorkflows page tokens name the last workflow handed out: workflows
  // are listed by name, and one stored meanwhile must not shift the next
  // page. Opaque to clients.
  static std::string PageToken(absl::string_view name);
  // The name a token continues after ("" for no token); InvalidArgument for
  // a token this engine did not hand out.
  static absl::StatusOr<std::string> AfterToken(absl::string_view token);

  const std::map<std::string, Versions>& all() const { return workflows_; }
  bool empty() const { return workflows_.empty(); }

 private:
  std::map<std::string, Versions> workflows_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_WORKFLOW_REGISTRY_H_
