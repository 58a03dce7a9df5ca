#include "services/orchestrator/orchestrator_module.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/durable_log/directory_lock.h"
#include "libs/durable_log/event_log.h"
#include "libs/logging/logger.h"
#include "libs/server/api_service_module.h"
#include "libs/workflow/workflow_parser.h"
#include "prometheus/histogram.h"
#include "services/orchestrator/agent_service.h"
#include "services/orchestrator/embedded_state_store.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/workflow_engine.h"

namespace gyre::orchestrator {

namespace {

// gyre_store_sync_seconds of the serving orchestrator, fed by the durable
// log's process-wide sync observer (see durable_log::SetSyncObserver).
std::atomic<prometheus::Histogram*> store_sync_histogram{nullptr};

void ObserveStoreSync(double seconds) {
  if (prometheus::Histogram* histogram = store_sync_histogram.load(std::memory_order_acquire)) {
    histogram->Observe(seconds);
  }
}

}  // namespace

OrchestratorModule::OrchestratorModule() = default;
OrchestratorModule::~OrchestratorModule() = default;

absl::Status OrchestratorModule::ValidateConfig() {
  if (absl::Status status = config_.Validate(); !status.ok()) return status;
  if (config_.store == "postgres") {
    absl::StatusOr<std::string> password = config_.PostgresPassword();
    if (!password.ok()) return password.status();
    postgres_password_ = *std::move(password);
  }
  absl::StatusOr<security::JoinTokenVerifier> join_tokens =
      security::JoinTokenVerifier::FromHashes(config_.agent_join_token_hashes);
  if (!join_tokens.ok()) return join_tokens.status();
  join_tokens_ = *std::move(join_tokens);
  if (!config_.task_library_dir.empty()) {
    absl::StatusOr<gyre::v1::WorkflowDefinition> library =
        workflow::LoadTaskLibrary(config_.task_library_dir);
    if (!library.ok()) return library.status();
    task_library_ = std::make_shared<const gyre::v1::WorkflowDefinition>(*std::move(library));
  }
  return absl::OkStatus();
}

absl::Status OrchestratorModule::ClaimDataDir() {
  const std::string& dir = config_.data_dir;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("data_dir ", dir, " cannot be created: ", error.message(),
                     "; choose a writable directory with --data_dir"));
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("data_dir ", dir, " is not writable: ", std::strerror(errno),
                     "; choose a writable directory with --data_dir"));
  }
  absl::StatusOr<durable_log::DirectoryLock> lock = durable_log::DirectoryLock::Acquire(dir);
  if (!lock.ok()) {
    if (lock.status().code() == absl::StatusCode::kFailedPrecondition) {
      return absl::FailedPreconditionError(
          absl::StrCat("data_dir ", lock.status().message(),
                       ": another gyre-orchestrator or gyre dev uses it; stop that one or choose "
                       "another --data_dir"));
    }
    return absl::PermissionDeniedError(
        absl::StrCat("data_dir ", dir, " is not usable: ", lock.status().message()));
  }
  data_dir_lock_ = std::make_unique<durable_log::DirectoryLock>(*std::move(lock));
  return absl::OkStatus();
}

absl::Status OrchestratorModule::AddServices(server::ServiceHost* host) {
  if (config_.store == "embedded") {
    if (absl::Status status = ClaimDataDir(); !status.ok()) return status;
  }
  WorkflowEngine::Options options;
  options.lease_timeout = config_.lease_timeout;
  options.heartbeat_interval = config_.heartbeat_interval;
  options.worker_pools = config_.worker_pools;
  options.default_worker_pool = config_.default_worker_pool;
  options.task_library = task_library_;
  options.workflow_limits.max_tasks = config_.max_workflow_tasks;
  options.workflow_limits.max_edges = config_.max_workflow_edges;
  options.metrics = &host->metrics_registry();
  // Every state change waits for this sync: the alert on a slow disk.
  store_sync_histogram.store(
      &prometheus::BuildHistogram()
           .Name("gyre_store_sync_seconds")
           .Help("fdatasync of the embedded store's group commits.")
           .Register(host->metrics_registry())
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                            0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5, 1, 2.5}),
      std::memory_order_release);
  durable_log::SetSyncObserver(&ObserveStoreSync);
  if (config_.store == "postgres") {
    PostgresStoreOptions store_options;
    store_options.dsn = config_.postgres_dsn;
    store_options.password = postgres_password_;
    store_ = NewPostgresStateStore(std::move(store_options));
  } else {
    store_ = NewEmbeddedStateStore(config_.data_dir, config_.fsync, &host->metrics_registry());
  }
  options.store = store_.get();
  options.snapshot_every_records = static_cast<uint64_t>(config_.snapshot_every_records);
  // Fail-stop: the engine logged the error and stopped serving; the process
  // exits so that it restarts from what is durable. The second lets the
  // callers that were waiting for that append get its error first. No
  // graceful shutdown: it would snapshot state that is not durable.
  options.on_store_failure = [](const absl::Status& /*status*/) {
    absl::SleepFor(absl::Seconds(1));
    std::_Exit(EXIT_FAILURE);
  };
  engine_ = std::make_unique<WorkflowEngine>(std::move(options));
  // Everything acknowledged before the last stop is back before serving.
  if (absl::Status status = engine_->Recover(); !status.ok()) return status;
  api_service_ = std::make_unique<OrchestratorServiceImpl>(
      engine_.get(),
      StartRateLimiter::Options{static_cast<double>(config_.executions_per_second_per_client),
                                static_cast<double>(config_.execution_burst_per_client)});
  if (config_.store == "embedded") {
    disk_space_guard_ = std::make_unique<DiskSpaceGuard>(
        config_.data_dir, static_cast<uint64_t>(config_.min_free_disk_bytes));
    api_service_->set_disk_space_guard(disk_space_guard_.get());
  }
  agent_service_ = std::make_unique<AgentServiceImpl>(engine_.get(), join_tokens_);
  if (join_tokens_.open()) {
    logging::Warn(
        "no agent_join_token_hashes configured: any process that reaches the gRPC port can "
        "register as an agent and receive tasks (their commands and context); set them with "
        "gyre hash-token outside development");
  }
  host->AddService(api_service_.get(), "gyre.v1.OrchestratorService");
  host->AddService(agent_service_.get(), "gyre.v1.AgentService");
  host->AddHealthName(server::ComponentHealthName("orchestrator"));
  return absl::OkStatus();
}

void OrchestratorModule::OnShutdown(absl::Duration /*grace*/) {
  // Streams never end on their own; close them so the server can drain.
  if (api_service_ != nullptr) api_service_->Stop();
  if (agent_service_ != nullptr) agent_service_->CloseStreams();
}

void OrchestratorModule::OnStopped() {
  // The next start then loads this instead of replaying the log.
  if (engine_ != nullptr) engine_->WriteSnapshot().IgnoreError();  // logged by the engine
  // The histogram goes with the host's registry once this returns.
  store_sync_histogram.store(nullptr, std::memory_order_release);
}

}  // namespace gyre::orchestrator
