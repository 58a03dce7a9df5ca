#include "services/orchestrator/orchestrator_module.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/durable_log/directory_lock.h"
#include "libs/durable_log/event_log.h"
#include "libs/logging/logger.h"
#include "libs/security/grpc_credentials.h"
#include "libs/server/api_service_module.h"
#include "libs/workflow/workflow_parser.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "services/orchestrator/agent_service.h"
#include "services/orchestrator/cluster_backlog.h"
#include "services/orchestrator/embedded_state_store.h"
#include "services/orchestrator/load_forecaster.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/postgres_projector.h"
#include "services/orchestrator/postgres_shard_store.h"
#include "services/orchestrator/postgres_state_store.h"
#include "services/orchestrator/predictor_link.h"
#include "services/orchestrator/scheduler_link.h"
#include "services/orchestrator/shard_coordinator.h"
#include "services/orchestrator/shard_directory.h"
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
OrchestratorModule::~OrchestratorModule() {
  // It calls into the engine and the store.
  if (coordinator_ != nullptr) coordinator_->Stop();
  // The engine outlives the link: it must stop calling it first.
  if (engine_ != nullptr && scheduler_link_ != nullptr) engine_->SetBacklogListener(nullptr);
  // Its handler calls into the engine, which goes first.
  if (predictor_link_ != nullptr) predictor_link_->StopPredictions();
}

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
  options.task_cost = config_.task_cost;
  options.metrics = &host->metrics_registry();
  if (!config_.predictor_address.empty()) {
    PredictorLink::Options link;
    link.address = config_.predictor_address;
    link.tls = host->config().tls;
    link.max_buffered = static_cast<size_t>(config_.predictor_observation_buffer);
    link.metrics = &host->metrics_registry();
    absl::StatusOr<std::unique_ptr<PredictorLink>> created = PredictorLink::Create(std::move(link));
    if (!created.ok()) return created.status();
    predictor_link_ = *std::move(created);
    options.observations = predictor_link_.get();
    options.predictions = predictor_link_.get();
  }
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
    store_options.retry_for = config_.postgres_retry_for;
    if (config_.postgres_sharding) {
      // Several orchestrators: records per shard, fenced by the leases the
      // coordinator takes once serving; the engine starts owning none and
      // Recover replays the definitions only.
      PostgresShardStoreOptions shard_options;
      shard_options.store = std::move(store_options);
      shard_options.orchestrator_id = config_.OrchestratorId();
      shard_options.ttl = config_.shard_lease_ttl;
      shard_options.keep_records_for_projection = config_.postgres_projection;
      std::unique_ptr<PostgresShardStore> shard_store =
          PostgresShardStore::Create(std::move(shard_options));
      shard_store_ = shard_store.get();
      store_ = std::move(shard_store);
      options.owned_shards = std::vector<uint32_t>{};
      // Each member owns about 1/N of the executions: desired workers add
      // the others' backlog, which the lease rounds exchange.
      cluster_backlog_ = std::make_unique<ClusterBacklog>();
      options.cluster_backlog = cluster_backlog_.get();
    } else {
      store_ = NewPostgresStateStore(std::move(store_options));
    }
  } else {
    store_ = NewEmbeddedStateStore(config_.data_dir, config_.fsync, &host->metrics_registry());
  }
  {
    absl::MutexLock lock(&store_health_mu_);
    store_available_gauge_ =
        &prometheus::BuildGauge()
             .Name("orchestrator_store_available")
             .Help(
                 "1 while the state store can commit, 0 while it cannot (a lost PostgreSQL "
                 "connection being retried): readiness is NOT_SERVING meanwhile")
             .Register(host->metrics_registry())
             .Add({});
    store_available_gauge_->Set(1);
    store_reconnects_ = &prometheus::BuildCounter()
                             .Name("orchestrator_store_reconnects_total")
                             .Help("Times the state store could commit again after an outage")
                             .Register(host->metrics_registry())
                             .Add({});
  }
  store_->SetAvailabilityObserver([this](bool available) { OnStoreAvailability(available); });
  options.store = store_.get();
  options.store_outage_wait = config_.store_outage_wait;
  // Sharded, snapshots are per shard (the coordinator's): the store
  // refuses one of everything.
  options.snapshot_every_records =
      shard_store_ != nullptr ? 0 : static_cast<uint64_t>(config_.snapshot_every_records);
  options.retention = config_.retention;
  // Fail-stop: the engine logged the error and stopped serving; the process
  // exits so that it restarts from what is durable. The second lets the
  // callers that were waiting for that append get its error first. No
  // graceful shutdown: it would snapshot state that is not durable.
  options.on_store_failure = [](const absl::Status& /*status*/) {
    absl::SleepFor(absl::Seconds(1));
    std::_Exit(EXIT_FAILURE);
  };
  engine_ = std::make_unique<WorkflowEngine>(std::move(options));
  if (predictor_link_ != nullptr) {
    predictor_link_->set_prediction_handler(
        [engine = engine_.get()](const std::string& execution,
                                 std::vector<std::pair<std::string, TaskPrediction>> predictions) {
          engine->ApplyPredictions(execution, std::move(predictions));
        });
  }
  // Everything acknowledged before the last stop is back before serving.
  if (absl::Status status = engine_->Recover(); !status.ok()) return status;
  api_service_ = std::make_unique<OrchestratorServiceImpl>(
      engine_.get(),
      StartRateLimiter::Options{static_cast<double>(config_.executions_per_second_per_client),
                                static_cast<double>(config_.execution_burst_per_client)});
  api_service_->set_worker_prices(config_.task_cost.prices);
  client_limits_ = std::make_unique<ClientLimits>(
      ClientLimits::Options{config_.max_streams_per_client, config_.max_inflight_calls_per_client});
  api_service_->set_client_limits(client_limits_.get());
  api_service_->set_max_event_streams(static_cast<int>(config_.max_event_streams));
  if (shard_store_ != nullptr) {
    // A call about another orchestrator's execution is made on its owner,
    // as the lease rounds name it (none known before the first round).
    shard_directory_ = std::make_unique<LeaseShardDirectory>(config_.OrchestratorId());
    api_service_->set_shard_directory(
        shard_directory_.get(), OwnerForwarding::Options{host->config().tls, kDefaultShardCount});
  }
  if (config_.store == "postgres" && config_.postgres_projection) {
    // Created once the store migrated the schema (Recover loaded it);
    // started with serving.
    PostgresProjectorOptions projection;
    projection.store.dsn = config_.postgres_dsn;
    projection.store.password = postgres_password_;
    projection.metrics = &host->metrics_registry();
    if (shard_directory_ != nullptr) {
      // Sharded: each orchestrator projects the shards the lease rounds
      // say it owns (a shard that moved is continued by its new owner).
      projection.held_shards = [directory = shard_directory_.get()] {
        std::vector<uint32_t> held;
        for (uint32_t shard = 0; shard < kDefaultShardCount; ++shard) {
          const std::optional<OrchestratorMember> owner = directory->OwnerOf(shard);
          if (owner && owner->id == directory->self_id()) held.push_back(shard);
        }
        return held;
      };
    }
    projector_ = std::make_unique<PostgresProjector>(std::move(projection));
  }
  if (config_.store == "embedded") {
    disk_space_guard_ = std::make_unique<DiskSpaceGuard>(
        config_.data_dir, static_cast<uint64_t>(config_.min_free_disk_bytes));
    api_service_->set_disk_space_guard(disk_space_guard_.get());
  }
  agent_service_ = std::make_unique<AgentServiceImpl>(engine_.get(), join_tokens_);
  agent_service_->set_client_limits(client_limits_.get());
  if (join_tokens_.open()) {
    logging::Warn(
        "no agent_join_token_hashes configured: any process that reaches the gRPC port can "
        "register as an agent and receive tasks (their commands and context); set them with "
        "gyre hash-token outside development");
  }
  if (!config_.scheduler_address.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        security::NewChannel(config_.scheduler_address, host->config().tls);
    if (!channel.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler_address: ", channel.status().message()));
    }
    SchedulerLink::Options link_options;
    link_options.deadline = config_.scheduler_deadline;
    WorkflowEngine* engine = engine_.get();
    scheduler_link_ = std::make_unique<SchedulerLink>(
        *std::move(channel), link_options,
        SchedulerLink::Engine{
            [engine](size_t max, gyre::v1::RankAndPlaceRequest* request,
                     std::vector<BatchedTask>* tasks) {
              return engine->TakeSchedulerBatch(max, request, tasks);
            },
            [engine](absl::Span<const BatchedTask> tasks, absl::Span<const uint32_t> order,
                     absl::Span<const TaskAnswer> answers) {
              return engine->ApplySchedulerOrder(tasks, order, answers);
            }},
        &host->metrics_registry());
    SchedulerLink* link = scheduler_link_.get();
    engine_->SetBacklogListener([link] { link->Wake(); });
    scheduler_link_->Start();
    logging::Info("ranking ready tasks with gyre-scheduler",
                  {{"scheduler_address", config_.scheduler_address}});
  }
  if (predictor_link_ != nullptr) {
    LoadForecaster::Options forecast;
    forecast.interval = config_.forecast_interval;
    forecast.snapshot.default_task_seconds =
        absl::ToDoubleSeconds(config_.forecast_default_task_duration);
    forecast.pools = config_.worker_pools;
    forecast.default_pool = config_.default_worker_pool;
    forecast.metrics = &host->metrics_registry();
    forecast.cluster = cluster_backlog_.get();  // null unless sharded
    // The predictor link's channel: one connection to gyre-predictor.
    load_forecaster_ = std::make_unique<LoadForecaster>(engine_.get(), predictor_link_->stub(),
                                                        std::move(forecast));
  }
  host->AddService(api_service_.get(), "gyre.v1.OrchestratorService");
  host->AddService(agent_service_.get(), "gyre.v1.AgentService");
  host->AddHealthName(server::ComponentHealthName("orchestrator"));
  return absl::OkStatus();
}

