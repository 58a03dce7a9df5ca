#include "libs/common/task_cost.h"

#include "gtest/gtest.h"

namespace gyre {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

TEST(TaskCostTest, ChargesHoursTimesCoresMemoryAndGpus) {
  const ResourcePrices price{0.04, 0.005, 2.5};
  // 30 min x (2 cores x 0.04 + 4 GiB x 0.005 + 1 GPU x 2.5) = 0.5 x 2.6 = 1.3.
  EXPECT_NEAR(TaskCost(price, {2, 4 * kGiB, 1, 1800}), 1.3, 1e-12);
  EXPECT_EQ(TaskCost(price, {2, 4 * kGiB, 1, 0}), 0);
  EXPECT_EQ(TaskCost(price, {-1, -kGiB, 0, 3600}), 0);
}

TEST(TaskCostTest, ChargesTheReservationWhenDeclaredElseTheUse) {
  // Declared 4 cores and 8 GiB: charged for them whatever was used.
  ResourceHold declared = ChargedHold(4, 8 * kGiB, 0, 100, 50, kGiB);
  EXPECT_EQ(declared.cores, 4);
  EXPECT_EQ(declared.memory_bytes, 8 * kGiB);
  // Nothing declared: 50 s of CPU over 100 s of wall is half a core; peak RSS.
  ResourceHold used = ChargedHold(0, 0, 0, 100, 50, kGiB);
  EXPECT_EQ(used.cores, 0.5);
  EXPECT_EQ(used.memory_bytes, kGiB);
  EXPECT_EQ(used.seconds, 100);
  EXPECT_EQ(ChargedHold(0, 0, 0, 0, 0, 0).cores, 0);  // no division by a zero wall time
}

}  // namespace
}  // namespace gyre
