#ifndef GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_
#define GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "gyre/v1/scheduler_service.grpc.pb.h"
#include "services/scheduler/batch_scheduler.h"

namespace gyre::scheduler {

// gRPC handlers of gyre.v1.SchedulerService: validate, call BatchScheduler,
// map the status. Callback API, with each call's request and response on
// one protobuf arena (a batch is 10,000 sub-messages each way: freeing them
// one by one cost as much as scheduling them). The handler computes on the
// callback thread: a batch is bounded CPU work (tens of ms), never I/O.
// Thread-safe (BatchScheduler is).
class SchedulerServiceImpl final : public gyre::v1::SchedulerService::CallbackService {
 public:
  explicit SchedulerServiceImpl(RankingConfig config = {});
  ~SchedulerServiceImpl() override;

  // The RPCs overridden below (ServiceHost::DeclareImplementedRpcs).
  static std::vector<std::string> ImplementedRpcs() { return {"RankAndPlace"}; }

  grpc::ServerUnaryReactor* RankAndPlace(grpc::CallbackServerContext* context,
                                         const gyre::v1::RankAndPlaceRequest* request,
                                         gyre::v1::RankAndPlaceResponse* response) override;

 private:
  class ArenaAllocator;

  BatchScheduler scheduler_;
  std::unique_ptr<ArenaAllocator> allocator_;
};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_
