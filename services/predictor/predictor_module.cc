#include "services/predictor/predictor_module.h"

#include "absl/strings/str_cat.h"
#include "libs/config/config_schema.h"
#include "libs/logging/logger.h"
#include "libs/postgres/postgres_password.h"
#include "libs/server/api_service_module.h"
#include "libs/server/service_host.h"
#include "services/predictor/postgres_model_store.h"
#include "services/predictor/snapshot_model_store.h"

namespace gyre::predictor {

PredictorModule::~PredictorModule() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (save_thread_.joinable()) save_thread_.join();
}

void PredictorModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddChoice("store", &config_.store, {"embedded", "postgres"},
                    "where the model is saved: files in data_dir, or a PostgreSQL table");
  schema->AddString("data_dir", &config_.data_dir,
                    "store: embedded: directory the predictor's model is saved in");
  schema->AddString("postgres_dsn", &config_.postgres_dsn,
                    "store: postgres: libpq connection string (password apart)");
  schema->AddString("postgres_password_file", &config_.postgres_password_file,
                    "file holding the postgres password (or env GYRE_POSTGRES_PASSWORD)");
  schema->AddDuration("save_interval", &config_.save_interval,
                      "how often a changed model is saved");
  schema->AddInt("model_max_keys", &config_.model_max_keys, 1, int64_t{1} << 32,
                 "task/program/queue keys the model keeps (least recently observed evicted)");
  schema->AddDuration("model_max_age", &config_.model_max_age,
                      "keys not observed for this long are evicted");
}

absl::Status PredictorModule::ValidateConfig() {
  if (config_.store == "postgres") {
    if (config_.postgres_dsn.empty()) {
      return absl::InvalidArgumentError("postgres_dsn: required with store: postgres");
    }
    absl::StatusOr<std::string> password =
        postgres::ReadPostgresPassword(config_.postgres_password_file);
    if (!password.ok()) return password.status();
    postgres_password_ = *std::move(password);
  } else if (config_.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: must not be empty");
  }
  if (config_.save_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("save_interval: must be at least 1s");
  }
  if (config_.model_max_age < absl::Hours(1)) {
    return absl::InvalidArgumentError("model_max_age: must be at least 1h");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModelStore>> PredictorModule::OpenModelStore() const {
  if (config_.store == "postgres") {
    PostgresModelStoreOptions options;
    options.dsn = config_.postgres_dsn;
    options.password = postgres_password_;
    return PostgresModelStore::Open(std::move(options));
  }
  SnapshotModelStoreOptions options;
  options.dir = config_.data_dir;
  absl::StatusOr<std::unique_ptr<SnapshotModelStore>> store =
      SnapshotModelStore::Open(std::move(options));
  if (!store.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir ", config_.data_dir, ": ", store.status().message(),
                     "; choose a writable directory with --data_dir"));
  }
  return std::unique_ptr<ModelStore>(*std::move(store));
}

absl::Status PredictorModule::AddServices(server::ServiceHost* host) {
  absl::StatusOr<std::unique_ptr<ModelStore>> store = OpenModelStore();
  if (!store.ok()) return store.status();
  const std::string where = (*store)->Describe();
  ResourcePredictorOptions options;
  options.model.max_keys = config_.model_max_keys;
  options.model.max_age_seconds = absl::ToInt64Seconds(config_.model_max_age);
  absl::StatusOr<std::unique_ptr<ResourcePredictor>> predictor =
      ResourcePredictor::Open(std::move(options), *std::move(store));
  if (!predictor.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("predictor model in ", where, ": ", predictor.status().message()));
  }
  predictor_ = *std::move(predictor);
  logging::Info("predictor model loaded", {{"observations", predictor_->observation_count()},
                                           {"store", config_.store},
                                           {"where", where}});
  service_ = std::make_unique<PredictorServiceImpl>(predictor_.get(), &host->metrics_registry());
  host->AddService(service_.get(), "gyre.v1.PredictorService");
  host->DeclareImplementedRpcs("gyre.v1.PredictorService", PredictorServiceImpl::ImplementedRpcs());
  host->AddHealthName(server::ComponentHealthName("predictor"));
  return absl::OkStatus();
}

absl::Status PredictorModule::OnServing(server::ServiceHost* /*host*/) {
  save_thread_ = std::thread([this] { SaveLoop(); });
  return absl::OkStatus();
}

void PredictorModule::SaveLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), config_.save_interval);
    if (stopping_) break;
    mu_.Unlock();
    if (absl::Status status = predictor_->Save(); !status.ok()) {
      logging::Warn("predictor model not saved", {{"error", std::string(status.message())}});
    }
    mu_.Lock();
  }
}

void PredictorModule::OnShutdown(absl::Duration /*grace*/) {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (save_thread_.joinable()) save_thread_.join();
}

void PredictorModule::OnStopped() {
  if (predictor_ == nullptr) return;
  if (absl::Status status = predictor_->Save(); !status.ok()) {
    logging::Error("predictor model not saved at shutdown",
                   {{"error", std::string(status.message())}});
  }
}

}  // namespace gyre::predictor
