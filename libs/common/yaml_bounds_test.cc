#include "libs/common/yaml_bounds.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace gyre {
namespace {

TEST(YamlBoundsTest, AcceptsOrdinaryYaml) {
  EXPECT_TRUE(CheckYaml("name: a\ntasks:\n  - {id: x, command: [a, b]}\n  - id: y\n", "w.yaml",
                        kWorkflowYamlLimits)
                  .ok());
  // The same key in different maps is no duplicate.
  EXPECT_TRUE(CheckYaml("a: {id: 1}\nb: {id: 2}\n", "w.yaml", kWorkflowYamlLimits).ok());
}

TEST(YamlBoundsTest, DuplicateKeyNamesBothPlaces) {
  // yaml-cpp alone takes the first value and says nothing.
  ASSERT_EQ(YAML::Load("name: a\nname: b\n")["name"].Scalar(), "a");
  const absl::Status status = CheckYaml("name: a\nname: b\n", "w.yaml", kWorkflowYamlLimits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "w.yaml:2:1: duplicate key \"name\" (first at w.yaml:1:1)");
}

TEST(YamlBoundsTest, DuplicateKeyAtAnyLevelAndInFlowStyle) {
  const absl::Status nested = CheckYaml("name: a\ntasks:\n  - id: x\n    env: {A: 1, B: 2, A: 3}\n",
                                        "w.yaml", kWorkflowYamlLimits);
  EXPECT_EQ(nested.message(), "w.yaml:4:23: duplicate key \"A\" (first at w.yaml:4:11)");
  const absl::Status in_list =
      CheckYaml("tasks:\n  - id: x\n    id: y\n", "w.yaml", kWorkflowYamlLimits);
  EXPECT_EQ(in_list.message(), "w.yaml:3:5: duplicate key \"id\" (first at w.yaml:2:5)");
}

TEST(YamlBoundsTest, RefusesTooManyBytesBeforeParsing) {
  YamlLimits limits;
  limits.max_bytes = 10;
  const absl::Status status = CheckYaml("name: abcdefgh\n", "w.yaml", limits);
  EXPECT_EQ(status.message(), "w.yaml: the YAML is 15 bytes; at most 10 are accepted");
}

TEST(YamlBoundsTest, RefusesTooManyNodes) {
  YamlLimits limits;
  limits.max_nodes = 5;
  EXPECT_TRUE(CheckYaml("[1, 2, 3, 4]", "w.yaml", limits).ok());
  const absl::Status status = CheckYaml("[1, 2, 3, 4, 5]", "w.yaml", limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("at most 5 are accepted"), absl::string_view::npos) << status;
}

TEST(YamlBoundsTest, AliasesCountAsWhatTheyRepeat) {
  // "Billion laughs": each level repeats the one before ten times.
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    yaml += absl::StrCat("a", i, ": &a", i, " [");
    for (int j = 0; j < 10; ++j) absl::StrAppend(&yaml, j ? ", " : "", "*a", i - 1);
    yaml += "]\n";
  }
  const absl::Status status = CheckYaml(yaml, "lol.yaml", kWorkflowYamlLimits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("aliases expanded"), absl::string_view::npos) << status;
}

TEST(YamlBoundsTest, RefusesDeepNesting) {
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  const absl::Status status = CheckYaml(deep, "w.yaml", kWorkflowYamlLimits);
  EXPECT_EQ(status.message(),
            "w.yaml:1:65: the YAML is nested deeper than 64 lists and maps; at most 64 levels "
            "are accepted");
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(CheckYaml(ok, "w.yaml", kWorkflowYamlLimits).ok());
}

TEST(YamlBoundsTest, MalformedYamlIsLeftToTheLoader) {
  EXPECT_TRUE(CheckYaml("a: [1, 2\n", "w.yaml", kWorkflowYamlLimits).ok());
}

// Found by fuzz/config_fuzz: yaml-cpp's event parser returned an endless
// series of documents for this text, so checking every document never
// ended (within the node limit it took seconds, under ASan over 10 s).
TEST(YamlBoundsTest, MalformedTextThatYieldsEndlessDocumentsEndsAtOnce) {
  const absl::Status status =
      CheckYaml(",a: 1, b: [x,!y]}\n", "c.yaml", {.max_bytes = 1024, .max_nodes = 10'000'000});
  EXPECT_TRUE(status.ok()) << status;  // left to YAML::Load, which reports it
}

}  // namespace
}  // namespace gyre