absl::Status OrchestratorModule::OnServing(server::ServiceHost* host) {
  if (load_forecaster_ != nullptr) load_forecaster_->Start();
  if (projector_ != nullptr) projector_->Start();
  {
    absl::MutexLock lock(&store_health_mu_);
    serving_host_ = host;
    if (shard_store_ != nullptr) shards_ready_ = false;
    UpdateServingLocked();
  }
  if (shard_store_ == nullptr) return absl::OkStatus();
  // Started once serving: the advertised address needs the bound port.
  ShardCoordinatorOptions coordination;
  coordination.leases.store.dsn = config_.postgres_dsn;
  coordination.leases.store.password = postgres_password_;
  coordination.leases.store.retry_for = config_.postgres_retry_for;
  coordination.leases.orchestrator_id = config_.OrchestratorId();
  coordination.leases.address =
      config_.AdvertisedAddress(host->config().grpc_address, host->grpc_port());
  coordination.leases.ttl = config_.shard_lease_ttl;
  coordination.leases.backlog = cluster_backlog_.get();
  // The configured count over all shards, per shard.
  if (config_.snapshot_every_records > 0) {
    coordination.snapshot_every_records = std::max<uint64_t>(
        1, static_cast<uint64_t>(config_.snapshot_every_records) / kDefaultShardCount);
  }
  coordination.poll_every = std::min(absl::Seconds(1), config_.shard_lease_ttl / 3);
  coordination.ready_within = 2 * config_.shard_lease_ttl;
  coordination.metrics = &host->metrics_registry();
  coordination.directory = shard_directory_.get();
  coordination.on_ready = [this] {
    absl::MutexLock lock(&store_health_mu_);
    shards_ready_ = true;
    UpdateServingLocked();
  };
  logging::Info("joining the orchestrators sharing the database",
                {{"orchestrator_id", coordination.leases.orchestrator_id},
                 {"advertised_address", coordination.leases.address},
                 {"shard_lease_ttl_ms", absl::ToInt64Milliseconds(config_.shard_lease_ttl)}});
  absl::StatusOr<std::unique_ptr<ShardCoordinator>> coordinator =
      ShardCoordinator::Start(std::move(coordination), engine_.get(), shard_store_);
  if (!coordinator.ok()) return coordinator.status();
  coordinator_ = *std::move(coordinator);
  return absl::OkStatus();
}

