#include "services/orchestrator/cluster_backlog.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

struct Published {
  std::vector<QueueBacklog> cluster;
  std::vector<std::pair<std::string, QueueBacklog>> elsewhere;
};

Published Publish(ClusterBacklog& backlog, const std::vector<ClusterBacklog::OwnQueue>& own) {
  Published out;
  backlog.Publish(own, &out.cluster, &out.elsewhere);
  return out;
}

TEST(ClusterBacklogTest, AloneTheClusterIsThisMembersOwnBacklog) {
  ClusterBacklog backlog;
  const Published published = Publish(backlog, {{"gpu", {3, 1}}, {"cpu", {0, 0}}});
  EXPECT_THAT(published.cluster, ElementsAre(QueueBacklog{3, 1}, QueueBacklog{0, 0}));
  EXPECT_THAT(published.elsewhere, IsEmpty());
}

TEST(ClusterBacklogTest, TheOthersSumsAreAddedQueueByQueue) {
  ClusterBacklog backlog;
  backlog.SetOthers({{"gpu", {10, 2}}, {"cpu", {0, 4}}});
  const Published published = Publish(backlog, {{"gpu", {3, 1}}, {"cpu", {5, 0}}});
  EXPECT_THAT(published.cluster, ElementsAre(QueueBacklog{13, 3}, QueueBacklog{5, 4}));
  EXPECT_THAT(published.elsewhere, IsEmpty());
}

TEST(ClusterBacklogTest, QueuesOnlyTheOthersHaveBacklogInAreReportedApart) {
  ClusterBacklog backlog;
  backlog.SetOthers({{"gpu", {10, 2}}, {"arm", {7, 0}}, {"idle", {0, 0}}});
  const Published published = Publish(backlog, {{"gpu", {1, 0}}});
  EXPECT_THAT(published.cluster, ElementsAre(QueueBacklog{11, 2}));
  EXPECT_THAT(published.elsewhere, ElementsAre(Pair("arm", QueueBacklog{7, 0})));
}

TEST(ClusterBacklogTest, TheHeartbeatCarriesTheLastPublishedCountsWithoutEmptyQueues) {
  ClusterBacklog backlog;
  EXPECT_THAT(backlog.Own(), IsEmpty()) << "nothing published yet";
  Publish(backlog, {{"gpu", {3, 1}}, {"cpu", {0, 0}}, {"arm", {0, 2}}});
  EXPECT_THAT(backlog.Own(),
              ElementsAre(Pair("arm", QueueBacklog{0, 2}), Pair("gpu", QueueBacklog{3, 1})));
  // The others' counts are not this member's: never published as its own.
  backlog.SetOthers({{"cpu", {9, 9}}});
  EXPECT_THAT(backlog.Own(),
              ElementsAre(Pair("arm", QueueBacklog{0, 2}), Pair("gpu", QueueBacklog{3, 1})));
}

TEST(ClusterBacklogTest, TheHeartbeatCarriesThisMembersForecastsBesideItsCounts) {
  ClusterBacklog backlog;
  (void)Publish(backlog, {{"gpu", {3, 1}}});
  backlog.SetOwnForecasts({{"gpu", {2.5, 4}}, {"cpu", {1, 0}}, {"idle", {0, 0}}});
  EXPECT_THAT(backlog.Own(), ElementsAre(Pair("cpu", QueueBacklog{0, 0, 1, 0}),
                                         Pair("gpu", QueueBacklog{3, 1, 2.5, 4})));
  // Each forecaster round replaces the last: a queue it left out forecasts 0.
  backlog.SetOwnForecasts({});
  EXPECT_THAT(backlog.Own(), ElementsAre(Pair("gpu", QueueBacklog{3, 1})));
}

TEST(ClusterBacklogTest, TheOthersForecastsAloneAreNoBacklogElsewhere) {
  ClusterBacklog backlog;
  backlog.SetOthers({{"gpu", QueueBacklog{0, 0, 3, 5}}, {"cpu", QueueBacklog{2, 0, 1, 1}}});
  const Published published = Publish(backlog, {});
  EXPECT_THAT(published.elsewhere, ElementsAre(Pair("cpu", QueueBacklog{2, 0, 1, 1})));
  EXPECT_EQ(backlog.Others().at("gpu"), (QueueBacklog{0, 0, 3, 5}));
}

TEST(ClusterBacklogTest, AQueueLeftOutOfAPublishCountsZero) {
  ClusterBacklog backlog;
  Publish(backlog, {{"gpu", {3, 1}}, {"arm", {2, 0}}});
  Publish(backlog, {{"gpu", {4, 1}}});
  EXPECT_THAT(backlog.Own(), ElementsAre(Pair("gpu", QueueBacklog{4, 1})));
  Publish(backlog, {});
  EXPECT_THAT(backlog.Own(), IsEmpty());
}

TEST(ClusterBacklogTest, EachRoundReplacesTheOthersAndAMemberGoneTakesItsPartAlong) {
  ClusterBacklog backlog;
  backlog.SetOthers({{"gpu", {10, 2}}, {"arm", {7, 0}}});
  EXPECT_EQ(backlog.Others(), (QueueBacklogs{{"gpu", {10, 2}}, {"arm", {7, 0}}}));
  // The next round read one member fewer: "arm" was only its.
  backlog.SetOthers({{"gpu", {6, 2}}, {"arm", {0, 0}}});
  EXPECT_EQ(backlog.Others(), (QueueBacklogs{{"gpu", {6, 2}}})) << "no empty queue kept";
  const Published published = Publish(backlog, {{"gpu", {1, 0}}});
  EXPECT_THAT(published.cluster, ElementsAre(QueueBacklog{7, 2}));
  EXPECT_THAT(published.elsewhere, IsEmpty());
  // Cut off from the others (no round in time): its own counts alone.
  backlog.SetOthers({});
  EXPECT_THAT(Publish(backlog, {{"gpu", {1, 0}}}).cluster, ElementsAre(QueueBacklog{1, 0}));
}

// The dispatcher publishes under the engine lock while the lease manager's
// thread reads and writes: every read is one whole publish, never a mix.
TEST(ClusterBacklogTest, TheLeaseManagerReadsWholePublishesWhileTheDispatcherPublishes) {
  ClusterBacklog backlog;
  std::thread dispatcher([&] {
    std::vector<QueueBacklog> cluster;
    std::vector<std::pair<std::string, QueueBacklog>> elsewhere;
    for (int64_t i = 1; i <= 20000; ++i) {
      const std::vector<ClusterBacklog::OwnQueue> own = {{"a", {i, i}}, {"b", {i, 0}}};
      backlog.Publish(own, &cluster, &elsewhere);
      ASSERT_EQ(cluster.size(), 2u);
      // Both queues saw the same round of the other thread's.
      ASSERT_EQ(cluster[0].queued, cluster[1].queued);
      ASSERT_EQ(cluster[0].running, i);
    }
  });
  for (int64_t round = 0; round < 2000; ++round) {
    backlog.SetOthers({{"a", {round, 0}}, {"b", {round, 0}}});
    const auto own = backlog.Own();
    if (own.size() == 2) {
      EXPECT_EQ(own.at("a").queued, own.at("b").queued);
      EXPECT_EQ(own.at("a").running, own.at("a").queued);
    }
  }
  dispatcher.join();
}

}  // namespace
}  // namespace gyre::orchestrator
