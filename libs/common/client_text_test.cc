#include "libs/common/client_text.h"

#include <string>

#include "gtest/gtest.h"
#include "libs/common/json_bounds.h"

namespace gyre {
namespace {

TEST(QuoteClientTextTest, ShortTextIsQuotedWhole) {
  EXPECT_EQ(QuoteClientText("workflows/etl"), "\"workflows/etl\"");
}

TEST(QuoteClientTextTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(QuoteClientText("a\"b\\c\nd\x1b[2Je\x7f"), R"("a\"b\\c\nd\x1b[2Je\x7f")");
}

TEST(QuoteClientTextTest, LongTextIsCutWithItsSize) {
  const std::string quoted = QuoteClientText(std::string(1 << 20, 'z'));
  EXPECT_EQ(quoted, "\"" + std::string(kMaxQuotedBytes, 'z') + "...\" (1048576 bytes)");
}

TEST(QuoteClientTextTest, NeverSplitsAUtf8Character) {
  // "é" is two bytes: 127 ASCII bytes, then one that would straddle the cut.
  const std::string text = std::string(kMaxQuotedBytes - 1, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(QuoteClientText(text), "\"" + std::string(kMaxQuotedBytes - 1, 'a') + "...\" (" +
                                       std::to_string(text.size()) + " bytes)");
}

TEST(CheckJsonBoundsTest, AcceptsShallowJson) {
  EXPECT_TRUE(CheckJsonBounds(R"({"a": [1, {"b": "[[[[[["}]})", 100, 3, "out").ok());
}

TEST(CheckJsonBoundsTest, RefusesDeepNestingInLinearTime) {
  std::string deep = R"({"K":)" + std::string(200000, '[') + std::string(200000, ']') + "}";
  const absl::Status status = CheckJsonBounds(deep, 1 << 20, 32, "$GYRE_OUTPUT");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "$GYRE_OUTPUT: JSON nested deeper than 32 levels (at byte 36)");
}

TEST(CheckJsonBoundsTest, BracketsInStringsAndEscapedQuotesDoNotCount) {
  EXPECT_TRUE(CheckJsonBounds(R"({"a": "\"[[[[", "b": "]]\\"})", 100, 1, "out").ok());
  EXPECT_FALSE(CheckJsonBounds(R"({"a": "\\", "b": [[]]})", 100, 2, "out").ok());
}

TEST(CheckJsonBoundsTest, RefusesOversizedJson) {
  EXPECT_EQ(CheckJsonBounds(std::string(11, ' '), 10, 32, "out").message(),
            "out: 11 bytes; at most 10 are accepted");
}

}  // namespace
}  // namespace gyre
