#ifndef GYRE_SERVICES_PREDICTOR_SNAPSHOT_MODEL_STORE_H_
#define GYRE_SERVICES_PREDICTOR_SNAPSHOT_MODEL_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/durable_log/snapshot_store.h"
#include "services/predictor/model_store.h"

namespace gyre::predictor {

struct SnapshotModelStoreOptions {
  // The directory of the model's files ("<data_dir>"); created if missing.
  std::string dir;
  // fdatasync each saved model (off only for tests and benchmarks).
  bool sync = true;
  // Files kept after a save, the new one included.
  int keep = 1;
};

// The model as snapshot files in a directory (`store: embedded`):
// durable_log::SnapshotStore's "snapshot-<observation count>" with a
// version header and a CRC, written to a temporary file, synced and
// renamed, so a crash leaves the old or the new model. A corrupt file is
// renamed "*.corrupt" (kept for inspection, never pruned). Meant for one
// predictor per directory: versions are observation counts, which only
// grow between one predictor's saves.
class SnapshotModelStore : public ModelStore {
 public:
  // Creates the directory and removes temporary files a crash left.
  static absl::StatusOr<std::unique_ptr<SnapshotModelStore>> Open(
      SnapshotModelStoreOptions options);

  std::string Describe() const override { return options_.dir; }
  absl::StatusOr<SavedModel> LoadNewest() override;
  absl::Status Save(absl::string_view model, int64_t observation_count) override;
  absl::Status SetAside(int64_t version) override;
  absl::StatusOr<std::vector<int64_t>> ListVersions() override;

 private:
  explicit SnapshotModelStore(SnapshotModelStoreOptions options)
      : options_(std::move(options)), files_(options_.dir, options_.sync) {}

  const SnapshotModelStoreOptions options_;
  const durable_log::SnapshotStore files_;
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_SNAPSHOT_MODEL_STORE_H_
