#include "libs/wfcommons/wfcommons_trace.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace gyre::wfcommons {
namespace {

constexpr char kDiamond[] = R"json({
  "name": "Diamond", "description": "four tasks",
  "runtimeSystem": {"name": "Pegasus"},
  "workflow": {
    "specification": {
      "tasks": [
        {"name": "split_ID1", "id": "a", "parents": [], "inputFiles": ["in", "ref"], "outputFiles": ["x"]},
        {"name": "work_ID2", "id": "b", "parents": ["a"], "inputFiles": ["x"]},
        {"name": "work_ID3", "id": "c", "parents": ["a"], "inputFiles": ["x", "missing"]},
        {"name": "join_ID4", "id": "d", "parents": ["b", "c"]}
      ],
      "files": [{"id": "in", "sizeInBytes": 100}, {"id": "ref", "sizeInBytes": 20},
                {"id": "x", "sizeInBytes": 5}]
    },
    "execution": {
      "makespanInSeconds": 9,
      "tasks": [
        {"id": "d", "runtimeInSeconds": 1, "command": {"program": "join"}},
        {"id": "a", "runtimeInSeconds": 2, "avgCPU": 150, "memoryInBytes": 4096,
         "command": {"program": "split", "arguments": ["-n", "2"]}},
        {"id": "b", "runtimeInSeconds": 3, "command": {"program": "work"}},
        {"id": "c", "runtimeInSeconds": 4, "command": {"program": "work"}}
      ]
    }
  }
})json";

TEST(WfCommonsTraceTest, ReadsTheDagTheRunAndTheFileSizes) {
  absl::StatusOr<Trace> trace = ParseTrace(kDiamond);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->name, "Diamond");
  EXPECT_EQ(trace->system, "pegasus");
  EXPECT_DOUBLE_EQ(trace->makespan_seconds, 9);
  ASSERT_EQ(trace->tasks.size(), 4u);
  const TraceTask& a = trace->tasks[0];
  EXPECT_EQ(a.type, "split");
  EXPECT_EQ(a.command, "split -n 2");
  EXPECT_DOUBLE_EQ(a.runtime_seconds, 2);
  EXPECT_DOUBLE_EQ(a.cpu_cores, 1.5);
  EXPECT_EQ(a.memory_bytes, 4096);
  EXPECT_EQ(a.input_bytes, 120);
  EXPECT_EQ(a.input_count, 2);
  EXPECT_EQ(a.output_bytes, 5);
  EXPECT_EQ(a.children, (std::vector<int>{1, 2}));
  // An input the files list does not size counts, with no bytes.
  EXPECT_EQ(trace->tasks[2].input_count, 2);
  EXPECT_EQ(trace->tasks[2].input_bytes, 5);
  EXPECT_EQ(trace->tasks[3].parents, (std::vector<int>{1, 2}));
  EXPECT_EQ(TopologicalOrder(*trace), (std::vector<int>{0, 1, 2, 3}));
}

TEST(WfCommonsTraceTest, NextflowTasksAreTypedByProcessName) {
  std::string json = kDiamond;
  json.replace(json.find("Pegasus"), 7, "Nextflow");
  absl::StatusOr<Trace> trace = ParseTrace(json);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->tasks[1].type, "work_ID2");
}

TEST(WfCommonsTraceTest, BrokenTracesSayWhatIsWrong) {
  std::string unknown_parent = kDiamond;
  unknown_parent.replace(unknown_parent.find("[\"b\", \"c\"]"), 10, "[\"b\", \"z\"]");
  EXPECT_EQ(ParseTrace(unknown_parent).status().message(),
            "task \"d\": parent \"z\" is not a task");

  std::string cycle = kDiamond;
  cycle.replace(cycle.find("\"parents\": [], \"inputFiles\""), 13, "\"parents\": [\"d\"]");
  EXPECT_EQ(ParseTrace(cycle).status().message(), "the task graph has a cycle");

  std::string unrecorded = kDiamond;
  unrecorded.replace(unrecorded.find("{\"id\": \"d\""), 10, "{\"id\": \"q\"");
  EXPECT_EQ(ParseTrace(unrecorded).status().message(),
            "task \"d\" has no record in workflow.execution.tasks");

  EXPECT_EQ(ParseTrace("{").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WfCommonsTraceTest, ReadsTheShippedMontageTrace) {
  const char* dir = std::getenv("GYRE_WFCOMMONS_DIR");
  ASSERT_NE(dir, nullptr);
  absl::StatusOr<Trace> trace =
      ReadTraceFile(std::string(dir) + "/pegasus/montage/montage-chameleon-2mass-01d-001.json");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->tasks.size(), 103u);
  EXPECT_EQ(TopologicalOrder(*trace).size(), 103u);
  EXPECT_EQ(trace->tasks[0].type, "mProject");
  EXPECT_GT(trace->tasks[0].input_bytes, 0);
  EXPECT_FALSE(ReadTraceFile("/nonexistent.json").ok());
}

}  // namespace
}  // namespace gyre::wfcommons
