#include "libs/workflow/workflow_parser.h"

#include <google/protobuf/util/time_util.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/common/nearest_match.h"
#include "libs/common/yaml_bounds.h"
#include "libs/workflow/context_keys.h"
#include "libs/workflow/task_library.h"
#include "libs/workflow/workflow_graph.h"
#include "yaml-cpp/yaml.h"

namespace gyre::workflow {
namespace {

namespace v1 = ::gyre::v1;
using google::protobuf::util::TimeUtil;

const std::vector<std::string> kWorkflowKeys = {
    "name", "description", "context", "context_passthrough", "default_queue", "tasks"};
const std::vector<std::string> kTaskKeys = {
    "id",      "description", "command",  "shell",  "builtin",        "duration",
    "env",     "depends_on",  "queue",    "labels", "agent_selector", "resources",
    "timeout", "retries",     "priority", "global", "evaluator",      "outputs"};
const std::vector<std::string> kResourceKeys = {"cpu", "memory", "gpu"};
const std::vector<std::string> kRetryKeys = {"count", "initial_backoff", "max_backoff",
                                             "multiplier", "jitter"};

// Builds messages that say where: "source:line:col: ...".
class Reporter {
 public:
  explicit Reporter(absl::string_view source) : source_(source) {}

  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return source_;
    return absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1);
  }

  absl::Status Error(const YAML::Node& node, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(Where(node.Mark()), ": ", message));
  }

 private:
  std::string source_;
};

// Context prefix for task errors.
std::string TaskPrefix(const std::string& id) {
  return id.empty() ? "" : absl::StrCat("task \"", id, "\": ");
}

