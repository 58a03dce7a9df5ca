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

}  // namespace
}  // namespace gyre
