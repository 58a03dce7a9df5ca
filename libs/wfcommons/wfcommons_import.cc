#include "libs/wfcommons/wfcommons_import.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/wfcommons/wfcommons_trace.h"
#include "yaml-cpp/yaml.h"

namespace gyre::wfcommons {
namespace {

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
  absl::StatusOr<Trace> trace = ParseTrace(trace_json);
  if (!trace.ok()) return trace.status();

  ImportSummary totals;
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value
      << (options.workflow_name.empty() ? WorkflowName(trace->name) : options.workflow_name);
  out << YAML::Key << "description" << YAML::Value
      << absl::StrCat("Imported from the WfCommons trace \"", trace->name, "\" (",
                      trace->description, "). Tasks sleep for their recorded runtime x ",
                      options.time_scale, ".");
  out << YAML::Key << "default_queue" << YAML::Value << options.queue;
  out << YAML::Key << "tasks" << YAML::Value << YAML::BeginSeq;
  for (const TraceTask& task : trace->tasks) {
    std::vector<std::string> parents;
    for (int parent : task.parents) parents.push_back(trace->tasks[parent].id);
    totals.tasks++;
    totals.edges += static_cast<int>(parents.size());
    totals.recorded_runtime_seconds += task.runtime_seconds;

    out << YAML::BeginMap;
    out << YAML::Key << "id" << YAML::Value << task.id;
    if (!task.command.empty()) out << YAML::Key << "description" << YAML::Value << task.command;
    out << YAML::Key << "builtin" << YAML::Value << "sleep";
    out << YAML::Key << "duration" << YAML::Value
        << Seconds(task.runtime_seconds * options.time_scale);
    if (!parents.empty()) {
      out << YAML::Key << "depends_on" << YAML::Value << YAML::Flow << parents;
    }
    // The task's input size as context values (numbers in its environment):
    // what the predictor regresses duration and memory on.
    if (task.input_count > 0) {
      out << YAML::Key << "env" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key
          << "input_bytes" << YAML::Value << std::to_string(task.input_bytes) << YAML::Key
          << "input_count" << YAML::Value << std::to_string(task.input_count) << YAML::EndMap;
    }
    if (task.cpu_cores > 0 || task.memory_bytes > 0) {
      out << YAML::Key << "resources" << YAML::Value << YAML::Flow << YAML::BeginMap;
      if (task.cpu_cores > 0) {
        out << YAML::Key << "cpu" << YAML::Value << absl::StrFormat("%.2f", task.cpu_cores);
      }
      if (task.memory_bytes > 0) out << YAML::Key << "memory" << YAML::Value << task.memory_bytes;
      out << YAML::EndMap;
    }
    const std::string program = task.name.substr(0, task.name.find("_ID"));
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