void OrchestratorModule::UpdateServingLocked() {
  if (serving_host_ != nullptr) serving_host_->SetServing(store_available_ && shards_ready_);
}

void OrchestratorModule::OnStoreAvailability(bool available) {
  absl::MutexLock lock(&store_health_mu_);
  store_available_ = available;
  if (store_available_gauge_ != nullptr) store_available_gauge_->Set(available ? 1 : 0);
  if (available && store_reconnects_ != nullptr) store_reconnects_->Increment();
  // Reads keep being served from memory; writes wait (then UNAVAILABLE):
  // load balancers send new work elsewhere meanwhile.
  UpdateServingLocked();
  if (available) {
    logging::Info("state store available again: readiness SERVING");
  } else {
    logging::Warn(
        "state store cannot commit: readiness NOT_SERVING while it reconnects (reads are "
        "served, writes wait)");
  }
}

void OrchestratorModule::OnShutdown(absl::Duration /*grace*/) {
  {
    absl::MutexLock lock(&store_health_mu_);
    serving_host_ = nullptr;  // the host shuts its health down next
  }
  if (scheduler_link_ != nullptr) {
    engine_->SetBacklogListener(nullptr);
    scheduler_link_->Stop();
  }
  // Streams never end on their own; close them so the server can drain.
  if (api_service_ != nullptr) api_service_->Stop();
  if (agent_service_ != nullptr) agent_service_->CloseStreams();
}

void OrchestratorModule::OnStopped() {
  // Before the host's registry (its gauges) goes.
  if (projector_ != nullptr) projector_->Stop();
  // Sharded: the engine stopped taking calls; its shards' records become
  // durable, then the leases are given back (the others take them at once).
  if (coordinator_ != nullptr) coordinator_->Stop();
  // The next start then loads this instead of replaying the log.
  if (engine_ != nullptr && shard_store_ == nullptr) {
    engine_->WriteSnapshot().IgnoreError();  // logged by the engine
  }
  // The histogram goes with the host's registry once this returns.
  store_sync_histogram.store(nullptr, std::memory_order_release);
  absl::MutexLock lock(&store_health_mu_);
  store_available_gauge_ = nullptr;
  store_reconnects_ = nullptr;
}

}  // namespace gyre::orchestrator
