#include "services/agent/deferred_starts.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

QueuedMessage Started(const std::string& task) {
  auto message = std::make_shared<v1::AgentMessage>();
  message->mutable_task_started()->mutable_ref()->set_task_id(task);
  return message;
}

// The tasks whose starts Release gives at `now`.
std::vector<std::string> Released(DeferredStarts& starts, absl::Time now) {
  std::deque<QueuedMessage> out;
  starts.Release(now, &out);
  std::vector<std::string> tasks;
  for (const QueuedMessage& message : out) tasks.push_back(message->task_started().ref().task_id());
  return tasks;
}

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(DeferredStartsTest, AStartIsReleasedOnceDueInTheOrderHeld) {
  DeferredStarts starts;
  EXPECT_EQ(starts.next_due(), absl::InfiniteFuture()) << "nothing held";
  starts.Hold("a", Started("a"), kT0 + absl::Milliseconds(10));
  starts.Hold("b", Started("b"), kT0 + absl::Milliseconds(12));
  starts.Hold("c", Started("c"), kT0 + absl::Milliseconds(20));
  EXPECT_EQ(starts.next_due(), kT0 + absl::Milliseconds(10));
  EXPECT_TRUE(Released(starts, kT0 + absl::Milliseconds(9)).empty()) << "none due yet";
  EXPECT_EQ(Released(starts, kT0 + absl::Milliseconds(15)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts.next_due(), kT0 + absl::Milliseconds(20));
  EXPECT_EQ(Released(starts, kT0 + absl::Milliseconds(20)), std::vector<std::string>{"c"});
  EXPECT_EQ(starts.next_due(), absl::InfiniteFuture());
}

TEST(DeferredStartsTest, AStartDroppedBeforeItIsDueIsNeverReleased) {
  DeferredStarts starts;
  starts.Hold("a", Started("a"), kT0 + absl::Milliseconds(10));
  starts.Hold("b", Started("b"), kT0 + absl::Milliseconds(11));
  starts.Hold("c", Started("c"), kT0 + absl::Milliseconds(12));
  EXPECT_TRUE(starts.Drop("b")) << "its result came first";
  EXPECT_FALSE(starts.Drop("b")) << "dropped once";
  EXPECT_FALSE(starts.Drop("never-held"));
  EXPECT_TRUE(starts.Drop("a"));
  EXPECT_EQ(starts.next_due(), kT0 + absl::Milliseconds(12)) << "the first start still held";
  EXPECT_EQ(Released(starts, absl::InfiniteFuture()), std::vector<std::string>{"c"});
  EXPECT_EQ(starts.size(), 0u);
}

TEST(DeferredStartsTest, ReleasingAtInfiniteFutureGivesEveryStartHeld) {
  // What the writer does when a log chunk goes out: the task's start first.
  DeferredStarts starts;
  starts.Hold("a", Started("a"), kT0 + absl::Hours(1));
  starts.Hold("b", Started("b"), kT0 + absl::Hours(2));
  EXPECT_EQ(Released(starts, absl::InfiniteFuture()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(starts.next_due(), absl::InfiniteFuture());
  EXPECT_FALSE(starts.Drop("a")) << "released, so no longer held";
}

}  // namespace
}  // namespace gyre::agent
