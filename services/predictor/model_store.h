#ifndef GYRE_SERVICES_PREDICTOR_MODEL_STORE_H_
#define GYRE_SERVICES_PREDICTOR_MODEL_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::predictor {

// One saved model as a store hands it back.
struct SavedModel {
  // Orders the saves of a store: the newest has the highest. The snapshot
  // files' is the model's observation count; PostgreSQL's the row's id.
  int64_t version = 0;
  // The model's observation count when it was saved.
  int64_t observation_count = 0;
  // ResourceModel::Serialize() bytes, verified against the stored CRC.
  std::string model;
};

// Where gyre-predictor keeps its model across restarts (the config key
// `store`): snapshot files in data_dir (snapshot_model_store.h) or a table
// in the cluster's PostgreSQL database (postgres_model_store.h). The store
// keeps opaque bytes with a checksum; the model's own format is
// ResourceModel's. Both implementations pass model_store_conformance.h.
//
// Thread-safety: an implementation serializes its own calls; the predictor
// saves from one thread at a time anyway.
class ModelStore {
 public:
  virtual ~ModelStore() = default;

  // Where the models are kept, for logs and messages (a directory, or
  // "postgres host=db dbname=gyre"); never a password.
  virtual std::string Describe() const = 0;

  // The newest saved model that was not set aside. NOT_FOUND: none saved
  // yet. DATA_LOSS: the newest is corrupt (bad CRC, truncated); it has been
  // set aside (so the next start does not trip on it again) and the message
  // names it. Anything else: the store cannot be read at all.
  virtual absl::StatusOr<SavedModel> LoadNewest() = 0;

  // Keeps `model` (whose observation count is `observation_count`) as the
  // newest, durably (all or nothing), then removes the older ones beyond
  // the few the store keeps. One predictor's counts grow between saves;
  // several predictors sharing a store each save theirs: the last save
  // wins.
  virtual absl::Status Save(absl::string_view model, int64_t observation_count) = 0;

  // Sets the model of `version` aside (LoadNewest returned it but the
  // model could not be parsed): never loaded again, kept for inspection
  // until pruned.
  virtual absl::Status SetAside(int64_t version) = 0;

  // The versions LoadNewest could return, oldest first (what pruning kept).
  virtual absl::StatusOr<std::vector<int64_t>> ListVersions() = 0;
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_MODEL_STORE_H_