absl::Status CheckKeys(const YAML::Node& map, const std::vector<std::string>& allowed,
                       const std::string& prefix, const Reporter& report) {
  for (const auto& entry : map) {
    const std::string key = entry.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return report.Error(
          entry.first, absl::StrCat(prefix, "unknown key \"", key, "\"", DidYouMean(key, allowed)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Scalar(const YAML::Node& node, const std::string& what,
                                   const Reporter& report) {
  if (!node.IsScalar()) return report.Error(node, absl::StrCat(what, ": expected a single value"));
  return node.Scalar();
}

absl::StatusOr<int64_t> Integer(const YAML::Node& node, const std::string& what, int64_t min,
                                int64_t max, const Reporter& report) {
  absl::StatusOr<std::string> text = Scalar(node, what, report);
  if (!text.ok()) return text.status();
  int64_t value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    return report.Error(node, absl::StrCat(what, ": invalid integer \"", *text, "\""));
  }
  if (value < min || value > max) {
    return report.Error(
        node, absl::StrCat(what, ": value ", value, " is out of range [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<double> Number(const YAML::Node& node, const std::string& what, double min,
                              double max, const Reporter& report) {
  absl::StatusOr<std::string> text = Scalar(node, what, report);
  if (!text.ok()) return text.status();
  double value = 0;
  if (!absl::SimpleAtod(*text, &value) || !std::isfinite(value)) {
    return report.Error(node, absl::StrCat(what, ": invalid number \"", *text, "\""));
  }
  if (value < min || value > max) {
    return report.Error(
        node, absl::StrCat(what, ": value ", value, " is out of range [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<bool> Boolean(const YAML::Node& node, const std::string& what,
                             const Reporter& report) {
  absl::StatusOr<std::string> text = Scalar(node, what, report);
  if (!text.ok()) return text.status();
  const std::string lower = absl::AsciiStrToLower(*text);
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  return report.Error(
      node, absl::StrCat(what, ": invalid boolean \"", *text, "\" (expected true or false)"));
}

absl::StatusOr<google::protobuf::Duration> Duration(const YAML::Node& node, const std::string& what,
                                                    const Reporter& report) {
  absl::StatusOr<std::string> text = Scalar(node, what, report);
  if (!text.ok()) return text.status();
  absl::Duration duration;
  if (!absl::ParseDuration(*text, &duration) || duration <= absl::ZeroDuration() ||
      duration == absl::InfiniteDuration()) {
    return report.Error(node, absl::StrCat(what, ": invalid duration \"", *text,
                                           "\" (expected e.g. \"30s\", \"10m\", \"1h30m\")"));
  }
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
}

absl::StatusOr<int64_t> Memory(const YAML::Node& node, const std::string& what,
                               const Reporter& report) {
  absl::StatusOr<std::string> text = Scalar(node, what, report);
  if (!text.ok()) return text.status();
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"Ki", 1024.0},
      {"Mi", 1024.0 * 1024},
      {"Gi", 1024.0 * 1024 * 1024},
      {"Ti", 1024.0 * 1024 * 1024 * 1024},
      {"K", 1e3},
      {"M", 1e6},
      {"G", 1e9},
      {"T", 1e12}};
  absl::string_view number = *text;
  double factor = 1;
  for (const auto& [suffix, scale] : kUnits) {
    if (absl::ConsumeSuffix(&number, suffix)) {
      factor = scale;
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || value < 0 || !std::isfinite(value)) {
    return report.Error(node, absl::StrCat(what, ": invalid memory \"", *text,
                                           "\" (expected bytes or e.g. 512Mi, 4Gi)"));
  }
  return static_cast<int64_t>(value * factor);
}

absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node, const std::string& what,
                                                    const Reporter& report) {
  std::vector<std::string> items;
  if (node.IsScalar()) {
    items.push_back(node.Scalar());
  } else if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      if (!item.IsScalar()) return report.Error(item, absl::StrCat(what, ": expected strings"));
      items.push_back(item.Scalar());
    }
  } else if (!node.IsNull()) {
    return report.Error(node, absl::StrCat(what, ": expected a list of strings"));
  }
  return items;
}

absl::Status StringMap(const YAML::Node& node, const std::string& what, const Reporter& report,
                       google::protobuf::Map<std::string, std::string>* out) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) return report.Error(node, absl::StrCat(what, ": expected a map"));
  for (const auto& entry : node) {
    if (!entry.second.IsScalar()) {
      return report.Error(entry.second, absl::StrCat(what, ": value of \"", entry.first.Scalar(),
                                                     "\" must be a single value"));
    }
    (*out)[entry.first.Scalar()] = entry.second.Scalar();
  }
  return absl::OkStatus();
}

absl::Status ParseRetries(const YAML::Node& node, const std::string& prefix, const Reporter& report,
                          v1::RetryPolicy* retry) {
  if (node.IsScalar()) {
    absl::StatusOr<int64_t> count = Integer(node, prefix + "retries", 0, 100, report);
    if (!count.ok()) return count.status();
    retry->set_max_retries(static_cast<int32_t>(*count));
    return absl::OkStatus();
  }
  if (!node.IsMap()) return report.Error(node, prefix + "retries: expected a count or a map");
  if (absl::Status status = CheckKeys(node, kRetryKeys, prefix + "retries: ", report);
      !status.ok()) {
    return status;
  }
  if (node["count"]) {
    absl::StatusOr<int64_t> count =
        Integer(node["count"], prefix + "retries.count", 0, 100, report);
    if (!count.ok()) return count.status();
    retry->set_max_retries(static_cast<int32_t>(*count));
  }
  for (const char* key : {"initial_backoff", "max_backoff"}) {
    if (!node[key]) continue;
    absl::StatusOr<google::protobuf::Duration> value =
        Duration(node[key], absl::StrCat(prefix, "retries.", key), report);
    if (!value.ok()) return value.status();
    *(std::string(key) == "initial_backoff" ? retry->mutable_initial_backoff()
                                            : retry->mutable_max_backoff()) = *value;
  }
  if (node["multiplier"]) {
    absl::StatusOr<double> value =
        Number(node["multiplier"], prefix + "retries.multiplier", 1, 100, report);
    if (!value.ok()) return value.status();
    retry->set_multiplier(*value);
  }
  if (node["jitter"]) {
    absl::StatusOr<double> value = Number(node["jitter"], prefix + "retries.jitter", 0, 1, report);
    if (!value.ok()) return value.status();
    retry->set_jitter(*value);
  }
  return absl::OkStatus();
}

absl::Status ParseResources(const YAML::Node& node, const std::string& prefix,
                            const Reporter& report, v1::Resources* resources) {
  if (!node.IsMap()) return report.Error(node, prefix + "resources: expected a map");
  if (absl::Status status = CheckKeys(node, kResourceKeys, prefix + "resources: ", report);
      !status.ok()) {
    return status;
  }
  if (node["cpu"]) {
    absl::StatusOr<double> cpu = Number(node["cpu"], prefix + "resources.cpu", 0, 4096, report);
    if (!cpu.ok()) return cpu.status();
    resources->set_cpu(*cpu);
  }
  if (node["memory"]) {
    absl::StatusOr<int64_t> memory = Memory(node["memory"], prefix + "resources.memory", report);
    if (!memory.ok()) return memory.status();
    resources->set_memory_bytes(*memory);
  }
  if (node["gpu"]) {
    absl::StatusOr<int64_t> gpus = Integer(node["gpu"], prefix + "resources.gpu", 0, 64, report);
    if (!gpus.ok()) return gpus.status();
    resources->set_gpus(static_cast<int32_t>(*gpus));
  }
  return absl::OkStatus();
}

absl::Status ParseCommand(const YAML::Node& task, const std::string& prefix, const Reporter& report,
                          v1::TaskSpec* spec) {
  const YAML::Node command = task["command"];
  const YAML::Node builtin = task["builtin"];
  if (command && builtin) {
    return report.Error(builtin, prefix + "set either command or builtin, not both");
  }
  if (!command && !builtin) {
    return report.Error(task, prefix + "needs a command (or builtin: noop | sleep)");
  }
  if (task["shell"]) {
    absl::StatusOr<bool> shell = Boolean(task["shell"], prefix + "shell", report);
    if (!shell.ok()) return shell.status();
    spec->set_shell(*shell);
  }
  if (command) {
    if (command.IsScalar()) {
      if (!spec->shell()) {
        return report.Error(command, prefix +
                                         "command: a string runs in a shell only with "
                                         "shell: true; otherwise give an argv list");
      }
      spec->add_command(command.Scalar());
    } else {
      if (spec->shell())
        return report.Error(command, prefix + "command: with shell: true, give one script string");
      absl::StatusOr<std::vector<std::string>> argv =
          StringList(command, prefix + "command", report);
      if (!argv.ok()) return argv.status();
      if (argv->empty()) return report.Error(command, prefix + "command: empty argv");
      for (std::string& word : *argv) spec->add_command(std::move(word));
    }
  }
  if (builtin) {
    absl::StatusOr<std::string> kind = Scalar(builtin, prefix + "builtin", report);
    if (!kind.ok()) return kind.status();
    if (*kind == "noop") {
      spec->mutable_builtin()->set_kind(v1::BuiltinExecutor::NOOP);
    } else if (*kind == "sleep") {
      spec->mutable_builtin()->set_kind(v1::BuiltinExecutor::SLEEP);
      if (!task["duration"])
        return report.Error(builtin, prefix + "builtin sleep needs a duration");
    } else {
      return report.Error(builtin, absl::StrCat(prefix, "builtin: unknown executor \"", *kind, "\"",
                                                DidYouMean(*kind, {"noop", "sleep"})));
    }
  }
  if (task["duration"]) {
    if (spec->builtin().kind() != v1::BuiltinExecutor::SLEEP) {
      return report.Error(task["duration"], prefix + "duration applies to builtin: sleep only");
    }
    const YAML::Node node = task["duration"];
    absl::StatusOr<std::string> text = Scalar(node, prefix + "duration", report);
    if (!text.ok()) return text.status();
    absl::Duration duration;
    if (!absl::ParseDuration(*text, &duration) || duration < absl::ZeroDuration()) {
      return report.Error(node, absl::StrCat(prefix, "duration: invalid duration \"", *text,
                                             "\" (expected e.g. \"2s\", \"1.5s\")"));
    }
    *spec->mutable_builtin()->mutable_duration() =
        TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
  }
  return absl::OkStatus();
}

absl::Status ParseTask(const YAML::Node& node, const Reporter& report, v1::TaskSpec* spec) {
  if (!node.IsMap()) return report.Error(node, "a task must be a map with at least an id");
  if (!node["id"]) return report.Error(node, "task without an id");
  absl::StatusOr<std::string> id = Scalar(node["id"], "id", report);
  if (!id.ok()) return id.status();
  spec->set_id(*id);
  const std::string prefix = TaskPrefix(*id);
  if (absl::Status status = CheckKeys(node, kTaskKeys, prefix, report); !status.ok()) {
    return status;
  }
  if (node["description"]) spec->set_description(node["description"].Scalar());
  if (absl::Status status = ParseCommand(node, prefix, report, spec); !status.ok()) return status;
  if (node["env"]) {
    if (absl::Status status = StringMap(node["env"], prefix + "env", report, spec->mutable_env());
        !status.ok()) {
      return status;
    }
    for (const auto& entry : node["env"]) {  // here, with positions
      const std::string& key = entry.first.Scalar();
      if (key.empty() || key.find_first_of(std::string("=\0", 2)) != std::string::npos) {
        return report.Error(entry.first, absl::StrCat(prefix, "env: variable name \"",
                                                      absl::CHexEscape(key.substr(0, 64)),
                                                      "\" must be non-empty, without '=' or NUL"));
      }
    }
  }
  if (node["outputs"]) {
    absl::StatusOr<std::vector<std::string>> outputs =
        StringList(node["outputs"], prefix + "outputs", report);
    if (!outputs.ok()) return outputs.status();
    const YAML::Node list = node["outputs"];
    for (size_t i = 0; i < outputs->size(); ++i) {
      if (absl::Status status = ValidateContextKey((*outputs)[i]); !status.ok()) {
        return report.Error(list.IsSequence() ? list[i] : list,
                            absl::StrCat(prefix, "outputs: ", status.message()));
      }
      spec->add_outputs((*outputs)[i]);
    }
  }
  if (node["depends_on"]) {
    absl::StatusOr<std::vector<std::string>> deps =
        StringList(node["depends_on"], prefix + "depends_on", report);
    if (!deps.ok()) return deps.status();
    for (std::string& dep : *deps) spec->add_depends_on(std::move(dep));
  }
  if (node["queue"]) {
    absl::StatusOr<std::string> queue = Scalar(node["queue"], prefix + "queue", report);
    if (!queue.ok()) return queue.status();
    spec->set_queue(*queue);
  }
  for (const char* key : {"labels", "agent_selector"}) {
    if (!node[key]) continue;
    auto* target =
        std::string(key) == "labels" ? spec->mutable_labels() : spec->mutable_agent_selector();
    if (absl::Status status = StringMap(node[key], prefix + key, report, target); !status.ok()) {
      return status;
    }
  }
  if (node["resources"]) {
    if (absl::Status status =
            ParseResources(node["resources"], prefix, report, spec->mutable_resources());
        !status.ok()) {
      return status;
    }
  }
  if (node["timeout"]) {
    absl::StatusOr<google::protobuf::Duration> timeout =
        Duration(node["timeout"], prefix + "timeout", report);
    if (!timeout.ok()) return timeout.status();
    *spec->mutable_timeout() = *timeout;
  }
  if (node["retries"]) {
    if (absl::Status status = ParseRetries(node["retries"], prefix, report, spec->mutable_retry());
        !status.ok()) {
      return status;
    }
  }
  if (node["priority"]) {
    absl::StatusOr<int64_t> priority =
        Integer(node["priority"], prefix + "priority", 0, 100, report);
    if (!priority.ok()) return priority.status();
    spec->set_priority(static_cast<int32_t>(*priority));
  }
  for (const char* key : {"global", "evaluator"}) {
    if (!node[key]) continue;
    absl::StatusOr<bool> value = Boolean(node[key], prefix + key, report);
    if (!value.ok()) return value.status();
    std::string(key) == "global" ? spec->set_global(*value) : spec->set_evaluator(*value);
  }
  return absl::OkStatus();
}

// `context:` defaults (whose keys the workflow declares), checked here, with
// positions.
absl::Status ParseContext(const YAML::Node& node, const Reporter& report,
                          v1::WorkflowDefinition* definition) {
  google::protobuf::Map<std::string, std::string> context;
  if (absl::Status status = StringMap(node, "context", report, &context); !status.ok()) {
    return status;
  }
  for (const auto& entry : node) {
    if (absl::Status status = ValidateContextEntry(entry.first.Scalar(), entry.second.Scalar());
        !status.ok()) {
      return report.Error(entry.first, status.message());
    }
    auto [it, inserted] = definition->mutable_default_context()->insert(
        {entry.first.Scalar(), entry.second.Scalar()});
    if (!inserted && it->second != entry.second.Scalar()) {
      return report.Error(entry.first, absl::StrCat("context \"", entry.first.Scalar(),
                                                    "\" is declared twice with different values"));
    }
  }
  return absl::OkStatus();
}

// Checks ids and dependencies with positions, before the graph validator
// (which has none) looks for cycles. A dependency may name a task of the
// library, when there is one.
absl::Status CheckReferences(const YAML::Node& tasks, const v1::WorkflowDefinition* library,
                             const Reporter& report) {
  absl::flat_hash_map<std::string, YAML::Mark> defined;
  std::vector<std::string> ids;
  for (const YAML::Node& task : tasks) {
    const std::string id = task["id"].Scalar();
    auto [it, inserted] = defined.emplace(id, task["id"].Mark());
    if (!inserted) {
      return report.Error(task["id"],
                          absl::StrCat("duplicate task id \"", id, "\" (first defined at ",
                                       report.Where(it->second), ")"));
    }
    ids.push_back(id);
  }
  if (library != nullptr) {
    for (const v1::TaskSpec& task : library->tasks()) {
      if (defined.emplace(task.id(), YAML::Mark()).second) ids.push_back(task.id());
    }
  }
  for (const YAML::Node& task : tasks) {
    const YAML::Node deps = task["depends_on"];
    if (!deps) continue;
    const std::string prefix = TaskPrefix(task["id"].Scalar());
    std::vector<YAML::Node> items;
    if (deps.IsScalar()) {
      items.push_back(deps);
    } else {
      for (const YAML::Node& item : deps) items.push_back(item);
    }
    for (const YAML::Node& item : items) {
      if (!defined.contains(item.Scalar())) {
        return report.Error(
            item, absl::StrCat(prefix, "unknown dependency \"", item.Scalar(), "\"",
                               library != nullptr
                                   ? ": no task of this workflow or of the task library has that id"
                                   : "",
                               DidYouMean(item.Scalar(), ids)));
      }
    }
  }
  return absl::OkStatus();
}

// A graph error (which has no position) placed at the first task its
// message names, or at the workflow when it names none.
absl::Status PointAtTask(const YAML::Node& tasks, const YAML::Node& root, absl::string_view message,
                         const Reporter& report) {
  for (const YAML::Node& task : tasks) {
    const std::string id = task["id"].Scalar();
    if (absl::StrContains(message, absl::StrCat("\"", id, "\"")) ||
        absl::StrContains(message, absl::StrCat(": ", id, " ->"))) {
      return report.Error(task["id"], message);
    }
  }
  return report.Error(root, message);
}

}  // namespace

absl::StatusOr<v1::WorkflowDefinition> ParseWorkflowYaml(absl::string_view yaml,
                                                         absl::string_view source,
                                                         const v1::WorkflowDefinition* library,
                                                         const WorkflowSizeLimits& limits) {
  const Reporter report(source);
  if (absl::Status status = CheckYaml(yaml, source, kWorkflowYamlLimits); !status.ok()) {
    return status;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(report.Where(e.mark), ": invalid YAML: ", e.msg));
  }
  try {
    if (!root.IsMap()) return report.Error(root, "expected a workflow: a map with name and tasks");
    for (const auto& entry : root) {
      // Said apart from other unknown keys: a user who versions by hand
      // expects the key to exist.
      if (entry.first.IsScalar() && entry.first.Scalar() == "version") {
        return report.Error(entry.first,
                            "version: versions are assigned by the orchestrator (a changed "
                            "definition registered under the same name gets the next one); "
                            "remove this key");
      }
    }
    if (absl::Status status = CheckKeys(root, kWorkflowKeys, "", report); !status.ok()) {
      return status;
    }
    if (!root["name"]) return report.Error(root, "the workflow needs a name");
    v1::WorkflowDefinition definition;
    definition.set_source(std::string(source));
    absl::StatusOr<std::string> name = Scalar(root["name"], "name", report);
    if (!name.ok()) return name.status();
    definition.set_name("workflows/" + *name);
    if (root["description"]) definition.set_description(root["description"].Scalar());
    if (root["default_queue"]) definition.set_default_queue(root["default_queue"].Scalar());
    if (root["context"]) {
      if (absl::Status status = ParseContext(root["context"], report, &definition); !status.ok()) {
        return status;
      }
    }
    if (root["context_passthrough"]) {
      absl::StatusOr<bool> passthrough =
          Boolean(root["context_passthrough"], "context_passthrough", report);
      if (!passthrough.ok()) return passthrough.status();
      definition.set_context_passthrough(*passthrough);
    }
    const YAML::Node tasks = root["tasks"];
    if (!tasks || !tasks.IsSequence() || tasks.size() == 0) {
      return report.Error(tasks ? tasks : root, "the workflow needs a non-empty list of tasks");
    }
    if (static_cast<int64_t>(tasks.size()) > limits.max_tasks) {
      return report.Error(tasks, absl::StrCat("workflow \"", *name, "\" has ", tasks.size(),
                                              " tasks; at most ", limits.max_tasks,
                                              " are accepted (the orchestrator's "
                                              "max_workflow_tasks)"));
    }
    for (const YAML::Node& task : tasks) {
      if (absl::Status status = ParseTask(task, report, definition.add_tasks()); !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = CheckReferences(tasks, library, report); !status.ok()) {
      return status;
    }
    if (library != nullptr) {
      if (absl::Status status = IncludeLibraryTasks(*library, &definition); !status.ok()) {
        return PointAtTask(tasks, root, status.message(), report);
      }
    }
    if (absl::Status status = ValidateWorkflowGraph(definition, limits); !status.ok()) {
      return PointAtTask(tasks, root, status.message(), report);
    }
    return definition;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(report.Where(e.mark), ": ", e.msg));
  }
}

absl::StatusOr<v1::WorkflowDefinition> LoadTaskLibrary(const std::string& dir) {
  std::error_code error;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string extension = entry.path().extension().string();
    if (entry.is_regular_file() && (extension == ".yaml" || extension == ".yml")) {
      files.push_back(entry.path());
    }
  }
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("task library directory \"", dir, "\": ", error.message()));
  }
  std::sort(files.begin(), files.end());
  v1::WorkflowDefinition library;
  library.set_name("workflows/task-library");
  library.set_description(absl::StrCat("Task library loaded from ", dir));
  absl::flat_hash_map<std::string, std::string> defined_in;
  for (const std::filesystem::path& file : files) {
    std::ifstream stream(file);
    std::stringstream text;
    text << stream.rdbuf();
    const Reporter report(file.string());
    if (absl::Status status = CheckYaml(text.str(), file.string(), kWorkflowYamlLimits);
        !status.ok()) {
      return status;
    }
    YAML::Node root;
    try {
      root = YAML::Load(text.str());
      if (!root.IsMap() || !root["tasks"] || !root["tasks"].IsSequence()) {
        return report.Error(root, "a task library file is a map with a list of tasks");
      }
      if (absl::Status status = CheckKeys(root, {"tasks", "context"}, "", report); !status.ok()) {
        return status;
      }
      // What outcomes scheduled from the library may be given (ScheduleOutcome
      // context), merged across files.
      if (root["context"]) {
        if (absl::Status status = ParseContext(root["context"], report, &library); !status.ok()) {
          return status;
        }
      }
      for (const YAML::Node& node : root["tasks"]) {
        v1::TaskSpec* task = library.add_tasks();
        if (absl::Status status = ParseTask(node, report, task); !status.ok()) return status;
        auto [it, inserted] = defined_in.emplace(task->id(), report.Where(node["id"].Mark()));
        if (!inserted) {
          return report.Error(node["id"], absl::StrCat("duplicate task id \"", task->id(),
                                                       "\" (first defined at ", it->second, ")"));
        }
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(report.Where(e.mark), ": invalid YAML: ", e.msg));
    }
  }
  if (library.tasks().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task library directory \"", dir, "\" holds no tasks (*.yaml files)"));
  }
  if (absl::Status status = ValidateWorkflowGraph(library); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("task library ", dir, ": ", status.message()));
  }
  return library;
}

absl::StatusOr<v1::WorkflowDefinition> LoadWorkflowFile(const std::string& path,
                                                        const v1::WorkflowDefinition* library) {
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(
        absl::StrCat("workflow file \"", path, "\": ", std::strerror(errno)));
  }
  // Refused before it is read into memory.
  std::error_code error;
  if (const uintmax_t bytes = std::filesystem::file_size(path, error);
      !error && bytes > kWorkflowYamlLimits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the YAML is ", bytes,
                                                   " bytes; at most ",
                                                   kWorkflowYamlLimits.max_bytes, " are accepted"));
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseWorkflowYaml(text.str(), path, library);
}

}  // namespace gyre::workflow
