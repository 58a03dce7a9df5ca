#include "services/predictor/snapshot_model_store.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gyre::predictor {

absl::StatusOr<std::unique_ptr<SnapshotModelStore>> SnapshotModelStore::Open(
    SnapshotModelStoreOptions options) {
  std::error_code error;
  std::filesystem::create_directories(options.dir, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat("predictor state directory ", options.dir,
                                                      " cannot be created: ", error.message()));
  }
  std::unique_ptr<SnapshotModelStore> store(new SnapshotModelStore(std::move(options)));
  if (absl::Status status = store->files_.RemoveTemporaryFiles(nullptr); !status.ok()) {
    return status;
  }
  return store;
}

absl::StatusOr<SavedModel> SnapshotModelStore::LoadNewest() {
  absl::StatusOr<std::vector<uint64_t>> saved = files_.List();
  if (!saved.ok()) return saved.status();
  if (saved->empty()) {
    return absl::NotFoundError(absl::StrCat("no saved model in ", options_.dir));
  }
  const uint64_t newest = saved->back();
  absl::StatusOr<durable_log::Snapshot> snapshot = files_.Load(newest);
  if (!snapshot.ok()) {
    // Unreadable counts as corrupt, as it always did: a bad file never
    // keeps the service down.
    if (absl::Status quarantined = files_.Quarantine(newest); !quarantined.ok()) {
      return quarantined;
    }
    return absl::DataLossError(absl::StrCat(snapshot.status().message(), " (renamed to ",
                                            files_.PathFor(newest), ".corrupt)"));
  }
  SavedModel model;
  model.version = static_cast<int64_t>(newest);
  model.observation_count = static_cast<int64_t>(newest);
  model.model = std::move(snapshot->state);
  return model;
}

absl::Status SnapshotModelStore::Save(absl::string_view model, int64_t observation_count) {
  const uint64_t index = static_cast<uint64_t>(observation_count);
  if (absl::Status status = files_.Write(index, model); !status.ok()) return status;
  absl::StatusOr<std::vector<uint64_t>> saved = files_.List();
  if (!saved.ok()) return saved.status();
  // Older files by observation count (one predictor's only grows), of
  // which the newest keep - 1 stay beside the one just written.
  std::vector<uint64_t> older;
  for (uint64_t saved_index : *saved) {
    if (saved_index < index) older.push_back(saved_index);
  }
  const size_t stay = static_cast<size_t>(std::max(options_.keep - 1, 0));
  for (size_t i = 0; i + stay < older.size(); ++i) {
    if (absl::Status status = files_.Remove(older[i]); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status SnapshotModelStore::SetAside(int64_t version) {
  return files_.Quarantine(static_cast<uint64_t>(version));
}

absl::StatusOr<std::vector<int64_t>> SnapshotModelStore::ListVersions() {
  absl::StatusOr<std::vector<uint64_t>> saved = files_.List();
  if (!saved.ok()) return saved.status();
  return std::vector<int64_t>(saved->begin(), saved->end());
}

}  // namespace gyre::predictor
