#include "libs/workflow/workflow_graph.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/common/client_text.h"
#include "libs/common/json_bounds.h"
#include "libs/common/limits.h"
#include "libs/common/nearest_match.h"
#include "libs/workflow/context_keys.h"

namespace gyre::workflow {
namespace {

// Not starting with '.' or '-': an id names a task in resource names and
// URLs and in an agent's working directory, where "." and ".." would mean
// something else, and is passed around as an argument.
bool ValidTaskId(const std::string& id) {
  return !id.empty() && id.size() <= 128 && (absl::ascii_isalnum(id[0]) || id[0] == '_') &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
         });
}

bool ValidWorkflowName(absl::string_view name) {
  return !name.empty() && name.size() <= 63 && absl::ascii_isalnum(name[0]) &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
         });
}

// An environment entry is "KEY=value" in a NUL-terminated string: a key
// with '=' or NUL would set another variable (or none), an empty one none.
absl::Status CheckEnvKey(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("env: empty variable name");
  if (key.find('=') != absl::string_view::npos || key.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("env: variable name \"",
                                                   absl::CHexEscape(key.substr(0, 64)),
                                                   "\" must not contain '=' or NUL"));
  }
  return absl::OkStatus();
}

absl::Status TaskError(const gyre::v1::TaskSpec& task, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("task \"", task.id(), "\": ", problem));
}

absl::Status CheckTask(const gyre::v1::TaskSpec& task) {
  if (!ValidTaskId(task.id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid task id ", QuoteClientText(task.id()),
        " (letters, digits, '_', '-', '.', starting with a letter, digit or '_'; 1 to 128)"));
  }
  const bool has_builtin = task.builtin().kind() != gyre::v1::BuiltinExecutor::KIND_UNSPECIFIED;
  if (has_builtin == !task.command().empty()) {
    return TaskError(task, "needs exactly one of command or builtin");
  }
  if (task.shell() && task.command_size() != 1) {
    return TaskError(task, "a shell command is one script string");
  }
  if (task.priority() < 0 || task.priority() > 100) {
    return TaskError(task, absl::StrCat("priority ", task.priority(), " is out of range [0, 100]"));
  }
  if (task.retry().max_retries() < 0 || task.retry().max_retries() > 100) {
    return TaskError(
        task, absl::StrCat("retries ", task.retry().max_retries(), " is out of range [0, 100]"));
  }
  if (task.resources().cpu() < 0 || task.resources().memory_bytes() < 0 ||
      task.resources().gpus() < 0) {
    return TaskError(task, "resources must not be negative");
  }
  for (const auto& [key, value] : task.env()) {
    if (absl::Status status = CheckEnvKey(key); !status.ok()) {
      return TaskError(task, status.message());
    }
  }
  const auto negative = [](const google::protobuf::Duration& d) {
    return d.seconds() < 0 || d.nanos() < 0;
  };
  const std::pair<const char*, const google::protobuf::Duration*> durations[] = {
      {"timeout", &task.timeout()},
      {"retries.initial_backoff", &task.retry().initial_backoff()},
      {"retries.max_backoff", &task.retry().max_backoff()},
      {"duration", &task.builtin().duration()}};
  for (const auto& [what, duration] : durations) {
    if (negative(*duration)) return TaskError(task, absl::StrCat(what, " must not be negative"));
  }
  // 0 for either means the documented default (RetryPolicy).
  const double jitter = task.retry().jitter();
  if (!(jitter >= 0 && jitter <= 1)) {
    return TaskError(task, absl::StrCat("retries.jitter ", jitter, " is out of range [0, 1]"));
  }
  const double multiplier = task.retry().multiplier();
  if (!(multiplier == 0 || (multiplier >= 1 && multiplier <= 100))) {
    return TaskError(task, absl::StrCat("retries.multiplier ", multiplier,
                                        " is out of range [1, 100] (0: the default, 2)"));
  }
  for (const std::string& key : task.outputs()) {
    if (absl::Status status = ValidateContextKey(key); !status.ok()) {
      return TaskError(task, absl::StrCat("outputs: ", status.message()));
    }
  }
  return absl::OkStatus();
}

