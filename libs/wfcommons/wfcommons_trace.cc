#include "libs/wfcommons/wfcommons_trace.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <queue>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

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

// Sizes of the files the specification lists, by id.
absl::flat_hash_map<std::string, int64_t> FileSizes(const Struct& specification) {
  absl::flat_hash_map<std::string, int64_t> sizes;
  if (const ListValue* files = ListField(specification, "files")) {
    for (const Value& item : files->values()) {
      if (!item.has_struct_value()) continue;
      const double size = NumberField(item.struct_value(), "sizeInBytes", 0);
      sizes[StringField(item.struct_value(), "id")] =
          std::isfinite(size) && size > 0 ? static_cast<int64_t>(size) : 0;
    }
  }
  return sizes;
}

void SumFiles(const Struct& task, const std::string& key,
              const absl::flat_hash_map<std::string, int64_t>& sizes, int64_t* bytes, int* count) {
  const ListValue* files = ListField(task, key);
  if (files == nullptr) return;
  for (const Value& file : files->values()) {
    if (count != nullptr) ++*count;
    auto it = sizes.find(file.string_value());
    if (it != sizes.end()) *bytes += it->second;
  }
}

// Fills the recorded run of each task from workflow.execution.tasks.
absl::Status ReadExecution(const Struct& workflow,
                           const absl::flat_hash_map<std::string, int>& index, Trace* trace) {
  const Struct* execution = ObjectField(workflow, "execution");
  const ListValue* tasks = execution != nullptr ? ListField(*execution, "tasks") : nullptr;
  if (tasks == nullptr) {
    return absl::InvalidArgumentError("workflow.execution.tasks is missing: not a WfFormat trace");
  }
  trace->makespan_seconds = std::max(0.0, NumberField(*execution, "makespanInSeconds", 0));
  std::vector<bool> seen(trace->tasks.size(), false);
  for (const Value& item : tasks->values()) {
    if (!item.has_struct_value()) continue;
    const Struct& record = item.struct_value();
    const std::string id = StringField(record, "id");
    if (id.empty()) return absl::InvalidArgumentError("an execution task has no \"id\"");
    auto found = index.find(id);
    if (found == index.end()) continue;  // a record without a specification task is ignored
    TraceTask& task = trace->tasks[found->second];
    seen[found->second] = true;
    task.runtime_seconds = NumberField(record, "runtimeInSeconds", 0);
    if (task.runtime_seconds < 0 || !std::isfinite(task.runtime_seconds)) {
      return absl::InvalidArgumentError(
          absl::StrCat("task \"", id, "\": runtimeInSeconds is negative or not a number"));
    }
    const double cpu = NumberField(record, "avgCPU", 0) / 100.0;
    task.cpu_cores = std::isfinite(cpu) ? std::max(0.0, cpu) : 0;
    const double memory = NumberField(record, "memoryInBytes", 0);
    task.memory_bytes = std::isfinite(memory) && memory > 0 ? static_cast<int64_t>(memory) : 0;
    if (const Struct* command = ObjectField(record, "command")) {
      task.program = StringField(*command, "program");
      std::vector<std::string> words = {task.program};
      if (const ListValue* arguments = ListField(*command, "arguments")) {
        for (const Value& argument : arguments->values()) {
          if (argument.has_string_value()) words.push_back(argument.string_value());
        }
      }
      task.command = absl::StrJoin(words, " ");
    }
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task \"", trace->tasks[i].id, "\" has no record in workflow.execution.tasks"));
    }
  }
  return absl::OkStatus();
}

// Nextflow records a shell script as the program; its process name (the
// specification name) is what identifies the kind of task there.
std::string TaskType(const Trace& trace, const TraceTask& task) {
  if (trace.system == "nextflow" || task.program.empty() ||
      task.program.find_first_of(" \t\n") != std::string::npos) {
    return task.name;
  }
  return task.program;
}

}  // namespace

