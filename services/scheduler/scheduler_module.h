#ifndef GYRE_SERVICES_SCHEDULER_SCHEDULER_MODULE_H_
#define GYRE_SERVICES_SCHEDULER_SCHEDULER_MODULE_H_

#include <memory>

#include "absl/time/time.h"
#include "libs/server/api_service_module.h"
#include "libs/server/service_main.h"
#include "services/scheduler/task_ranker.h"

namespace gyre::scheduler {

// gyre-scheduler's process: its ranking settings (docs/configuration.md,
// "Scheduler") and SchedulerService hosted like every API service.
class SchedulerModule final : public server::ServiceModule {
 public:
  void RegisterConfig(config::ConfigSchema* schema) override;
  absl::Status ValidateConfig() override;
  absl::Status AddServices(server::ServiceHost* host) override;

  const RankingConfig& ranking() const { return ranking_; }

 private:
  absl::Duration aging_grace_ = absl::Seconds(RankingConfig().aging_grace_seconds);
  absl::Duration aging_interval_ = absl::Seconds(RankingConfig().aging_seconds_per_point);
  RankingConfig ranking_;
  std::unique_ptr<server::ApiServiceModule> api_;
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_SCHEDULER_MODULE_H_
