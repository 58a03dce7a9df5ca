#ifndef GYRE_SERVICES_PREDICTOR_POSTGRES_MODEL_STORE_H_
#define GYRE_SERVICES_PREDICTOR_POSTGRES_MODEL_STORE_H_

#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/predictor/model_store.h"

namespace gyre::predictor {

struct PostgresModelStoreOptions {
  // libpq connection string, key=value or URI; multi-host lists and
  // target_session_attrs pass through to libpq unchanged.
  std::string dsn;
  // Set (when not empty) as the connection's password, overriding one in
  // `dsn`. Never logged nor put in an error.
  std::string password;
  // Rows kept after a save, the new one included.
  int keep = 3;
};

// The model as rows of `predictor_models` in the cluster's PostgreSQL
// database (`store: postgres`), so that a predictor needs no volume and a
// replacement pod starts from what its predecessor learned.
//
// The table is the predictor's own, created by the predictor's own
// versioned migrations (`predictor_schema_migrations`) at Open, in one
// transaction under a transaction advisory lock, as the orchestrator does
// for its schema. Why not a version in the orchestrator's migration set:
// the predictor must not depend on the orchestrator's code (its
// migrations live in services/orchestrator), it may start before any
// orchestrator has migrated the database (Helm starts every pod at once),
// and the orchestrator's schema_migrations refuses a database whose version
// it does not know, so predictor versions there would trip orchestrators
// of another release.
//
// Save is one INSERT (with the model's length and CRC-32) and the DELETE
// of rows beyond the newest `keep`, in one transaction. The newest is the
// highest id: with several predictors on one database the last save wins
// (docs/predictor.md, "Persistence"). A lost connection is reopened at the
// next call. Thread-safe (calls are serialized).
class PostgresModelStore : public ModelStore {
 public:
  // Connects and applies the pending migrations.
  static absl::StatusOr<std::unique_ptr<PostgresModelStore>> Open(
      PostgresModelStoreOptions options);

  std::string Describe() const override;
  absl::StatusOr<SavedModel> LoadNewest() override;
  absl::Status Save(absl::string_view model, int64_t observation_count) override;
  absl::Status SetAside(int64_t version) override;
  absl::StatusOr<std::vector<int64_t>> ListVersions() override;

 private:
  PostgresModelStore(PostgresModelStoreOptions options, std::string conninfo);

  // Runs `body` on the connection (opened first when there is none),
  // libpqxx's exceptions turned into a Status; a lost connection is
  // dropped so the next call reconnects.
  template <typename Body>
  absl::Status Run(absl::string_view what, Body&& body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PostgresModelStoreOptions options_;
  const std::string conninfo_;
  const std::string where_;  // the DSN without its password
  const std::vector<std::string> secrets_;
  const std::string saved_by_;  // host:pid, in each saved row
  absl::Mutex mu_;
  std::unique_ptr<pqxx::connection> connection_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_POSTGRES_MODEL_STORE_H_