absl::StatusOr<Trace> ParseTrace(absl::string_view trace_json) {
  Struct root;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(trace_json.data(), trace_json.size()), &root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", parsed.message().as_string()));
  }
  Trace trace;
  trace.name = StringField(root, "name");
  trace.description = StringField(root, "description");
  if (const Struct* system = ObjectField(root, "runtimeSystem")) {
    trace.system = absl::AsciiStrToLower(StringField(*system, "name"));
  }
  const Struct* workflow = ObjectField(root, "workflow");
  const Struct* specification =
      workflow != nullptr ? ObjectField(*workflow, "specification") : nullptr;
  const ListValue* tasks = specification != nullptr ? ListField(*specification, "tasks") : nullptr;
  if (tasks == nullptr) {
    return absl::InvalidArgumentError(
        "workflow.specification.tasks is missing: not a WfFormat 1.4+ trace");
  }
  const absl::flat_hash_map<std::string, int64_t> sizes = FileSizes(*specification);
  absl::flat_hash_map<std::string, int> index;
  for (const Value& item : tasks->values()) {
    if (!item.has_struct_value()) {
      return absl::InvalidArgumentError("workflow.specification.tasks holds a non-object");
    }
    const Struct& spec = item.struct_value();
    TraceTask task;
    task.id = StringField(spec, "id");
    if (task.id.empty()) return absl::InvalidArgumentError("a specification task has no \"id\"");
    if (!index.emplace(task.id, static_cast<int>(trace.tasks.size())).second) {
      return absl::InvalidArgumentError(absl::StrCat("task id \"", task.id, "\" appears twice"));
    }
    task.name = StringField(spec, "name");
    if (task.name.empty()) task.name = task.id;
    SumFiles(spec, "inputFiles", sizes, &task.input_bytes, &task.input_count);
    SumFiles(spec, "outputFiles", sizes, &task.output_bytes, nullptr);
    trace.tasks.push_back(std::move(task));
  }
  // Parents, checked against the ids; children derived from them (some
  // traces omit "children").
  for (int i = 0; i < static_cast<int>(trace.tasks.size()); ++i) {
    const ListValue* parents = ListField(tasks->values(i).struct_value(), "parents");
    if (parents == nullptr) continue;
    for (const Value& parent : parents->values()) {
      auto found = index.find(parent.string_value());
      if (found == index.end()) {
        return absl::InvalidArgumentError(absl::StrCat("task \"", trace.tasks[i].id,
                                                       "\": parent \"", parent.string_value(),
                                                       "\" is not a task"));
      }
      trace.tasks[i].parents.push_back(found->second);
      trace.tasks[found->second].children.push_back(i);
    }
  }
  if (absl::Status status = ReadExecution(*workflow, index, &trace); !status.ok()) return status;
  for (TraceTask& task : trace.tasks) task.type = TaskType(trace, task);
  if (TopologicalOrder(trace).size() != trace.tasks.size()) {
    return absl::InvalidArgumentError("the task graph has a cycle");
  }
  return trace;
}

absl::StatusOr<Trace> ReadTraceFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<Trace> trace = ParseTrace(text.str());
  if (!trace.ok()) {
    return absl::Status(trace.status().code(), absl::StrCat(path, ": ", trace.status().message()));
  }
  return trace;
}

std::vector<int> TopologicalOrder(const Trace& trace) {
  const int n = static_cast<int>(trace.tasks.size());
  std::vector<int> waiting(n);
  // A min-heap on the index keeps ties in specification order.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < n; ++i) {
    waiting[i] = static_cast<int>(trace.tasks[i].parents.size());
    if (waiting[i] == 0) ready.push(i);
  }
  std::vector<int> order;
  order.reserve(n);
  while (!ready.empty()) {
    const int task = ready.top();
    ready.pop();
    order.push_back(task);
    for (int child : trace.tasks[task].children) {
      if (--waiting[child] == 0) ready.push(child);
    }
  }
  return order;  // shorter than n when there is a cycle
}

}  // namespace gyre::wfcommons
