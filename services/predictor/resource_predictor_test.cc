#include "services/predictor/resource_predictor.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"
#include "services/predictor/snapshot_model_store.h"

namespace gyre::predictor {
namespace {

gyre::v1::ResourceObservation Succeeded(const std::string& task_id, const std::string& program,
                                        double seconds, int64_t memory) {
  gyre::v1::ResourceObservation o;
  o.set_workflow("workflows/etl");
  o.set_task_id(task_id);
  o.set_program(program);
  o.set_queue("default");
  o.mutable_duration()->set_seconds(static_cast<int64_t>(seconds));
  o.mutable_duration()->set_nanos(
      static_cast<int32_t>((seconds - static_cast<int64_t>(seconds)) * 1e9));
  o.set_peak_memory_bytes(memory);
  o.set_cpu_cores(1.0);
  o.set_succeeded(true);
  o.set_outcome("succeeded");
  o.mutable_end_time()->set_seconds(1700000000);
  return o;
}

gyre::v1::PredictResourcesRequest AskFor(const std::string& task_id, const std::string& command) {
  gyre::v1::PredictResourcesRequest request;
  request.set_workflow("workflows/etl");
  gyre::v1::TaskSpec* task = request.add_tasks();
  task->set_id(task_id);
  task->add_command(command);
  task->add_command("--fast");
  task->set_queue("default");
  return request;
}

// A predictor saving its model in `dir` (empty: in memory only).
std::unique_ptr<ResourcePredictor> OpenIn(const std::string& dir) {
  std::unique_ptr<ModelStore> store;
  if (!dir.empty()) {
    SnapshotModelStoreOptions options;
    options.dir = dir;
    options.sync = false;
    absl::StatusOr<std::unique_ptr<SnapshotModelStore>> files =
        SnapshotModelStore::Open(std::move(options));
    EXPECT_TRUE(files.ok()) << files.status();
    if (!files.ok()) return nullptr;
    store = *std::move(files);
  }
  absl::StatusOr<std::unique_ptr<ResourcePredictor>> predictor =
      ResourcePredictor::Open({}, std::move(store));
  EXPECT_TRUE(predictor.ok()) << predictor.status();
  return predictor.ok() ? *std::move(predictor) : nullptr;
}

TEST(ResourcePredictorTest, PredictsFromRecordedObservationsOfTheSameProgram) {
  std::unique_ptr<ResourcePredictor> predictor = OpenIn("");
  gyre::v1::RecordObservationsRequest batch;
  for (int i = 0; i < 20; ++i) {
    *batch.add_observations() =
        Succeeded(absl::StrCat("load-", i), "align", 40 + i % 3, 1000000000 + i * 1000);
  }
  ASSERT_EQ(*predictor->Record(batch), 20);

  // A task never seen, running the same program by another path.
  absl::StatusOr<gyre::v1::PredictResourcesResponse> response =
      predictor->Predict(AskFor("new-task", "/opt/tools/align"));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->predictions_size(), 1);
  const gyre::v1::ResourcePrediction& p = response->predictions(0);
  EXPECT_EQ(p.task_id(), "new-task");
  EXPECT_EQ(p.duration_seconds().level(), gyre::v1::PREDICTION_LEVEL_PROGRAM);
  EXPECT_NEAR(p.duration_seconds().value(), 41, 1.01);
  EXPECT_LE(p.duration_seconds().p10(), p.duration_seconds().value());
  EXPECT_GE(p.duration_seconds().p90(), p.duration_seconds().value());
  EXPECT_EQ(p.duration_seconds().observations(), 20);
  EXPECT_GT(p.duration_seconds().confidence(), 0.8);
  EXPECT_NEAR(p.memory_bytes().value(), 1e9, 1e6);

  // A program nobody ran: answered from the queue, less sure.
  response = predictor->Predict(AskFor("other", "sort"));
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->predictions(0).duration_seconds().level(), gyre::v1::PREDICTION_LEVEL_QUEUE);
}

