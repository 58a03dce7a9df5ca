#include "services/optimizer/optimizer_service.h"

#include <utility>

#include "libs/common/status_mapping.h"

namespace gyre::optimizer {

OptimizerServiceImpl::OptimizerServiceImpl(std::shared_ptr<Optimizer> optimizer)
    : optimizer_(std::move(optimizer)) {}

void OptimizerServiceImpl::set_optimizer(std::shared_ptr<Optimizer> optimizer) {
  absl::MutexLock lock(&mu_);
  optimizer_ = std::move(optimizer);
}

std::shared_ptr<Optimizer> OptimizerServiceImpl::optimizer() {
  absl::MutexLock lock(&mu_);
  // Without an orchestrator yet, inline definitions can still be analyzed.
  if (optimizer_ == nullptr) optimizer_ = std::make_shared<Optimizer>(nullptr, absl::Seconds(30));
  return optimizer_;
}

grpc::Status OptimizerServiceImpl::AnalyzeWorkflow(grpc::ServerContext*,
                                                   const gyre::v1::AnalyzeWorkflowRequest* request,
                                                   gyre::v1::AnalyzeWorkflowResponse* response) {
  auto result = optimizer()->Analyze(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status OptimizerServiceImpl::ApplyOptimizations(
    grpc::ServerContext*, const gyre::v1::ApplyOptimizationsRequest* request,
    gyre::v1::ApplyOptimizationsResponse* response) {
  auto result = optimizer()->Apply(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace gyre::optimizer
