#include "libs/common/nearest_match.h"

#include "gtest/gtest.h"

namespace gyre {
namespace {

TEST(NearestMatchTest, EditDistanceCountsSingleCharacterEdits) {
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("same", "same"), 0u);
  EXPECT_EQ(EditDistance("rwa", "raw"), 1u) << "a swap is one typo";
}

TEST(NearestMatchTest, SuggestsCloseCandidate) {
  EXPECT_EQ(DidYouMean("extrct", {"load", "extract", "transform"}), " (did you mean \"extract\"?)");
}

TEST(NearestMatchTest, NoSuggestionWhenNothingIsClose) {
  EXPECT_EQ(DidYouMean("zebra", {"load", "extract"}), "");
  EXPECT_FALSE(NearestMatch("x", {}).has_value());
}

TEST(NearestMatchTest, ClientSizedWordsCostNothing) {
  // A 1 MB word against long candidates used to fill a 10^6 x 10^6 matrix.
  const std::string huge(1 << 20, 'z');
  EXPECT_FALSE(NearestMatch(huge, {huge.substr(1), "load"}).has_value());
  // Candidates whose length is further than the limit are not compared.
  EXPECT_FALSE(NearestMatch("load", {std::string(100000, 'l')}).has_value());
  EXPECT_EQ(NearestMatch("laod", {std::string(100000, 'l'), "load"}), "load");
}

}  // namespace
}  // namespace gyre
