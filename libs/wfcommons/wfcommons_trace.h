#ifndef GYRE_LIBS_WFCOMMONS_WFCOMMONS_TRACE_H_
#define GYRE_LIBS_WFCOMMONS_WFCOMMONS_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::wfcommons {

// One task of a WfCommons trace: its place in the DAG and what the recorded
// run used. The predictor's evaluation, the scheduler's simulator and the
// optimizer read traces through this, so they all agree on what a trace says.
struct TraceTask {
  std::string id;    // unique within the trace
  std::string name;  // specification name
  // What makes two tasks "the same kind": the program for Pegasus and
  // Makeflow (command.program, e.g. "mProject"), the process name for
  // Nextflow (the specification name, e.g. "NFCORE_RNASEQ.RNASEQ.FASTQC").
  std::string type;
  std::string program;        // command.program, as recorded (may be a script)
  std::string command;        // program and arguments joined by spaces
  std::vector<int> parents;   // indices into Trace::tasks
  std::vector<int> children;  // indices into Trace::tasks
  double runtime_seconds = 0;
  double cpu_cores = 0;      // avgCPU / 100; 0 when not recorded
  int64_t memory_bytes = 0;  // peak; 0 when not recorded
  int64_t input_bytes = 0;   // sum of the sizes of inputFiles that the trace lists
  int input_count = 0;       // number of inputFiles
  int64_t output_bytes = 0;  // sum of the sizes of outputFiles
};

// A whole trace. Tasks keep the specification's order.
struct Trace {
  std::string name;         // the trace's "name"
  std::string description;  // the trace's "description"
  std::string system;       // runtimeSystem.name lower-cased: "pegasus", "makeflow", "nextflow"
  double makespan_seconds = 0;
  std::vector<TraceTask> tasks;
};

// Parses WfFormat 1.4/1.5 JSON. InvalidArgument names the task or field that
// is wrong (missing execution record, unknown parent, negative runtime, a
// cycle).
absl::StatusOr<Trace> ParseTrace(absl::string_view trace_json);

// Reads and parses one file; errors are prefixed with the path.
absl::StatusOr<Trace> ReadTraceFile(const std::string& path);

// Indices of the tasks with every parent before its children (Kahn's order,
// ties by specification order, so it is deterministic).
std::vector<int> TopologicalOrder(const Trace& trace);

}  // namespace gyre::wfcommons

#endif  // GYRE_LIBS_WFCOMMONS_WFCOMMONS_TRACE_H_
