#include "services/agent/result_batching.h"

#include <string>

#include "gtest/gtest.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

QueuedMessage Result(const std::string& task, std::string stdout_tail = "") {
  auto message = std::make_shared<v1::AgentMessage>();
  message->mutable_task_result()->mutable_ref()->set_task_id(task);
  message->mutable_task_result()->set_stdout_tail(std::move(stdout_tail));
  return message;
}

QueuedMessage Started(const std::string& task) {
  auto message = std::make_shared<v1::AgentMessage>();
  message->mutable_task_started()->mutable_ref()->set_task_id(task);
  return message;
}

QueuedMessage Log(const std::string& task) {
  auto message = std::make_shared<v1::AgentMessage>();
  message->mutable_log_chunk()->mutable_ref()->set_task_id(task);
  return message;
}

// The messages as a compact string: r(a) one result, R(a,b) a batch, s(a)
// started, l(a) a log chunk.
std::string Shape(const ResultBatches& batches) {
  std::string shape;
  for (const v1::AgentMessage* pointer : batches.messages()) {
    const v1::AgentMessage& message = *pointer;
    if (message.has_task_result()) {
      shape += "r(" + message.task_result().ref().task_id() + ")";
    } else if (message.has_task_results()) {
      shape += "R(";
      for (const v1::TaskResult& result : message.task_results().results()) {
        shape += result.ref().task_id() + ",";
      }
      shape.back() = ')';
    } else if (message.has_task_started()) {
      shape += "s(" + message.task_started().ref().task_id() + ")";
    } else if (message.has_log_chunk()) {
      shape += "l(" + message.log_chunk().ref().task_id() + ")";
    }
  }
  return shape;
}

TEST(ResultBatchesTest, ConsecutiveResultsTravelInOneMessageInOrder) {
  EXPECT_EQ(Shape(ResultBatches({Result("a"), Result("b"), Result("c")})), "R(a,b,c)");
}

TEST(ResultBatchesTest, TaskStartsGoFirstAndResultsAroundThemTravelTogether) {
  EXPECT_EQ(Shape(ResultBatches({Result("a"), Result("b"), Started("c"), Result("d")})),
            "s(c)R(a,b,d)");
  // How a busy agent's queue looks: starts and results alternating.
  EXPECT_EQ(Shape(ResultBatches(
                {Started("b"), Result("a"), Started("c"), Result("b"), Started("d"), Result("c")})),
            "s(b)s(c)s(d)R(a,b,c)");
}

TEST(ResultBatchesTest, OtherMessagesKeepTheirPlace) {
  EXPECT_EQ(Shape(ResultBatches({Result("a"), Result("b"), Log("c"), Result("d")})),
            "R(a,b)l(c)r(d)");
  EXPECT_EQ(Shape(ResultBatches({Started("a")})), "s(a)");
  EXPECT_TRUE(ResultBatches({}).messages().empty());
}

TEST(ResultBatchesTest, ABatchStaysWithinItsCountAndSize) {
  ResultBatchLimits limits;
  limits.max_results = 2;
  EXPECT_EQ(Shape(ResultBatches({Result("a"), Result("b"), Result("c")}, limits)), "R(a,b)r(c)");

  limits.max_results = 100;
  limits.max_bytes = 2000;  // each result below is about 1,000 bytes
  const std::string output(750, 'x');
  EXPECT_EQ(
      Shape(ResultBatches({Result("a", output), Result("b", output), Result("c", output)}, limits)),
      "r(a)r(b)r(c)");
}

TEST(ResultBatchesTest, ResultsArriveWholeAndAreLentNotCopied) {
  const QueuedMessage a = Result("a", "out-a");
  const QueuedMessage b = Result("b", "out-b");
  {
    const ResultBatches batches({a, b});
    ASSERT_EQ(batches.messages().size(), 1u);
    const v1::TaskResults& sent = batches.messages()[0]->task_results();
    EXPECT_EQ(sent.results(1).stdout_tail(), "out-b");
    EXPECT_EQ(&sent.results(0), &a->task_result()) << "the queued result itself";
  }
  // Given back whole when the batches go (a use after free would show
  // under the sanitizers; here, the results are intact and still theirs).
  EXPECT_EQ(a->task_result().stdout_tail(), "out-a");
  EXPECT_EQ(b->task_result().ref().task_id(), "b");
  EXPECT_EQ(a.use_count(), 1);
}

// Issue 22: the slots the results free travel in their message.
TEST(ResultBatchesTest, CreditRidesOnTheLastResultsMessage) {
  ResultBatches batch({Result("a"), Result("b"), Log("c"), Result("d"), Result("e")});
  ASSERT_TRUE(batch.AttachCredit(4));
  EXPECT_EQ(Shape(batch), "R(a,b)l(c)R(d,e)");
  EXPECT_EQ(batch.messages()[0]->task_results().credit(), 0);
  EXPECT_EQ(batch.messages()[2]->task_results().credit(), 4);

  // A lone result becomes a batch of one, lent like the others.
  const QueuedMessage lone = Result("a", "out-a");
  {
    ResultBatches one({Started("b"), lone, Log("a")});
    ASSERT_TRUE(one.AttachCredit(1));
    EXPECT_EQ(Shape(one), "s(b)R(a)l(a)");
    EXPECT_EQ(one.messages()[1]->task_results().credit(), 1);
    EXPECT_EQ(&one.messages()[1]->task_results().results(0), &lone->task_result());
    EXPECT_FALSE(lone->has_task_results()) << "the queued message is not changed";
  }
  EXPECT_EQ(lone->task_result().stdout_tail(), "out-a") << "given back whole";
  EXPECT_EQ(lone.use_count(), 1);

  // Nothing to carry it: the caller sends a Credit message.
  ResultBatches none({Started("a"), Log("a")});
  EXPECT_FALSE(none.AttachCredit(2));
  EXPECT_EQ(Shape(none), "s(a)l(a)");
}

}  // namespace
}  // namespace gyre::agent