// Each string of a task that is stored with every execution and may reach
// an exec call within its limit (libs/common/limits.h).
absl::Status CheckTaskSizes(const gyre::v1::TaskSpec& task) {
  auto too_long = [&](absl::string_view what, size_t size) {
    return TaskError(
        task, absl::StrCat(what, " is ", size, " bytes; at most ", limits::kMaxTaskFieldBytes));
  };
  if (task.description().size() > limits::kMaxTaskFieldBytes) {
    return too_long("description", task.description().size());
  }
  for (int i = 0; i < task.command_size(); ++i) {
    if (task.command(i).size() > limits::kMaxTaskFieldBytes) {
      return too_long(absl::StrCat("command element ", i), task.command(i).size());
    }
  }
  for (const auto& [key, value] : task.env()) {
    if (key.size() + value.size() > limits::kMaxTaskFieldBytes) {
      return too_long(absl::StrCat("env ", key.substr(0, 128)), key.size() + value.size());
    }
  }
  return absl::OkStatus();
}

// Depth-first search for a cycle; returns its path (first node repeated).
// Iterative: a chain of a million tasks must not overflow the stack.
std::vector<std::string> FindCycle(const gyre::v1::WorkflowDefinition& definition,
                                   const absl::flat_hash_map<absl::string_view, int>& index) {
  const int n = definition.tasks_size();
  enum : uint8_t { kNew, kOnStack, kDone };
  std::vector<uint8_t> color(static_cast<size_t>(n), kNew);
  // (node, next dependency to look at) for every node on the current path.
  std::vector<std::pair<int, int>> stack;
  std::vector<std::string> cycle;
  for (int root = 0; root < n && cycle.empty(); ++root) {
    if (color[static_cast<size_t>(root)] != kNew) continue;
    color[static_cast<size_t>(root)] = kOnStack;
    stack.emplace_back(root, 0);
    while (!stack.empty() && cycle.empty()) {
      auto& [node, next_dependency] = stack.back();
      const gyre::v1::TaskSpec& task = definition.tasks(node);
      if (next_dependency == task.depends_on_size()) {
        color[static_cast<size_t>(node)] = kDone;
        stack.pop_back();
        continue;
      }
      const int next = index.at(task.depends_on(next_dependency++));
      if (color[static_cast<size_t>(next)] == kOnStack) {
        auto from = std::find_if(stack.begin(), stack.end(),
                                 [next](const auto& entry) { return entry.first == next; });
        for (auto it = from; it != stack.end(); ++it) {
          cycle.push_back(definition.tasks(it->first).id());
        }
        cycle.push_back(definition.tasks(next).id());
      } else if (color[static_cast<size_t>(next)] == kNew) {
        color[static_cast<size_t>(next)] = kOnStack;
        stack.emplace_back(next, 0);
      }
    }
  }
  // Dependencies point backwards ("a depends on b"); print in run order.
  std::reverse(cycle.begin(), cycle.end());
  return cycle;
}

}  // namespace

