#include "services/orchestrator/evaluator_decisions.h"

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/client_text.h"
#include "libs/common/nearest_match.h"
#include "libs/workflow/context_keys.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

std::string EvaluatorDecisions::Apply(ExecutionEntry& exec, uint32_t index, bool empty_output,
                                      ParsedOutput& parsed, Outbox& out) {
  TaskEntry& task = exec.tasks[index];
  // Parsed and checked for shape and context keys outside the lock
  // (ParseTaskOutput), or read back from the record with its verdict then.
  std::string refused = parsed.decision_error;
  if (refused.empty() && empty_output && !parsed.recorded) {
    refused = "evaluator output: empty (print a JSON decision or write it to $GYRE_OUTPUT)";
  }
  // Keys its decision passes on must be declared, and so must those a child
  // is given (checked live; a replay takes the verdict recorded with the
  // result). A child's are checked again when it starts; here, so that the
  // evaluator fails rather than the child silently not starting.
  if (refused.empty() && !journal_.replaying()) {
    absl::Status status = workflow::CheckOutputsDeclared(
        *task.spec, parsed.decision.context(), exec.declared->passthrough(), "evaluator output");
    for (int i = 0; status.ok() && i < parsed.decision.start_size(); ++i) {
      const v1::WorkflowDefinition* child = workflows_.Latest(parsed.decision.start(i).workflow());
      // An unknown workflow is refused with the other child checks below.
      if (child == nullptr) continue;
      const workflow::DeclaredContext child_declared(*child);
      status = workflow::CheckStartContextDeclared(
          parsed.decision.start(i).context(), child_declared, child->name(), exec.declared.get());
      if (!status.ok()) {
        status = absl::InvalidArgumentError(absl::StrCat("evaluator output: ", status.message()));
      }
    }
    if (!status.ok()) refused = std::string(status.message());
  }
  const v1::EvaluatorDecision& decision = parsed.decision;
  if (refused.empty()) {
    // Tasks an evaluator may decide about: its transitive dependants.
    absl::flat_hash_set<uint32_t> downstream;
    std::vector<uint32_t> stack(task.dependants);
    while (!stack.empty()) {
      const uint32_t next = stack.back();
      stack.pop_back();
      if (!downstream.insert(next).second) continue;
      stack.insert(stack.end(), exec.tasks[next].dependants.begin(),
                   exec.tasks[next].dependants.end());
    }
    auto check = [&](const std::string& id) -> std::string {
      auto it = exec.task_index.find(id);
      if (it != exec.task_index.end() && downstream.contains(it->second)) return "";
      std::vector<std::string> names;
      // DidYouMean compares few of them: ids are at most 128 bytes and
      // only names of a close length are compared.
      for (uint32_t d : downstream) names.push_back(exec.tasks[d].spec->id());
      return absl::StrCat("evaluator output: task ", QuoteClientText(id),
                          " is not downstream of evaluator \"", task.spec->id(), "\"",
                          DidYouMean(id, names));
    };
    // Linear in the decision's length: a hash set, not a search of "run"
    // for every skipped id.
    absl::flat_hash_set<absl::string_view> run(decision.run().begin(), decision.run().end());
    for (const std::string& id : decision.run()) {
      if (refused = check(id); !refused.empty()) break;
    }
    for (int i = 0; refused.empty() && i < decision.skip_size(); ++i) {
      const std::string& id = decision.skip(i);
      if (refused = check(id); !refused.empty()) break;
      if (run.contains(id)) {
        refused = absl::StrCat("evaluator output: task ", QuoteClientText(id),
                               " is both run and skipped");
      }
    }
    // The limits on children are today's rules; a replay keeps what was
    // accepted then (and a refusal was recorded with the result).
    if (refused.empty() && !journal_.replaying() && decision.start_size() > 0) {
      refused = CheckChildStarts(exec, decision);
    }
  }
  if (logging::Enabled(logging::Level::kDebug) && !journal_.replaying()) {
    out.Log(logging::Level::kDebug,
            refused.empty() ? "evaluator decision applied" : "evaluator decision refused",
            {{"execution", exec.name()},
             {"task", task.spec->id()},
             {"run", absl::StrJoin(decision.run(), ",")},
             {"skip", absl::StrJoin(decision.skip(), ",")},
             {"children", decision.start_size()},
             {"refused", refused}});
  }
  if (!refused.empty()) {
    task.attempts.back().outcome = v1::ATTEMPT_FAILED;
    task.attempts.back().error = refused;
    task.retries_used = task.spec->retry().max_retries();  // a bad decision is not transient
    machine_.FailOrRetry(exec, index, v1::TASK_FAILED, out);
    return refused;
  }
  for (const auto& [key, value] : decision.context()) task.mutable_details().outputs[key] = value;
  for (const std::string& id : decision.skip()) {
    const uint32_t skipped = exec.task_index.at(id);
    TaskEntry& entry = exec.tasks[skipped];
    if (entry.state != v1::TASK_PENDING) continue;
    entry.reason = absl::StrCat("skipped by evaluator \"", task.spec->id(), "\"");
    entry.generation++;
    machine_.SetTaskState(exec, skipped, v1::TASK_SKIPPED);
    machine_.SkipDependants(exec, skipped, entry.reason);
  }
  for (int i = 0; i < decision.start_size(); ++i) {
    const auto& start = decision.start(i);
    v1::StartExecutionRequest child;
    child.set_workflow(start.workflow());
    child.set_parent(exec.name());
    for (const auto& [key, value] : task.details_or_empty().outputs) {
      (*child.mutable_context())[key] = value;
    }
    for (const auto& [key, value] : start.context()) (*child.mutable_context())[key] = value;
    // Deterministic, so that starting it again after a crash is a no-op
    // when the first start was recorded.
    // Task ids may be long; the task's index keeps this under 128 bytes.
    child.set_request_id(absl::StrCat("child/", exec.id, "/", index, "/", task.attempt, "/", i));
    pending_children_[child.request_id()] = child;
    out.child_starts.push_back(std::move(child));
  }
  exec.children_started += static_cast<uint32_t>(decision.start_size());
  machine_.CompleteTask(exec, index, out);
  return "";
}

