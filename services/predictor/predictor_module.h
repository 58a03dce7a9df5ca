#ifndef GYRE_SERVICES_PREDICTOR_PREDICTOR_MODULE_H_
#define GYRE_SERVICES_PREDICTOR_PREDICTOR_MODULE_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/server/service_main.h"
#include "services/predictor/model_store.h"
#include "services/predictor/predictor_service.h"
#include "services/predictor/resource_predictor.h"

namespace gyre::predictor {

// gyre-predictor's settings (docs/configuration.md).
struct PredictorConfig {
  // Where the model is saved: "embedded" (snapshot files in data_dir) or
  // "postgres" (table predictor_models in the database at postgres_dsn).
  std::string store = "embedded";
  // With store: embedded, the model's directory.
  std::string data_dir = "/var/lib/gyre/predictor";
  // With store: postgres, the libpq connection string (key=value or URI;
  // multi-host lists work), its password given apart as the
  // orchestrator's is: GYRE_POSTGRES_PASSWORD or postgres_password_file.
  std::string postgres_dsn;
  std::string postgres_password_file;
  // How often a changed model is saved (and once more at shutdown).
  absl::Duration save_interval = absl::Seconds(30);
  // Model bounds (ResourceModelOptions).
  int64_t model_max_keys = 50000;
  absl::Duration model_max_age = absl::Hours(24 * 30);
};

// Process wiring of gyre-predictor: opens the model's store (data_dir or
// PostgreSQL, by `store`), serves
// PredictorService, saves the model every save_interval from a background
// thread and once more after the server drained.
class PredictorModule : public server::ServiceModule {
 public:
  PredictorModule() = default;
  ~PredictorModule() override;

  void RegisterConfig(config::ConfigSchema* schema) override;
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;
  absl::Status OnServing(server::ServiceHost* host) override;
  void OnShutdown(absl::Duration grace) override;
  void OnStopped() override;

  PredictorConfig& mutable_config() { return config_; }

 private:
  void SaveLoop();
  absl::StatusOr<std::unique_ptr<ModelStore>> OpenModelStore() const;

  PredictorConfig config_;
  std::string postgres_password_;  // resolved in ValidateConfig; never logged
  std::unique_ptr<ResourcePredictor> predictor_;
  std::unique_ptr<PredictorServiceImpl> service_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread save_thread_;
};

}  // namespace gyre::predictor

#endif  // GYRE_SERVICES_PREDICTOR_PREDICTOR_MODULE_H_
