#ifndef GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_MODULE_H_
#define GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_MODULE_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/workflow.pb.h"
#include "libs/security/join_token.h"
#include "libs/server/service_main.h"
#include "services/orchestrator/orchestrator_config.h"

namespace gyre::durable_log {
class DirectoryLock;
}  // namespace gyre::durable_log

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace gyre::orchestrator {

class ClientLimits;
class DiskSpaceGuard;
class OrchestratorServiceImpl;
class SchedulerLink;
class PredictorLink;
class AgentServiceImpl;
class ClusterBacklog;
class WorkflowEngine;
class LoadForecaster;
class PostgresProjector;
class PostgresShardStore;
class LeaseShardDirectory;
class ShardCoordinator;
class StateStore;

// The orchestrator process: hosts gyre.v1.OrchestratorService (the public
// API) and gyre.v1.AgentService (the agents' stream) over one engine.
class OrchestratorModule : public server::ServiceModule {
 public:
  OrchestratorModule();
  ~OrchestratorModule() override;

  void RegisterConfig(config::ConfigSchema* schema) override { config_.Register(schema); }
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;
  absl::Status OnServing(server::ServiceHost* host) override;
  void OnShutdown(absl::Duration grace) override;
  void OnStopped() override;

  OrchestratorConfig& mutable_config() { return config_; }
  // The engine, once AddServices created it (for the agent embedded in
  // gyre dev); null before.
  WorkflowEngine* engine() { return engine_.get(); }

 private:
  // Makes data_dir this process's alone, or says in one line why not.
  absl::Status ClaimDataDir();
  // The store can commit again (true) or cannot (false): readiness and
  // the orchestrator_store_* metrics follow. On the store's thread.
  void OnStoreAvailability(bool available);
  // Readiness: the store can commit and (postgres_sharding) the first
  // round of shard leases was adopted.
  void UpdateServingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_health_mu_);

  OrchestratorConfig config_;
  // Held while the process runs: one orchestrator (or gyre dev) per data_dir.
  std::unique_ptr<durable_log::DirectoryLock> data_dir_lock_;
  std::shared_ptr<const gyre::v1::WorkflowDefinition> task_library_;
  // What the store's availability observer updates; declared before the
  // store, whose writer thread calls it until the store is gone.
  absl::Mutex store_health_mu_;
  bool store_available_ ABSL_GUARDED_BY(store_health_mu_) = true;
  // postgres_sharding: false until the coordinator adopted its first
  // round's shards (true without sharding).
  bool shards_ready_ ABSL_GUARDED_BY(store_health_mu_) = true;
  // Set while serving (OnServing to OnShutdown): health follows the store.
  server::ServiceHost* serving_host_ ABSL_GUARDED_BY(store_health_mu_) = nullptr;
  // In the host's registry: cleared in OnStopped, before it goes.
  prometheus::Gauge* store_available_gauge_ ABSL_GUARDED_BY(store_health_mu_) = nullptr;
  prometheus::Counter* store_reconnects_ ABSL_GUARDED_BY(store_health_mu_) = nullptr;
  // Before the store and the engine: the store's last completions offer it
  // observations.
  std::unique_ptr<PredictorLink> predictor_link_;
  std::unique_ptr<StateStore> store_;
  // postgres_sharding: store_ as the per-shard store, and what moves shards
  // in and out of the engine (after engine_: stopped before it goes).
  PostgresShardStore* shard_store_ = nullptr;
  // store: postgres: the relational tables' projection (after store_: it
  // reads what the store wrote).
  std::unique_ptr<PostgresProjector> projector_;
  // postgres_sharding: the backlog the engine and the lease rounds share
  // (before engine_ and coordinator_, which hold it).
  std::unique_ptr<ClusterBacklog> cluster_backlog_;
  std::string postgres_password_;            // resolved in ValidateConfig; never logged
  security::JoinTokenVerifier join_tokens_;  // from the config, in ValidateConfig
  std::unique_ptr<WorkflowEngine> engine_;
  std::unique_ptr<DiskSpaceGuard> disk_space_guard_;  // before api_service_, which uses it
  std::unique_ptr<ClientLimits> client_limits_;       // before the services, which use it
  std::unique_ptr<OrchestratorServiceImpl> api_service_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  // After engine_: stopped and destroyed before it.
  std::unique_ptr<SchedulerLink> scheduler_link_;
  // With predictor_address: orchestrator_forecast_workers (stopped before
  // the engine goes).
  std::unique_ptr<LoadForecaster> load_forecaster_;
  // Sharded: who owns which shard, for forwarding; fed by coordinator_.
  std::unique_ptr<LeaseShardDirectory> shard_directory_;
  std::unique_ptr<ShardCoordinator> coordinator_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_MODULE_H_