absl::Status ValidateWorkflowGraph(const gyre::v1::WorkflowDefinition& definition,
                                   const WorkflowSizeLimits& limits) {
  absl::string_view name = definition.name();
  absl::ConsumePrefix(&name, "workflows/");
  if (!ValidWorkflowName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid workflow name ", QuoteClientText(name),
                     " (lower-case letters, digits and '-'; 1 to 63)"));
  }
  if (definition.tasks().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("workflow \"", name, "\" has no tasks"));
  }
  // Stored whole in one log record with every execution of it.
  if (const size_t bytes = definition.ByteSizeLong(); bytes > limits::kMaxDefinitionBytes) {
    return absl::InvalidArgumentError(absl::StrCat("workflow \"", name, "\" is ", bytes,
                                                   " bytes; a definition is at most ",
                                                   limits::kMaxDefinitionBytes));
  }
  if (definition.tasks_size() > limits.max_tasks) {
    return absl::InvalidArgumentError(
        absl::StrCat("workflow \"", name, "\" has ", definition.tasks_size(), " tasks; at most ",
                     limits.max_tasks, " are accepted (the orchestrator's max_workflow_tasks)"));
  }
  int64_t edges = 0;
  for (const gyre::v1::TaskSpec& task : definition.tasks()) edges += task.depends_on_size();
  if (edges > limits.max_edges) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workflow \"", name, "\" has ", edges, " dependencies (depends_on entries); at most ",
        limits.max_edges, " are accepted (the orchestrator's max_workflow_edges)"));
  }
  if (absl::Status status = ValidateContextMap(definition.default_context()); !status.ok()) {
    return status;
  }
  // Views into `definition`, which outlives the index.
  absl::flat_hash_map<absl::string_view, int> index;
  index.reserve(static_cast<size_t>(definition.tasks_size()));
  for (int i = 0; i < definition.tasks_size(); ++i) {
    const gyre::v1::TaskSpec& task = definition.tasks(i);
    if (absl::Status status = CheckTask(task); !status.ok()) return status;
    if (absl::Status status = CheckTaskSizes(task); !status.ok()) return status;
    if (!index.emplace(task.id(), i).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate task id \"", task.id(), "\""));
    }
  }
  for (const gyre::v1::TaskSpec& task : definition.tasks()) {
    for (const std::string& dependency : task.depends_on()) {
      if (!index.contains(dependency)) {
        // A task cannot depend on itself, so it is no suggestion.
        std::vector<std::string> others;
        for (const gyre::v1::TaskSpec& other : definition.tasks()) {
          if (other.id() != task.id()) others.push_back(other.id());
        }
        return TaskError(task, absl::StrCat("unknown dependency ", QuoteClientText(dependency),
                                            DidYouMean(dependency, others)));
      }
    }
  }
  const std::vector<std::string> cycle = FindCycle(definition, index);
  if (!cycle.empty()) {
    // Bounded: a cycle through a million tasks must not make an 8 MB error.
    constexpr size_t kShown = 10;
    if (cycle.size() <= 2 * kShown) {
      return absl::InvalidArgumentError(
          absl::StrCat("dependency cycle: ", absl::StrJoin(cycle, " -> ")));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("dependency cycle of ", cycle.size() - 1,
                     " tasks: ", absl::StrJoin(cycle.begin(), cycle.begin() + kShown, " -> "),
                     " -> ... -> ", absl::StrJoin(cycle.end() - kShown, cycle.end(), " -> ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const gyre::v1::WorkflowDefinition>> SelectTargets(
    std::shared_ptr<const gyre::v1::WorkflowDefinition> definition,
    const std::vector<std::string>& targets) {
  if (targets.empty()) return definition;
  absl::flat_hash_map<std::string, int> index;
  std::vector<std::string> ids;
  for (int i = 0; i < definition->tasks_size(); ++i) {
    index[definition->tasks(i).id()] = i;
    ids.push_back(definition->tasks(i).id());
  }
  absl::flat_hash_set<int> selected;
  std::vector<int> stack;
  for (const std::string& target : targets) {
    auto it = index.find(target);
    if (it == index.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown target task ", QuoteClientText(target), DidYouMean(target, ids)));
    }
    stack.push_back(it->second);
  }
  while (!stack.empty()) {
    const int next = stack.back();
    stack.pop_back();
    if (!selected.insert(next).second) continue;
    for (const std::string& dependency : definition->tasks(next).depends_on()) {
      stack.push_back(index.at(dependency));
    }
  }
  auto subset = std::make_shared<gyre::v1::WorkflowDefinition>(*definition);
  subset->clear_tasks();
  for (int i = 0; i < definition->tasks_size(); ++i) {
    if (selected.contains(i)) *subset->add_tasks() = definition->tasks(i);
  }
  return subset;
}

namespace {

constexpr absl::string_view kDecisionShape =
    "a decision is {\"run\": [task ids], \"skip\": [task ids], \"start\": [{\"workflow\": name, "
    "\"context\": {KEY: \"value\"}}], \"context\": {KEY: \"value\"}}, every key optional";

absl::Status DecisionError(absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("evaluator output: ", problem, " (", kDecisionShape, ")"));
}

// The JSON type of a value, for messages.
absl::string_view TypeName(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNullValue:
      return "null";
    case google::protobuf::Value::kNumberValue:
      return "a number";
    case google::protobuf::Value::kStringValue:
      return "a string";
    case google::protobuf::Value::kBoolValue:
      return "a boolean";
    case google::protobuf::Value::kStructValue:
      return "an object";
    case google::protobuf::Value::kListValue:
      return "a list";
    default:
      return "nothing";
  }
}

// A list of names (task ids, or workflow names), each a string of 1 to
// kMaxDecisionNameBytes bytes, at most `max_items` of them.
absl::Status ReadNames(const google::protobuf::Value& value, absl::string_view field,
                       size_t max_items, google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!value.has_list_value()) {
    return DecisionError(absl::StrCat("\"", field, "\" is ", TypeName(value), ", not a list"));
  }
  const auto& items = value.list_value().values();
  if (static_cast<size_t>(items.size()) > max_items) {
    return DecisionError(
        absl::StrCat("\"", field, "\" has ", items.size(), " entries; at most ", max_items));
  }
  for (int i = 0; i < items.size(); ++i) {
    if (!items[i].has_string_value()) {
      return DecisionError(absl::StrCat("\"", field, "\" entry ", i, " is ", TypeName(items[i]),
                                        ", not a task id string"));
    }
    const std::string& name = items[i].string_value();
    if (name.empty() || name.size() > kMaxDecisionNameBytes) {
      return DecisionError(absl::StrCat("\"", field, "\" entry ", i, " ", QuoteClientText(name),
                                        " is not 1 to ", kMaxDecisionNameBytes, " bytes long"));
    }
    out->Add(std::string(name));
  }
  return absl::OkStatus();
}

// An object of string values.
absl::Status ReadContext(const google::protobuf::Value& value, absl::string_view field,
                         google::protobuf::Map<std::string, std::string>* out) {
  if (!value.has_struct_value()) {
    return DecisionError(absl::StrCat("\"", field, "\" is ", TypeName(value), ", not an object"));
  }
  for (const auto& [key, item] : value.struct_value().fields()) {
    if (!item.has_string_value()) {
      return DecisionError(absl::StrCat("\"", field, "\" value of ", QuoteClientText(key), " is ",
                                        TypeName(item), ", not a string"));
    }
    (*out)[key] = item.string_value();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<gyre::v1::EvaluatorDecision> EvaluatorDecisionFromJson(
    const google::protobuf::Struct& object) {
  gyre::v1::EvaluatorDecision decision;
  for (const auto& [key, value] : object.fields()) {
    absl::Status status;
    if (key == "run") {
      status = ReadNames(value, "run", kMaxDecisionTasks, decision.mutable_run());
    } else if (key == "skip") {
      status = ReadNames(value, "skip", kMaxDecisionTasks, decision.mutable_skip());
    } else if (key == "context") {
      status = ReadContext(value, "context", decision.mutable_context());
    } else if (key == "start") {
      if (!value.has_list_value()) {
        return DecisionError(absl::StrCat("\"start\" is ", TypeName(value), ", not a list"));
      }
      const auto& starts = value.list_value().values();
      if (static_cast<size_t>(starts.size()) > kMaxDecisionStarts) {
        return DecisionError(absl::StrCat("\"start\" has ", starts.size(), " entries; at most ",
                                          kMaxDecisionStarts));
      }
      for (int i = 0; status.ok() && i < starts.size(); ++i) {
        const std::string field = absl::StrCat("start[", i, "]");
        if (!starts[i].has_struct_value()) {
          return DecisionError(
              absl::StrCat("\"", field, "\" is ", TypeName(starts[i]), ", not an object"));
        }
        gyre::v1::EvaluatorDecision::StartWorkflow& start = *decision.add_start();
        for (const auto& [start_key, start_value] : starts[i].struct_value().fields()) {
          if (start_key == "workflow") {
            google::protobuf::RepeatedPtrField<std::string> name;
            google::protobuf::Value one;
            *one.mutable_list_value()->add_values() = start_value;
            status = ReadNames(one, field + ".workflow", 1, &name);
            if (status.ok()) start.set_workflow(name[0]);
          } else if (start_key == "context") {
            status = ReadContext(start_value, field + ".context", start.mutable_context());
          } else {
            status = DecisionError(absl::StrCat("unknown key ", QuoteClientText(start_key),
                                                " in \"", field, "\"",
                                                DidYouMean(start_key, {"workflow", "context"})));
          }
          if (!status.ok()) break;
        }
        if (status.ok() && start.workflow().empty()) {
          status = DecisionError(absl::StrCat("\"", field, "\" names no workflow"));
        }
      }
    } else {
      status = DecisionError(absl::StrCat("unknown key ", QuoteClientText(key),
                                          DidYouMean(key, {"run", "skip", "start", "context"})));
    }
    if (!status.ok()) return status;
  }
  return decision;
}

absl::StatusOr<gyre::v1::EvaluatorDecision> ParseEvaluatorDecision(const std::string& json) {
  if (json.empty()) {
    return absl::InvalidArgumentError(
        "evaluator output: empty (print a JSON decision or write it to $GYRE_OUTPUT)");
  }
  if (absl::Status status =
          CheckJsonBounds(json, kMaxOutputJsonBytes, kMaxOutputJsonDepth, "evaluator output");
      !status.ok()) {
    return status;
  }
  google::protobuf::Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &object);
  if (!status.ok()) {
    // The parser's message goes on to draw the spot over further lines.
    const std::string message = status.message().as_string();
    return DecisionError(
        absl::StrCat("not a JSON object: ", message.substr(0, message.find('\n'))));
  }
  return EvaluatorDecisionFromJson(object);
}

absl::Status ValidateDecisionContexts(const gyre::v1::EvaluatorDecision& decision) {
  absl::Status status = ValidateContextMap(decision.context());
  for (int i = 0; status.ok() && i < decision.start_size(); ++i) {
    status = ValidateContextMap(decision.start(i).context());
  }
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat("evaluator output: ", status.message()));
}

}  // namespace gyre::workflow
