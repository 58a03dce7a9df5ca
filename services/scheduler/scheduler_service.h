#ifndef GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_
#define GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_

#include "gyre/v1/scheduler_service.grpc.pb.h"
#include "services/scheduler/batch_scheduler.h"

namespace gyre::scheduler {

// gRPC handlers of gyre.v1.SchedulerService: validate, call BatchScheduler,
// map the status. Thread-safe (BatchScheduler is).
class SchedulerServiceImpl final : public gyre::v1::SchedulerService::Service {
 public:
  explicit SchedulerServiceImpl(RankingConfig config = {}) : scheduler_(std::move(config)) {}

  grpc::Status RankAndPlace(grpc::ServerContext* context,
                            const gyre::v1::RankAndPlaceRequest* request,
                            gyre::v1::RankAndPlaceResponse* response) override;

 private:
  BatchScheduler scheduler_;
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_
