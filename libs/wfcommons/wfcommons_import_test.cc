#include "libs/wfcommons/wfcommons_import.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace gyre::wfcommons {
namespace {

constexpr char kSmallTrace[] = R"json({
  "name": "Tiny Montage",
  "description": "two tasks",
  "schemaVersion": "1.5",
  "workflow": {
    "specification": {
      "tasks": [
        {"name": "mProject_ID01", "id": "mProject_ID01", "parents": [], "children": ["mAdd_ID02"],
         "inputFiles": ["a.fits", "a.hdr"]},
        {"name": "mAdd_ID02", "id": "mAdd_ID02", "parents": ["mProject_ID01"], "children": []}
      ],
      "files": [{"id": "a.fits", "sizeInBytes": 4000}, {"id": "a.hdr", "sizeInBytes": 96}]
    },
    "execution": {
      "tasks": [
        {"id": "mProject_ID01", "runtimeInSeconds": 10.0, "avgCPU": 150.0,
         "memoryInBytes": 1000, "command": {"program": "mProject", "arguments": ["-X", "a.fits"]}},
        {"id": "mAdd_ID02", "runtimeInSeconds": 2.5}
      ]
    }
  }
})json";

TEST(WfCommonsImportTest, ConvertsTasksDependenciesAndScaledRuntime) {
  ImportSummary summary;
  auto yaml = ConvertWfCommonsTrace(kSmallTrace, {0.1, "", "default"}, &summary);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const YAML::Node workflow = YAML::Load(*yaml);
  EXPECT_EQ(workflow["name"].as<std::string>(), "tiny-montage");
  ASSERT_EQ(workflow["tasks"].size(), 2u);
  const YAML::Node first = workflow["tasks"][0];
  EXPECT_EQ(first["id"].as<std::string>(), "mProject_ID01");
  EXPECT_EQ(first["builtin"].as<std::string>(), "sleep");
  EXPECT_EQ(first["duration"].as<std::string>(), "1.000s");
  EXPECT_EQ(first["description"].as<std::string>(), "mProject -X a.fits");
  EXPECT_EQ(first["resources"]["cpu"].as<std::string>(), "1.50");
  EXPECT_EQ(first["resources"]["memory"].as<int64_t>(), 1000);
  EXPECT_EQ(first["labels"]["program"].as<std::string>(), "mProject");
  // The input size, as numeric context values for the predictor.
  EXPECT_EQ(first["env"]["input_bytes"].as<std::string>(), "4096");
  EXPECT_EQ(first["env"]["input_count"].as<std::string>(), "2");
  const YAML::Node second = workflow["tasks"][1];
  EXPECT_EQ(second["duration"].as<std::string>(), "0.250s");
  EXPECT_EQ(second["depends_on"][0].as<std::string>(), "mProject_ID01");
  EXPECT_FALSE(second["env"]) << "no input files: no size to record";
  EXPECT_EQ(summary.tasks, 2);
  EXPECT_EQ(summary.edges, 1);
  EXPECT_DOUBLE_EQ(summary.recorded_runtime_seconds, 12.5);
}

TEST(WfCommonsImportTest, UnknownParentIsNamed) {
  std::string trace = kSmallTrace;
  trace.replace(trace.find("\"parents\": [\"mProject_ID01\"]"), 28,
                "\"parents\": [\"mGhost_ID9\"]  ");
  auto yaml = ConvertWfCommonsTrace(trace, {});
  ASSERT_FALSE(yaml.ok());
  EXPECT_EQ(yaml.status().message(), "task \"mAdd_ID02\": parent \"mGhost_ID9\" is not a task");
}

TEST(WfCommonsImportTest, NotATraceIsRejectedClearly) {
  EXPECT_EQ(ConvertWfCommonsTrace("{\"name\": \"x\"}", {}).status().message(),
            "workflow.specification.tasks is missing: not a WfFormat 1.4+ trace");
  EXPECT_EQ(ConvertWfCommonsTrace("{not json", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ConvertWfCommonsTrace(kSmallTrace, {-1, "", "default"}).ok());
}

TEST(WfCommonsImportTest, ConvertsARealMontageTrace) {
  const char* dir = std::getenv("GYRE_WFCOMMONS_DIR");
  ASSERT_NE(dir, nullptr)
      << "GYRE_WFCOMMONS_DIR must name tests/data/wfcommons (the build sets it)";
  std::ifstream file(std::string(dir) + "/pegasus/montage/montage-chameleon-2mass-01d-001.json");
  ASSERT_TRUE(file) << "trace not found under " << dir;
  std::stringstream json;
  json << file.rdbuf();
  ImportSummary summary;
  auto yaml = ConvertWfCommonsTrace(json.str(), {0.01, "", "default"}, &summary);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(summary.tasks, 103);
  EXPECT_EQ(YAML::Load(*yaml)["tasks"].size(), 103u);
}

}  // namespace
}  // namespace gyre::wfcommons
