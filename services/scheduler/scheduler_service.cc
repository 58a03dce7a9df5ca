#include "services/scheduler/scheduler_service.h"

#include "libs/common/status_mapping.h"

namespace gyre::scheduler {

grpc::Status SchedulerServiceImpl::RankAndPlace(grpc::ServerContext* /*context*/,
                                                const gyre::v1::RankAndPlaceRequest* request,
                                                gyre::v1::RankAndPlaceResponse* response) {
  absl::StatusOr<gyre::v1::RankAndPlaceResponse> result = scheduler_.RankAndPlace(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->Swap(&result.value());
  return grpc::Status::OK;
}

}  // namespace gyre::scheduler
