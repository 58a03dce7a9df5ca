#include "libs/common/variable_expansion.h"

#include <map>

#include "gtest/gtest.h"

namespace gyre {
namespace {

VariableLookup MapLookup(std::map<std::string, std::string> values) {
  return [values = std::move(values)](absl::string_view name) -> std::optional<std::string> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(VariableExpansionTest, ReplacesReferences) {
  auto result = ExpandVariables("${HOST}:${PORT}/x", MapLookup({{"HOST", "db"}, {"PORT", "5432"}}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "db:5432/x");
}

TEST(VariableExpansionTest, DoubleDollarEscapesAReference) {
  auto result = ExpandVariables("cost $5 and $${HOME}", MapLookup({}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "cost $5 and ${HOME}");
}

TEST(VariableExpansionTest, UndefinedVariableIsNamed) {
  auto result = ExpandVariables("x=${MISSING}", MapLookup({}));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "undefined variable \"MISSING\" in \"${MISSING}\"");
}

TEST(VariableExpansionTest, UnterminatedReferenceIsAnError) {
  auto result = ExpandVariables("x=${OOPS", MapLookup({{"OOPS", "1"}}));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("unterminated"), std::string::npos);
}

TEST(VariableExpansionTest, ValuesAreNotReexpanded) {
  auto result = ExpandVariables("${A}", MapLookup({{"A", "${B}"}, {"B", "no"}}));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, "${B}");
}

}  // namespace
}  // namespace gyre
