// The snapshot-file model store passes the ModelStore conformance suite in
// a scratch directory.
#include "services/predictor/snapshot_model_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/testing/scratch_dir.h"
#include "services/predictor/model_store_conformance.h"

namespace gyre::predictor {
namespace {

class SnapshotFilesBackend : public ModelStoreBackend {
 public:
  std::unique_ptr<ModelStore> Open() override {
    SnapshotModelStoreOptions options;
    options.dir = dir_.path() + "/predictor";
    options.sync = false;
    options.keep = kKeep;
    absl::StatusOr<std::unique_ptr<SnapshotModelStore>> store =
        SnapshotModelStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  void CorruptNewest() override {
    const std::string path = NewestFile();
    ASSERT_FALSE(path.empty());
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-1, std::ios::end);
    const char last = static_cast<char>(file.get());
    file.seekp(-1, std::ios::end);
    file.put(static_cast<char>(last ^ 0x5a));
  }

  void TruncateNewest() override {
    const std::string path = NewestFile();
    ASSERT_FALSE(path.empty());
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);
  }

 private:
  // "snapshot-<20 digits>": the highest name is the highest version.
  std::string NewestFile() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path() + "/predictor")) {
      const std::string name = entry.path().filename();
      if (absl::StartsWith(name, "snapshot-") && name.find('.') == std::string::npos) {
        names.push_back(entry.path());
      }
    }
    std::sort(names.begin(), names.end());
    return names.empty() ? "" : names.back();
  }

  testing::ScratchDir dir_{"snapshot_model_store_test"};
};

INSTANTIATE_TEST_SUITE_P(Snapshot, ModelStoreConformanceTest,
                         ::testing::Values(ModelStoreBackendFactory{
                             "snapshot", [] { return std::make_unique<SnapshotFilesBackend>(); }}),
                         ModelStoreConformanceTest::BackendName);

TEST(SnapshotModelStoreTest, ADirectoryThatCannotBeCreatedIsRefusedWithItsName) {
  SnapshotModelStoreOptions options;
  options.dir = "/proc/gyre-model-store-test";
  absl::StatusOr<std::unique_ptr<SnapshotModelStore>> store =
      SnapshotModelStore::Open(std::move(options));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "/proc/gyre-model-store-test"))
      << store.status();
}

}  // namespace
}  // namespace gyre::predictor
