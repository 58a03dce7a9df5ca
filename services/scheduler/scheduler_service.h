#ifndef GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_
#define GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_

#include "gyre/v1/scheduler_service.grpc.pb.h"

namespace gyre::scheduler {

// gRPC handlers of gyre.v1.SchedulerService (task priority and placement).
// The API is designed; its implementation is a later milestone, so every RPC
// answers UNIMPLEMENTED naming the method (see UnimplementedMessageInterceptor).
class SchedulerServiceImpl final : public gyre::v1::SchedulerService::Service {};

}  // namespace gyre::scheduler

#endif  // GYRE_SERVICES_SCHEDULER_SCHEDULER_SERVICE_H_
