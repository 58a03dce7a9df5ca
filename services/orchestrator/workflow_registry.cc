#include "services/orchestrator/workflow_registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/client_text.h"
#include "libs/common/nearest_match.h"
#include "libs/common/tenant.h"
#include "libs/workflow/task_library.h"
#include "libs/workflow/workflow_graph.h"
#include "services/orchestrator/proto_time.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

absl::Status WorkflowRegistry::Prepare(const Definition& task_library, v1::WorkflowDefinition& def,
                                       const workflow::WorkflowSizeLimits& limits) {
  if (!absl::StartsWith(def.name(), "workflows/")) def.set_name("workflows/" + def.name());
  // Library tasks are resolved once, when the definition is stored or
  // started: the execution keeps the tasks it started with, and a replay
  // does not depend on the library loaded by a later process.
  if (task_library != nullptr) {
    if (absl::Status status = workflow::IncludeLibraryTasks(*task_library, &def); !status.ok()) {
      return status;
    }
  }
  return workflow::ValidateWorkflowGraph(def, limits);
}

absl::StatusOr<WorkflowRegistry::Definition> WorkflowRegistry::InlineDefinition(
    const Definition& task_library, v1::StartExecutionRequest& req,
    const workflow::WorkflowSizeLimits& limits) {
  v1::WorkflowDefinition def = std::move(*req.mutable_definition());
  if (absl::Status status = Prepare(task_library, def, limits); !status.ok()) return status;
  std::vector<std::string> targets(req.targets().begin(), req.targets().end());
  return workflow::SelectTargets(std::make_shared<const v1::WorkflowDefinition>(std::move(def)),
                                 targets);
}

absl::Status WorkflowRegistry::AddVersion(v1::WorkflowDefinition& def, bool create,
                                          absl::Time now) {
  auto existing = workflows_.find(def.name());
  const bool exists = existing != workflows_.end() && !existing->second.empty();
  if (create && exists) {
    return absl::AlreadyExistsError(absl::StrCat(def.name(), " already exists (version ",
                                                 existing->second.back()->version(),
                                                 "); use UpdateWorkflow for a new version"));
  }
  if (!create && !exists) return absl::NotFoundError(absl::StrCat(def.name(), " not found"));
  Versions& versions = workflows_[def.name()];
  def.set_version(versions.empty() ? 1 : versions.back()->version() + 1);
  *def.mutable_create_time() = ToProto(now);
  versions.push_back(std::make_shared<const v1::WorkflowDefinition>(def));
  return absl::OkStatus();
}

void WorkflowRegistry::Restore(Definition def) {
  const std::string name = def->name();
  workflows_[name].push_back(std::move(def));
}

absl::StatusOr<WorkflowRegistry::Definition> WorkflowRegistry::Resolve(
    absl::string_view workflow, Suggestion* suggestion) const {
  std::vector<std::string> parts = absl::StrSplit(workflow, '/');
  if (parts.size() == 1) parts.insert(parts.begin(), "workflows");
  if ((parts.size() != 2 && parts.size() != 4) || parts[0] != "workflows" ||
      (parts.size() == 4 && parts[2] != "versions")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid workflow name ", QuoteClientText(workflow),
        " (expected workflows/{workflow} or workflows/{workflow}/versions/{version})"));
  }
  const std::string name = "workflows/" + parts[1];
  auto it = workflows_.find(name);
  if (it == workflows_.end() || it->second.empty()) {
    std::vector<std::string> known;
    for (const auto& [known_name, versions] : workflows_) known.push_back(known_name);
    if (suggestion != nullptr) {
      suggestion->word = name;
      suggestion->candidates = std::move(known);
      return absl::NotFoundError(absl::StrCat(QuoteClientText(name), " not found"));
    }
    return absl::NotFoundError(
        absl::StrCat(QuoteClientText(name), " not found", DidYouMean(name, known)));
  }
  if (parts.size() == 2) return it->second.back();
  int64_t version = 0;
  if (!absl::SimpleAtoi(parts[3], &version) || version < 1 ||
      version > static_cast<int64_t>(it->second.size())) {
    return absl::NotFoundError(absl::StrCat(QuoteClientText(name), " has no version ",
                                            QuoteClientText(parts[3]), " (latest is ",
                                            it->second.size(), ")"));
  }
  return it->second[static_cast<size_t>(version - 1)];
}

const v1::WorkflowDefinition* WorkflowRegistry::Latest(absl::string_view name) const {
  auto it = workflows_.find(
      absl::StartsWith(name, "workflows/") ? std::string(name) : absl::StrCat("workflows/", name));
  if (it == workflows_.end() || it->second.empty()) return nullptr;
  return it->second.back().get();
}

std::vector<WorkflowRegistry::Definition> WorkflowRegistry::Page(const std::string& after,
                                                                 size_t limit, bool* more,
                                                                 absl::string_view tenant) const {
  std::vector<Definition> page;
  *more = false;
  auto it = after.empty() ? workflows_.begin() : workflows_.upper_bound(after);
  for (; it != workflows_.end(); ++it) {
    if (it->second.empty()) continue;
    if (!tenant.empty() && TenantOrDefault(it->second.back()->tenant()) != tenant) continue;
    if (page.size() == limit) {
      *more = true;
      break;
    }
    page.push_back(it->second.back());
  }
  return page;
}

std::string WorkflowRegistry::PageToken(absl::string_view name) {
  absl::ConsumePrefix(&name, "workflows/");
  return absl::StrCat("w", name);
}

absl::StatusOr<std::string> WorkflowRegistry::AfterToken(absl::string_view token) {
  if (token.empty()) return std::string();
  if (!absl::ConsumePrefix(&token, "w") || token.empty() || token.size() > 63 ||
      !std::all_of(token.begin(), token.end(), [](char c) {
        return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
      })) {
    return absl::InvalidArgumentError("invalid page_token (pass the next_page_token of a page)");
  }
  return absl::StrCat("workflows/", token);
}

}  // namespace gyre::orchestrator
