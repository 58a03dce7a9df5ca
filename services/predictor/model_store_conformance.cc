#include "services/predictor/model_store_conformance.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/predictor/resource_predictor.h"

namespace gyre::predictor {

std::string ModelStoreConformanceTest::BackendName(
    const ::testing::TestParamInfo<ModelStoreBackendFactory>& info) {
  return info.param.name;
}

void ModelStoreConformanceTest::SetUp() { backend_ = GetParam().make(); }

namespace {

// Bytes no text-only path would keep: a NUL, high bytes, a quote.
std::string ModelBytes(absl::string_view tag) {
  return absl::StrCat("model-", tag, std::string("\0\xff\x01'\\", 5), "-end");
}

gyre::v1::RecordObservationsRequest Observations(int count, int seconds) {
  gyre::v1::RecordObservationsRequest batch;
  for (int i = 0; i < count; ++i) {
    gyre::v1::ResourceObservation* o = batch.add_observations();
    o->set_workflow("workflows/etl");
    o->set_task_id(absl::StrCat("load-", i));
    o->set_program("load");
    o->set_queue("default");
    o->mutable_duration()->set_seconds(seconds);
    o->set_peak_memory_bytes(int64_t{1} << 30);
    o->set_cpu_cores(1.0);
    o->set_succeeded(true);
  }
  return batch;
}

gyre::v1::PredictResourcesRequest AskForLoad() {
  gyre::v1::PredictResourcesRequest request;
  request.set_workflow("workflows/etl");
  gyre::v1::TaskSpec* task = request.add_tasks();
  task->set_id("load-new");
  task->add_command("load");
  task->set_queue("default");
  return request;
}

std::unique_ptr<ResourcePredictor> OpenPredictor(std::unique_ptr<ModelStore> store) {
  absl::StatusOr<std::unique_ptr<ResourcePredictor>> predictor =
      ResourcePredictor::Open({}, std::move(store));
  EXPECT_TRUE(predictor.ok()) << predictor.status();
  return predictor.ok() ? *std::move(predictor) : nullptr;
}

TEST_P(ModelStoreConformanceTest, EmptyStoreLoadsNotFound) {
  std::unique_ptr<ModelStore> store = backend_->Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<SavedModel> loaded = store->LoadNewest();
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound) << loaded.status();
  absl::StatusOr<std::vector<int64_t>> versions = store->ListVersions();
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_TRUE(versions->empty());
}

TEST_P(ModelStoreConformanceTest, SavedModelLoadsBackByteForByteAfterReopening) {
  {
    std::unique_ptr<ModelStore> store = backend_->Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Save(ModelBytes("a"), 7).ok());
  }
  std::unique_ptr<ModelStore> reopened = backend_->Open();
  ASSERT_NE(reopened, nullptr);
  absl::StatusOr<SavedModel> loaded = reopened->LoadNewest();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model, ModelBytes("a"));
  EXPECT_EQ(loaded->observation_count, 7);
}

TEST_P(ModelStoreConformanceTest, NewestSaveWins) {
  {
    std::unique_ptr<ModelStore> store = backend_->Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Save(ModelBytes("first"), 10).ok());
    ASSERT_TRUE(store->Save(ModelBytes("second"), 20).ok());
    ASSERT_TRUE(store->Save(ModelBytes("third"), 30).ok());
    absl::StatusOr<SavedModel> loaded = store->LoadNewest();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->model, ModelBytes("third"));
  }
  absl::StatusOr<SavedModel> loaded = backend_->Open()->LoadNewest();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model, ModelBytes("third"));
  EXPECT_EQ(loaded->observation_count, 30);
}

TEST_P(ModelStoreConformanceTest, SavingPrunesAllButTheNewestFew) {
  std::unique_ptr<ModelStore> store = backend_->Open();
  ASSERT_NE(store, nullptr);
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(store->Save(ModelBytes(absl::StrCat(i)), i * 10).ok());
  absl::StatusOr<std::vector<int64_t>> versions = store->ListVersions();
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), static_cast<size_t>(ModelStoreBackend::kKeep));
  EXPECT_LT(versions->front(), versions->back());
  absl::StatusOr<SavedModel> loaded = store->LoadNewest();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version, versions->back());
  EXPECT_EQ(loaded->model, ModelBytes("5"));
}

