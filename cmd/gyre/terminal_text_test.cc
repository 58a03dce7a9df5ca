#include "cmd/gyre/terminal_text.h"

#include "gtest/gtest.h"

namespace gyre::cli {
namespace {

TEST(TerminalSafeTest, PlainTextAndUtf8PassAsTheyAre) {
  EXPECT_EQ(TerminalSafe("cancelled by ops: disk full"), "cancelled by ops: disk full");
  EXPECT_EQ(TerminalSafe("région café — ok"), "région café — ok");
}

TEST(TerminalSafeTest, EveryControlCharacterIsShownEscaped) {
  EXPECT_EQ(TerminalSafe("\x1b]0;pwned\x07\x1b[2J\r"), "\\x1b]0;pwned\\x07\\x1b[2J\\x0d");
  EXPECT_EQ(TerminalSafe("line one\nline two\tend"), "line one\\nline two\\tend");
  EXPECT_EQ(TerminalSafe(std::string("nul\0del\x7f", 8)), "nul\\x00del\\x7f");
  EXPECT_EQ(TerminalSafe("c1 \xc2\x9b"
                         "31m raw \x9b"),
            "c1 \\u009b31m raw \\x9b");
  EXPECT_EQ(TerminalSafe("C:\\dir \xe2\x80"), "C:\\dir \\xe2\\x80")
      << "a cut sequence is raw bytes";
}

}  // namespace
}  // namespace gyre::cli
