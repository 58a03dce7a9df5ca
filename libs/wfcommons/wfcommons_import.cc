#include "libs/wfcommons/wfcommons_import.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace gyre::wfcommons {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

const Value* Field(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? nullptr : &it->second;
}

const Struct* ObjectField(const Struct& object, const std::string& key) {
  const Value* value = Field(object, key);
  return value != nullptr && value->has_struct_value() ? &value->struct_value() : nullptr;
}

const ListValue* ListField(const Struct& object, const std::string& key) {
  const Value* value = Field(object, key);
  return value != nullptr && value->has_list_value() ? &value->list_value() : nullptr;
}

std::string StringField(const Struct& object, const std::string& key) {
  const Value* value = Field(object, key);
  return value != nullptr && value->has_string_value() ? value->string_value() : "";
}

double NumberField(const Struct& object, const std::string& key, double fallback) {
  const Value* value = Field(object, key);
  return value != nullptr && value->has_number_value() ? value->number_value() : fallback;
}

// Workflow names are lower-case [a-z0-9-]; trace names are free text.
std::string WorkflowName(absl::string_view raw) {
  std::string name;
  for (char c : raw) {
    const char lower = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (absl::ascii_isalnum(static_cast<unsigned char>(lower))) {
      name.push_back(lower);
    } else if (!name.empty() && name.back() != '-') {
      name.push_back('-');
    }
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  if (name.size() > 63) name.resize(63);
  return name.empty() ? "wfcommons" : name;
}

// What the execution section recorded for one task.
struct Recorded {
  double runtime_seconds = 0;
  double cpu_cores = 0;
  int64_t memory_bytes = 0;
  std::string command;
};

absl::StatusOr<absl::flat_hash_map<std::string, Recorded>> RecordedTasks(const Struct& workflow) {
  absl::flat_hash_map<std::string, Recorded> recorded;
  const Struct* execution = ObjectField(workflow, "execution");
  const ListValue* tasks = execution != nullptr ? ListField(*execution, "tasks") : nullptr;
  if (tasks == nullptr) {
    return absl::InvalidArgumentError("workflow.execution.tasks is missing: not a WfFormat trace");
  }
  for (const Value& item : tasks->values()) {
    if (!item.has_struct_value()) continue;
    const Struct& task = item.struct_value();
    const std::string id = StringField(task, "id");
    if (id.empty()) return absl::InvalidArgumentError("an execution task has no \"id\"");
    Recorded& entry = recorded[id];
    entry.runtime_seconds = NumberField(task, "runtimeInSeconds", 0);
    if (entry.runtime_seconds < 0 || !std::isfinite(entry.runtime_seconds)) {
      return absl::InvalidArgumentError(
          absl::StrCat("task \"", id, "\": runtimeInSeconds is negative or not a number"));
    }
    entry.cpu_cores = std::max(0.0, NumberField(task, "avgCPU", 0) / 100.0);
    entry.memory_bytes = static_cast<int64_t>(std::max(0.0, NumberField(task, "memoryInBytes", 0)));
    if (const Struct* command = ObjectField(task, "command")) {
      std::vector<std::string> words = {StringField(*command, "program")};
      if (const ListValue* arguments = ListField(*command, "arguments")) {
        for (const Value& argument : arguments->values()) {
          if (argument.has_string_value()) words.push_back(argument.string_value());
        }
      }
      entry.command = absl::StrJoin(words, " ");
    }
  }
  return recorded;
}

std::string Seconds(double seconds) {
  // Millisecond precision keeps sub-second tasks meaningful after scaling.
  return absl::StrFormat("%.3fs", seconds);
}

}  // namespace