TEST_P(ModelStoreConformanceTest, CorruptNewestIsReportedAndSetAsideForTheOneBefore) {
  {
    std::unique_ptr<ModelStore> store = backend_->Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Save(ModelBytes("older"), 10).ok());
    ASSERT_TRUE(store->Save(ModelBytes("newer"), 20).ok());
  }
  backend_->CorruptNewest();
  std::unique_ptr<ModelStore> store = backend_->Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<SavedModel> loaded = store->LoadNewest();
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  // Set aside: the next start does not trip on it again.
  absl::StatusOr<SavedModel> after = backend_->Open()->LoadNewest();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->model, ModelBytes("older"));
}

TEST_P(ModelStoreConformanceTest, TruncatedNewestIsReportedAsDataLoss) {
  {
    std::unique_ptr<ModelStore> store = backend_->Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Save(ModelBytes("only"), 10).ok());
  }
  backend_->TruncateNewest();
  absl::StatusOr<SavedModel> loaded = backend_->Open()->LoadNewest();
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  EXPECT_EQ(backend_->Open()->LoadNewest().status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ModelStoreConformanceTest, PredictorAnswersTheSameAfterRestartingOnTheStore) {
  gyre::v1::PredictResourcesResponse before;
  {
    std::unique_ptr<ResourcePredictor> predictor = OpenPredictor(backend_->Open());
    ASSERT_NE(predictor, nullptr);
    ASSERT_TRUE(predictor->Record(Observations(30, 90)).ok());
    ASSERT_TRUE(predictor->Save().ok());
    before = *predictor->Predict(AskForLoad());
  }
  std::unique_ptr<ResourcePredictor> reopened = OpenPredictor(backend_->Open());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->load_warning(), "");
  EXPECT_EQ(reopened->observation_count(), 30);
  EXPECT_EQ(reopened->Predict(AskForLoad())->SerializeAsString(), before.SerializeAsString());
}

TEST_P(ModelStoreConformanceTest, PredictorStartsEmptyWithAWarningOnACorruptModel) {
  {
    std::unique_ptr<ResourcePredictor> predictor = OpenPredictor(backend_->Open());
    ASSERT_NE(predictor, nullptr);
    ASSERT_TRUE(predictor->Record(Observations(10, 90)).ok());
    ASSERT_TRUE(predictor->Save().ok());
  }
  backend_->CorruptNewest();
  std::unique_ptr<ResourcePredictor> reopened = OpenPredictor(backend_->Open());
  ASSERT_NE(reopened, nullptr);
  EXPECT_NE(reopened->load_warning().find("not loaded"), std::string::npos)
      << reopened->load_warning();
  EXPECT_NE(reopened->load_warning().find("starting with an empty model"), std::string::npos)
      << reopened->load_warning();
  EXPECT_EQ(reopened->observation_count(), 0);
  // It learns and saves again, and that model is what the next start loads.
  ASSERT_TRUE(reopened->Record(Observations(3, 90)).ok());
  ASSERT_TRUE(reopened->Save().ok());
  reopened.reset();
  std::unique_ptr<ResourcePredictor> third = OpenPredictor(backend_->Open());
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->load_warning(), "");
  EXPECT_EQ(third->observation_count(), 3);
}

TEST_P(ModelStoreConformanceTest, ModelThePredictorCannotParseIsSetAside) {
  {
    std::unique_ptr<ModelStore> store = backend_->Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Save("not a model at all", 3).ok());
  }
  std::unique_ptr<ResourcePredictor> predictor = OpenPredictor(backend_->Open());
  ASSERT_NE(predictor, nullptr);
  EXPECT_NE(predictor->load_warning().find("not loaded"), std::string::npos)
      << predictor->load_warning();
  EXPECT_EQ(predictor->observation_count(), 0);
  EXPECT_EQ(backend_->Open()->LoadNewest().status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gyre::predictor
