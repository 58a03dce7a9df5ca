#include "services/agent/result_batching.h"

#include <string>

#include "gtest/gtest.h"

namespace gyre::agent {
namespace {

namespace v1 = ::gyre::v1;

v1::AgentMessage Result(const std::string& task, std::string stdout_tail = "") {
  v1::AgentMessage message;
  message.mutable_task_result()->mutable_ref()->set_task_id(task);
  message.mutable_task_result()->set_stdout_tail(std::move(stdout_tail));
  return message;
}

v1::AgentMessage Started(const std::string& task) {
  v1::AgentMessage message;
  message.mutable_task_started()->mutable_ref()->set_task_id(task);
  return message;
}

// The messages as a compact string: r(a) one result, R(a,b) a batch, s(a) started.
std::string Shape(const std::vector<v1::AgentMessage>& messages) {
  std::string shape;
  for (const v1::AgentMessage& message : messages) {
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
    }
  }
  return shape;
}

TEST(BatchResultsTest, ConsecutiveResultsTravelInOneMessageInOrder) {
  EXPECT_EQ(Shape(BatchResults({Result("a"), Result("b"), Result("c")})), "R(a,b,c)");
}

TEST(BatchResultsTest, OtherMessagesKeepTheirPlace) {
  EXPECT_EQ(Shape(BatchResults({Result("a"), Result("b"), Started("c"), Result("d")})),
            "R(a,b)s(c)r(d)");
  EXPECT_EQ(Shape(BatchResults({Started("a")})), "s(a)");
  EXPECT_TRUE(BatchResults({}).empty());
}

TEST(BatchResultsTest, ABatchStaysWithinItsCountAndSize) {
  ResultBatchLimits limits;
  limits.max_results = 2;
  EXPECT_EQ(Shape(BatchResults({Result("a"), Result("b"), Result("c")}, limits)), "R(a,b)r(c)");

  limits.max_results = 100;
  limits.max_bytes = 2000;  // each result below is about 1,000 bytes
  const std::string output(750, 'x');
  EXPECT_EQ(
      Shape(BatchResults({Result("a", output), Result("b", output), Result("c", output)}, limits)),
      "r(a)r(b)r(c)");
}

TEST(BatchResultsTest, ResultsArriveWhole) {
  std::vector<v1::AgentMessage> out = BatchResults({Result("a", "out-a"), Result("b", "out-b")});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].task_results().results(1).stdout_tail(), "out-b");
}

}  // namespace
}  // namespace gyre::agent
