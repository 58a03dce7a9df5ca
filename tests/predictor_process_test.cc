// The real gyre-predictor process over gRPC on loopback: observations
// recorded in one run shape the predictions, and survive a restart.
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "gyre/v1/predictor_service.grpc.pb.h"
#include "libs/testing/child_process.h"
#include "libs/testing/scratch_dir.h"

namespace gyre {
namespace {

using testing::ChildProcess;

std::string BinaryPath(const std::string& relative) {
  const char* root = std::getenv("GYRE_BIN_DIR");
  return root != nullptr ? absl::StrCat(root, "/", relative) : relative;
}

struct RunningPredictor {
  std::unique_ptr<ChildProcess> process;
  std::unique_ptr<v1::PredictorService::Stub> stub;
};

RunningPredictor StartPredictor(const std::string& data_dir) {
  RunningPredictor running;
  auto process =
      ChildProcess::Start({BinaryPath("services/predictor/gyre-predictor"),
                           "--grpc_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                           "--shutdown_grace=2s", absl::StrCat("--data_dir=", data_dir)});
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return running;
  running.process = *std::move(process);
  auto serving = running.process->WaitForLine(
      [](const std::string& line) { return absl::StrContains(line, "\"msg\":\"serving\""); },
      absl::Seconds(20));
  EXPECT_TRUE(serving.ok()) << serving.status() << running.process->Output();
  if (!serving.ok()) return running;
  const std::optional<int> port = testing::JsonIntField(*serving, "grpc_port");
  running.stub = v1::PredictorService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port.value_or(0)), grpc::InsecureChannelCredentials()));
  return running;
}

void Stop(RunningPredictor& running) {
  running.process->Signal(SIGTERM);
  const std::optional<int> status = running.process->WaitForExit(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << running.process->Output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << running.process->Output();
}

v1::PredictResourcesResponse Predict(v1::PredictorService::Stub& stub) {
  v1::PredictResourcesRequest request;
  request.set_workflow("workflows/etl");
  v1::TaskSpec* task = request.add_tasks();
  task->set_id("transform-new");
  task->add_command("/usr/local/bin/transform");
  task->set_queue("default");
  v1::PredictResourcesResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status = stub.PredictResources(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

TEST(PredictorProcessTest, LearnsFromObservationsAndKeepsTheModelAcrossARestart) {
  testing::ScratchDir dir("predictor_process_test");
  ASSERT_FALSE(dir.path().empty());
  RunningPredictor first = StartPredictor(dir.path());
  ASSERT_NE(first.stub, nullptr);

  // Nothing observed yet: the prior answers.
  EXPECT_EQ(Predict(*first.stub).predictions(0).duration_seconds().level(),
            v1::PREDICTION_LEVEL_PRIOR);

  v1::RecordObservationsRequest batch;
  for (int i = 0; i < 40; ++i) {
    v1::ResourceObservation* o = batch.add_observations();
    o->set_workflow("workflows/etl");
    o->set_task_id(absl::StrCat("transform-", i));
    o->set_program("transform");
    o->set_queue("default");
    o->mutable_duration()->set_seconds(120 + i % 5);
    o->set_peak_memory_bytes(int64_t{3} << 30);
    o->set_cpu_cores(2.0);
    o->set_succeeded(true);
  }
  {
    v1::RecordObservationsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(first.stub->RecordObservations(&context, batch, &response).ok());
    EXPECT_EQ(response.recorded(), 40);
  }
  const v1::PredictResourcesResponse learned = Predict(*first.stub);
  const v1::PredictedValue& duration = learned.predictions(0).duration_seconds();
  EXPECT_EQ(duration.level(), v1::PREDICTION_LEVEL_PROGRAM);
  EXPECT_NEAR(duration.value(), 122, 2.01);
  EXPECT_EQ(duration.observations(), 40);
  EXPECT_NEAR(learned.predictions(0).memory_bytes().value(), 3.0 * (1 << 30), 1e6);

  // A batch over the limit is refused with the limit named.
  v1::RecordObservationsRequest too_many;
  for (int i = 0; i < 10001; ++i) too_many.add_observations();
  v1::RecordObservationsResponse ignored;
  grpc::ClientContext context;
  grpc::Status refused = first.stub->RecordObservations(&context, too_many, &ignored);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "10000")) << refused.error_message();

  Stop(first);
  RunningPredictor second = StartPredictor(dir.path());
  ASSERT_NE(second.stub, nullptr);
  EXPECT_EQ(Predict(*second.stub).SerializeAsString(), learned.SerializeAsString());
  Stop(second);
}

}  // namespace
}  // namespace gyre
