#include "services/scheduler/upward_rank.h"

#include "gtest/gtest.h"

namespace gyre::scheduler {
namespace {

TEST(UpwardRankTest, IsOwnDurationPlusLongestPathToTheEnd) {
  // a(2) -> b(3) -> d(4); a -> c(1) -> d. By hand: d = 4, b = 3 + 4 = 7,
  // c = 1 + 4 = 5, a = 2 + max(7, 5) = 9.
  auto ranks = UpwardRanks({{1, 2}, {3}, {3}, {}}, {2, 3, 1, 4});
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  EXPECT_EQ(*ranks, (std::vector<double>{9, 7, 5, 4}));
}

TEST(UpwardRankTest, RejectsACycleAndBadIndices) {
  auto cycle = UpwardRanks({{1}, {0}}, {1, 1});
  ASSERT_FALSE(cycle.ok());
  EXPECT_NE(cycle.status().message().find("cycle"), std::string::npos) << cycle.status();
  EXPECT_FALSE(UpwardRanks({{5}}, {1}).ok());
  EXPECT_FALSE(UpwardRanks({{}}, {1, 2}).ok());
}

}  // namespace
}  // namespace gyre::scheduler
