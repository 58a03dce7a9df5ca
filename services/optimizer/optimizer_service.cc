#include "services/optimizer/optimizer_service.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"

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
  const bool debug = logging::Enabled(logging::Level::kDebug);
  const absl::Time started = debug ? absl::Now() : absl::InfinitePast();
  auto result = optimizer()->Analyze(*request);
  if (!result.ok()) {
    if (debug) {
      logging::Debug("analysis refused", {{"error", std::string(result.status().message())}});
    }
    return ToGrpcStatus(result.status());
  }
  *response = *std::move(result);
  if (debug) {
    logging::Debug("analysis done",
                   {{"workflow", response->workflow()},
                    {"critical_path_tasks", response->critical_path_size()},
                    {"critical_path_share", response->critical_path_share()},
                    {"peak_width", response->peak_width()},
                    {"bottlenecks", response->bottlenecks_size()},
                    {"recommendations", response->recommendations_size()},
                    {"took_us", absl::ToInt64Microseconds(absl::Now() - started)}});
  }
  return grpc::Status::OK;
}

grpc::Status OptimizerServiceImpl::ApplyOptimizations(
    grpc::ServerContext*, const gyre::v1::ApplyOptimizationsRequest* request,
    gyre::v1::ApplyOptimizationsResponse* response) {
  auto result = optimizer()->Apply(*request);
  if (logging::Enabled(logging::Level::kDebug)) {
    logging::Debug(result.ok() ? "optimizations applied" : "optimizations refused",
                   {{"workflow", request->workflow()},
                    {"recommendations", absl::StrJoin(request->recommendation_ids(), ",")},
                    {"dry_run", request->dry_run()},
                    {"error", std::string(result.status().message())}});
  }
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace gyre::optimizer
