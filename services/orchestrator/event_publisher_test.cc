#include "services/orchestrator/event_publisher.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/orchestrator/event_subscription.h"
#include "services/orchestrator/testing/engine_builders.h"
#include "services/orchestrator/testing/engine_components.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::EngineComponents;
using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

class EventPublisherTest : public ::testing::Test {
 protected:
  // Subscribes to `exec`'s events from `from_sequence`, its stored ones
  // built as the engine builds them for a watcher.
  std::shared_ptr<EventSubscription> Subscribe(const ExecutionEntry& exec, int64_t from_sequence,
                                               bool include_logs = false) {
    auto subscription = std::make_shared<EventSubscription>(include_logs);
    c_.publisher.Subscribe(
        exec, from_sequence, subscription,
        [this, index = exec.index](uint32_t from, uint32_t to, google::protobuf::Arena* arena,
                                   std::vector<v1::Event*>* events) {
          const ExecutionEntry& e = c_.executions.at(index);
          for (uint32_t i = from; i < to; ++i) {
            EventSource source;
            CollectEvent(e, i, arena, &source);
            events->push_back(BuildEvent(e, source, arena));
          }
        });
    return subscription;
  }

  // Every event the subscription holds now; `*last`: it is closed and empty.
  static std::vector<v1::Event> Drain(EventSubscription& subscription, bool* last = nullptr) {
    std::vector<v1::Event> events;
    bool done = false;
    while (!done) {
      EventChunk chunk = subscription.Next(absl::Milliseconds(20), &done);
      if (chunk.events.empty()) break;
      for (const v1::Event* event : chunk.events) events.push_back(*event);
    }
    if (last != nullptr) *last = done;
    return events;
  }

  EngineComponents c_;
};

TEST_F(EventPublisherTest, AWatcherOfOneExecutionSeesOnlyItsEventsAndIsClosedByTheFinalOne) {
  auto all = std::make_shared<EventSubscription>();
  c_.publisher.WatchAll(all);
  ExecutionEntry& a = c_.Start(Workflow({Task("a"), Task("b", {"a"})}));
  auto one = Subscribe(a, 1);
  ExecutionEntry& b = c_.Start(Workflow({Task("x")}));
  EXPECT_FALSE(a.events.empty());
  EXPECT_FALSE(b.events.empty());

  c_.machine.Cancel(a, "enough", c_.out);
  ASSERT_TRUE(a.final());

  bool last = false;
  std::vector<v1::Event> seen = Drain(*one, &last);
  ASSERT_EQ(seen.size(), a.events.size());  // the backlog and every live one
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].execution(), a.name());
    EXPECT_EQ(seen[i].sequence(), static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ(seen.front().type(), v1::Event::EXECUTION_CREATED);
  EXPECT_EQ(seen.back().type(), v1::Event::EXECUTION_STATE_CHANGED);
  EXPECT_EQ(seen.back().execution_snapshot().state(), v1::EXECUTION_CANCELLED);
  EXPECT_TRUE(last);
  EXPECT_TRUE(one->closed());

  // The watcher of all saw both executions' events and stays open.
  std::vector<v1::Event> everything = Drain(*all);
  EXPECT_EQ(everything.size(), a.events.size() + b.events.size());
  size_t of_b = 0;
  for (const v1::Event& event : everything) of_b += event.execution() == b.name();
  EXPECT_EQ(of_b, b.events.size());
  EXPECT_FALSE(all->closed());
}

TEST_F(EventPublisherTest, ASubscriptionStartsAtItsSequenceAndOneToAFinalExecutionIsClosed) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("a")}));
  const size_t before = exec.events.size();
  ASSERT_GE(before, 2u);
  auto late = Subscribe(exec, 2);
  std::vector<v1::Event> seen = Drain(*late);
  ASSERT_EQ(seen.size(), before - 1);
  EXPECT_EQ(seen.front().sequence(), 2);

  c_.machine.Cancel(exec, "", c_.out);
  // Subscribed after the end: the whole history, then closed.
  auto after_end = Subscribe(exec, 1);
  bool last = false;
  EXPECT_EQ(Drain(*after_end, &last).size(), exec.events.size());
  EXPECT_TRUE(last);
  EXPECT_TRUE(after_end->closed());
}

TEST_F(EventPublisherTest, LogChunksGoOnlyToWatchersThatAskedForLogs) {
  ExecutionEntry& exec = c_.Start(Workflow({Task("a")}));
  ExecutionEntry& other = c_.Start(Workflow({Task("a")}));
  auto with_logs = Subscribe(exec, static_cast<int64_t>(exec.events.size()) + 1, true);
  auto without = Subscribe(exec, static_cast<int64_t>(exec.events.size()) + 1, false);
  auto all_logs = std::make_shared<EventSubscription>(/*include_logs=*/true);
  c_.publisher.WatchAll(all_logs);
  auto other_logs = Subscribe(other, static_cast<int64_t>(other.events.size()) + 1, true);

  v1::TaskLogChunk chunk;
  chunk.mutable_ref()->set_execution(exec.name());
  chunk.mutable_ref()->set_task_id("a");
  chunk.mutable_ref()->set_attempt(1);
  chunk.mutable_chunk()->set_data("hello\n");
  c_.publisher.PublishLog(exec, chunk, c_.clock.Now());

  for (const auto& subscription : {with_logs, all_logs}) {
    std::vector<v1::Event> seen = Drain(*subscription);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].type(), v1::Event::TASK_LOG);
    EXPECT_EQ(seen[0].sequence(), 0);  // not part of the history
    EXPECT_EQ(seen[0].log().task_id(), "a");
    EXPECT_EQ(seen[0].log().chunk().data(), "hello\n");
  }
  EXPECT_TRUE(Drain(*without).empty());
  EXPECT_TRUE(Drain(*other_logs).empty());
}

TEST_F(EventPublisherTest, AnUnwatchedSubscriptionGetsNothingMore) {
  auto all = std::make_shared<EventSubscription>();
  c_.publisher.WatchAll(all);
  c_.publisher.Unwatch(all);
  c_.Start(Workflow({Task("a")}));
  EXPECT_TRUE(Drain(*all).empty());
}

}  // namespace
}  // namespace gyre::orchestrator