absl::StatusOr<std::string> ConvertWfCommonsTrace(absl::string_view trace_json,
                                                  const ImportOptions& options,
                                                  ImportSummary* summary) {
  if (options.time_scale < 0 || !std::isfinite(options.time_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time scale ", options.time_scale, " must be a non-negative number"));
  }
  Struct trace;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(trace_json.data(), trace_json.size()), &trace);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", parsed.message().as_string()));
  }
  const Struct* workflow = ObjectField(trace, "workflow");
  const Struct* specification =
      workflow != nullptr ? ObjectField(*workflow, "specification") : nullptr;
  const ListValue* tasks = specification != nullptr ? ListField(*specification, "tasks") : nullptr;
  if (tasks == nullptr) {
    return absl::InvalidArgumentError(
        "workflow.specification.tasks is missing: not a WfFormat 1.4+ trace");
  }
  absl::StatusOr<absl::flat_hash_map<std::string, Recorded>> recorded = RecordedTasks(*workflow);
  if (!recorded.ok()) return recorded.status();

  absl::flat_hash_set<std::string> ids;
  for (const Value& item : tasks->values()) {
    if (item.has_struct_value()) ids.insert(StringField(item.struct_value(), "id"));
  }

  ImportSummary totals;
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value
      << (options.workflow_name.empty() ? WorkflowName(StringField(trace, "name"))
                                        : options.workflow_name);
  out << YAML::Key << "description" << YAML::Value
      << absl::StrCat("Imported from the WfCommons trace \"", StringField(trace, "name"), "\" (",
                      StringField(trace, "description"),
                      "). Tasks sleep for their recorded runtime x ", options.time_scale, ".");
  out << YAML::Key << "default_queue" << YAML::Value << options.queue;
  out << YAML::Key << "tasks" << YAML::Value << YAML::BeginSeq;
  for (const Value& item : tasks->values()) {
    if (!item.has_struct_value()) {
      return absl::InvalidArgumentError("workflow.specification.tasks holds a non-object");
    }
    const Struct& task = item.struct_value();
    const std::string id = StringField(task, "id");
    if (id.empty()) return absl::InvalidArgumentError("a specification task has no \"id\"");
    auto found = recorded->find(id);
    if (found == recorded->end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("task \"", id, "\" has no record in workflow.execution.tasks"));
    }
    const Recorded& run = found->second;
    std::vector<std::string> parents;
    if (const ListValue* list = ListField(task, "parents")) {
      for (const Value& parent : list->values()) {
        if (!ids.contains(parent.string_value())) {
          return absl::InvalidArgumentError(absl::StrCat(
              "task \"", id, "\": parent \"", parent.string_value(), "\" is not a task"));
        }
        parents.push_back(parent.string_value());
      }
    }
    totals.tasks++;
    totals.edges += static_cast<int>(parents.size());
    totals.recorded_runtime_seconds += run.runtime_seconds;

    out << YAML::BeginMap;
    out << YAML::Key << "id" << YAML::Value << id;
    if (!run.command.empty()) out << YAML::Key << "description" << YAML::Value << run.command;
    out << YAML::Key << "builtin" << YAML::Value << "sleep";
    out << YAML::Key << "duration" << YAML::Value
        << Seconds(run.runtime_seconds * options.time_scale);
    if (!parents.empty()) {
      out << YAML::Key << "depends_on" << YAML::Value << YAML::Flow << parents;
    }
    if (run.cpu_cores > 0 || run.memory_bytes > 0) {
      out << YAML::Key << "resources" << YAML::Value << YAML::Flow << YAML::BeginMap;
      if (run.cpu_cores > 0) {
        out << YAML::Key << "cpu" << YAML::Value << absl::StrFormat("%.2f", run.cpu_cores);
      }
      if (run.memory_bytes > 0) out << YAML::Key << "memory" << YAML::Value << run.memory_bytes;
      out << YAML::EndMap;
    }
    const std::string program =
        StringField(task, "name").substr(0, StringField(task, "name").find("_ID"));
    if (!program.empty()) {
      out << YAML::Key << "labels" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key
          << "program" << YAML::Value << program << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  if (!out.good()) return absl::InternalError(absl::StrCat("YAML emitter: ", out.GetLastError()));
  if (summary != nullptr) *summary = totals;
  return absl::StrCat(out.c_str(), "\n");
}

}  // namespace gyre::wfcommons
