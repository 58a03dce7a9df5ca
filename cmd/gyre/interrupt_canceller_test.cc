#include "cmd/gyre/interrupt_canceller.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"

namespace gyre::cli {
namespace {

namespace v1 = ::gyre::v1;

std::atomic<int> test_handler_calls{0};
void CountingHandler(int /*signal*/) { test_handler_calls.fetch_add(1); }

// SIGINT's handler, as sigaction reports it.
void (*CurrentHandler())(int) {
  struct sigaction current {};
  sigaction(SIGINT, nullptr, &current);
  return current.sa_handler;
}

bool WaitUntilInterrupted(InterruptCanceller& canceller) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!canceller.interrupted()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// A call that would wait 30 s for an orchestrator that is not there, unless
// cancelled; how it ended.
grpc::Status WaitForNothing(grpc::ClientContext* context) {
  auto stub = v1::OrchestratorService::NewStub(
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
  context->set_wait_for_ready(true);
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::WatchRequest request;
  auto reader = stub->WatchBatches(context, request);
  v1::EventBatch batch;
  while (reader->Read(&batch)) {
  }
  return reader->Finish();
}

class InterruptCancellerTest : public ::testing::Test {
 protected:
  // Should the canceller fail to catch SIGINT, this handler does, rather
  // than the default action killing the test.
  void SetUp() override {
    struct sigaction action {};
    action.sa_handler = CountingHandler;
    sigemptyset(&action.sa_mask);
    ASSERT_EQ(sigaction(SIGINT, &action, &previous_), 0);
    test_handler_calls = 0;
  }
  void TearDown() override { sigaction(SIGINT, &previous_, nullptr); }

 private:
  struct sigaction previous_ {};
};

TEST_F(InterruptCancellerTest, CtrlCCancelsTheAttachedCall) {
  InterruptCanceller canceller;
  grpc::ClientContext context;
  canceller.Attach(&context);
  raise(SIGINT);
  const grpc::Status status = WaitForNothing(&context);
  canceller.Detach();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();
  EXPECT_TRUE(WaitUntilInterrupted(canceller));
  EXPECT_EQ(test_handler_calls, 0);
}

TEST_F(InterruptCancellerTest, ACallAttachedAfterCtrlCIsCancelledAtOnce) {
  InterruptCanceller canceller;
  raise(SIGINT);
  ASSERT_TRUE(WaitUntilInterrupted(canceller));
  grpc::ClientContext context;
  canceller.Attach(&context);
  const absl::Time start = absl::Now();
  const grpc::Status status = WaitForNothing(&context);
  canceller.Detach();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(InterruptCancellerTest, OneShotThenThePreviousHandlerIsBack) {
  {
    InterruptCanceller canceller;
    EXPECT_NE(CurrentHandler(), &CountingHandler);
    raise(SIGINT);
    ASSERT_TRUE(WaitUntilInterrupted(canceller));
    // A second Ctrl-C would kill the process: stopping may hang.
    EXPECT_EQ(CurrentHandler(), SIG_DFL);
  }
  EXPECT_EQ(CurrentHandler(), &CountingHandler);
  raise(SIGINT);
  EXPECT_EQ(test_handler_calls, 1);
}

TEST_F(InterruptCancellerTest, NothingHappensWithoutCtrlC) {
  InterruptCanceller canceller;
  grpc::ClientContext context;
  canceller.Attach(&context);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)));
  auto stub = v1::OrchestratorService::NewStub(
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
  context.set_wait_for_ready(true);
  v1::GetExecutionRequest request;
  v1::Execution execution;
  const grpc::Status status = stub->GetExecution(&context, request, &execution);
  canceller.Detach();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_FALSE(canceller.interrupted());
}

}  // namespace
}  // namespace gyre::cli