std::string EvaluatorDecisions::CheckChildStarts(const ExecutionEntry& exec,
                                                 const v1::EvaluatorDecision& decision) {
  // The depth of `exec`: how many parents up to an execution without one.
  // Walks at most kMaxChildDepth links, whatever the history holds.
  int depth = 0;
  for (const ExecutionEntry* at = &exec; !at->parent.empty() && depth <= kMaxChildDepth;) {
    at = executions_.Find(at->parent);
    if (at == nullptr) break;
    ++depth;
  }
  if (depth + 1 > kMaxChildDepth) {
    return absl::StrCat("evaluator output: cannot start child workflows from ", exec.name(),
                        ", which is already ", depth,
                        " levels below a top-level execution (children of children... at most ",
                        kMaxChildDepth, " deep)");
  }
  const uint32_t wanted = static_cast<uint32_t>(decision.start_size());
  if (exec.children_started + wanted > kMaxChildrenPerExecution) {
    return absl::StrCat("evaluator output: starting ", wanted, " more child workflows from ",
                        exec.name(), " would make ", exec.children_started + wanted,
                        "; one execution starts at most ", kMaxChildrenPerExecution);
  }
  for (int i = 0; i < decision.start_size(); ++i) {
    absl::StatusOr<WorkflowRegistry::Definition> found =
        workflows_.Resolve(decision.start(i).workflow());
    if (!found.ok()) {
      return absl::StrCat("evaluator output: start[", i, "]: ", found.status().message());
    }
  }
  return "";
}

}  // namespace gyre::orchestrator
