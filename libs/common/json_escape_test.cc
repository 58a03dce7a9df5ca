#include "libs/common/json_escape.h"

#include <string>

#include "gtest/gtest.h"

namespace gyre {
namespace {

std::string Escaped(absl::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

TEST(JsonEscapeTest, QuotesAndBackslashesAreEscaped) {
  EXPECT_EQ(Escaped(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
}

TEST(JsonEscapeTest, ControlCharactersBecomeUnicodeEscapes) {
  EXPECT_EQ(Escaped("a\nb\tc\x01"), R"("a\nb\tc\u0001")");
}

TEST(JsonEscapeTest, ValidUtf8PassesThrough) { EXPECT_EQ(Escaped("größe ✓"), "\"größe ✓\""); }

TEST(JsonEscapeTest, InvalidUtf8BytesAreReplaced) {
  EXPECT_EQ(Escaped("a\xff"
                    "b\xc3"),
            R"("a\ufffdb\ufffd")");
}

}  // namespace
}  // namespace gyre