TEST(ResourcePredictorTest, PricesTasksOfPricedQueuesWithDeclaredOrPredictedResources) {
  std::unique_ptr<ResourcePredictor> predictor = OpenIn("");
  gyre::v1::RecordObservationsRequest batch;
  // "align" runs 3600 s with 1 GiB and 1 core (Succeeded's cpu_cores).
  for (int i = 0; i < 20; ++i) {
    *batch.add_observations() = Succeeded(absl::StrCat("a-", i), "align", 3600, int64_t{1} << 30);
  }
  ASSERT_EQ(*predictor->Record(batch), 20);
  gyre::v1::PredictResourcesRequest request = AskFor("a-new", "/usr/bin/align");
  // The second task declares 4 cores and 2 GiB and one GPU: charged for them.
  *request.add_tasks() = request.tasks(0);
  request.mutable_tasks(1)->set_id("a-declared");
  request.mutable_tasks(1)->mutable_resources()->set_cpu(4);
  request.mutable_tasks(1)->mutable_resources()->set_memory_bytes(int64_t{2} << 30);
  request.mutable_tasks(1)->mutable_resources()->set_gpus(1);
  // The third runs on a queue with no price.
  *request.add_tasks() = request.tasks(0);
  request.mutable_tasks(2)->set_id("a-elsewhere");
  request.mutable_tasks(2)->set_queue("unpriced");
  gyre::v1::WorkerPrice& price = (*request.mutable_worker_prices())["default"];
  price.set_core_hour(0.04);
  price.set_gib_hour(0.01);
  price.set_gpu_hour(2.0);
  absl::StatusOr<gyre::v1::PredictResourcesResponse> response = predictor->Predict(request);
  ASSERT_TRUE(response.ok()) << response.status();
  const auto& p = response->predictions();
  const double hours = p[0].duration_seconds().value() / 3600;
  EXPECT_NEAR(hours, 1.0, 0.01);
  // Predicted: hours x (1 core x 0.04 + 1 GiB x 0.01).
  const double cores = p[0].cpu().value();
  const double gib = p[0].memory_bytes().value() / (1 << 30);
  EXPECT_NEAR(p[0].cost(), hours * (cores * 0.04 + gib * 0.01), 1e-9);
  EXPECT_NEAR(p[0].cost(), 0.05, 0.001);
  EXPECT_TRUE(p[0].priced());
  // Declared: hours x (4 x 0.04 + 2 x 0.01 + 1 x 2.0).
  EXPECT_NEAR(p[1].cost(), hours * 2.18, 1e-9);
  EXPECT_FALSE(p[2].priced());
  EXPECT_EQ(p[2].cost(), 0);
  EXPECT_NEAR(response->total_cost(), p[0].cost() + p[1].cost(), 1e-12);
}

TEST(ResourcePredictorTest, FailedAttemptsDoNotTeachTheModel) {
  std::unique_ptr<ResourcePredictor> predictor = OpenIn("");
  gyre::v1::RecordObservationsRequest batch;
  *batch.add_observations() = Succeeded("a", "align", 10, 1000);
  gyre::v1::ResourceObservation failed = Succeeded("a", "align", 9999, 1000);
  failed.set_succeeded(false);
  failed.set_outcome("failed");
  *batch.add_observations() = failed;
  EXPECT_EQ(*predictor->Record(batch), 1);
  EXPECT_EQ(predictor->observation_count(), 1);
}

TEST(ResourcePredictorTest, RejectsBatchesOverTheLimitNamingIt) {
  std::unique_ptr<ResourcePredictor> predictor = OpenIn("");
  gyre::v1::PredictResourcesRequest request;
  for (int i = 0; i <= ResourcePredictor::kMaxBatch; ++i) request.add_tasks()->set_id("t");
  absl::StatusOr<gyre::v1::PredictResourcesResponse> response = predictor->Predict(request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(response.status().message().find("limit of 10000"), std::string::npos);

  gyre::v1::RecordObservationsRequest batch;
  for (int i = 0; i <= ResourcePredictor::kMaxBatch; ++i) batch.add_observations();
  EXPECT_EQ(predictor->Record(batch).status().code(), absl::StatusCode::kInvalidArgument);

  gyre::v1::PredictResourcesRequest mismatched = AskFor("a", "x");
  mismatched.add_contexts();
  mismatched.add_contexts();
  EXPECT_EQ(predictor->Predict(mismatched).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResourcePredictorTest, SavedModelAnswersTheSameAfterReopening) {
  testing::ScratchDir dir("predictor_test");
  gyre::v1::PredictResourcesResponse before;
  {
    std::unique_ptr<ResourcePredictor> predictor = OpenIn(dir.path());
    gyre::v1::RecordObservationsRequest batch;
    for (int i = 0; i < 30; ++i)
      *batch.add_observations() = Succeeded("t", "align", 5 + i, 1 << 20);
    ASSERT_TRUE(predictor->Record(batch).ok());
    ASSERT_TRUE(predictor->Save().ok());
    before = *predictor->Predict(AskFor("t", "align"));
  }
  std::unique_ptr<ResourcePredictor> reopened = OpenIn(dir.path());
  EXPECT_EQ(reopened->load_warning(), "");
  EXPECT_EQ(reopened->observation_count(), 30);
  const gyre::v1::PredictResourcesResponse after = *reopened->Predict(AskFor("t", "align"));
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
}

TEST(ResourcePredictorTest, CorruptSavedModelIsSetAsideAndTheServiceStartsEmpty) {
  testing::ScratchDir dir("predictor_test");
  {
    std::unique_ptr<ResourcePredictor> predictor = OpenIn(dir.path());
    gyre::v1::RecordObservationsRequest batch;
    for (int i = 0; i < 10; ++i) *batch.add_observations() = Succeeded("t", "align", 5, 1 << 20);
    ASSERT_TRUE(predictor->Record(batch).ok());
    ASSERT_TRUE(predictor->Save().ok());
  }
  std::string saved;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) saved = entry.path();
  ASSERT_FALSE(saved.empty());
  {
    std::fstream file(saved, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(40);
    file.put('\x7f');
  }
  std::unique_ptr<ResourcePredictor> reopened = OpenIn(dir.path());
  ASSERT_NE(reopened, nullptr);
  EXPECT_NE(reopened->load_warning().find("not loaded"), std::string::npos)
      << reopened->load_warning();
  EXPECT_EQ(reopened->observation_count(), 0);
  EXPECT_TRUE(std::filesystem::exists(saved + ".corrupt"));
}

}  // namespace
}  // namespace gyre::predictor
