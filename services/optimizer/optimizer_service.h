#ifndef GYRE_SERVICES_OPTIMIZER_OPTIMIZER_SERVICE_H_
#define GYRE_SERVICES_OPTIMIZER_OPTIMIZER_SERVICE_H_

#include <memory>

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gyre/v1/optimizer_service.grpc.pb.h"
#include "services/optimizer/optimizer.h"

namespace gyre::optimizer {

// gRPC handlers of gyre.v1.OptimizerService: thin, over Optimizer. The
// optimizer is swapped in once the process knows how to reach the
// orchestrator (gyre dev: its in-process channel, after the server starts).
class OptimizerServiceImpl final : public gyre::v1::OptimizerService::Service {
 public:
  explicit OptimizerServiceImpl(std::shared_ptr<Optimizer> optimizer = nullptr);

  // The RPCs overridden below (ServiceHost::DeclareImplementedRpcs).
  static std::vector<std::string> ImplementedRpcs() {
    return {"AnalyzeWorkflow", "ApplyOptimizations"};
  }
  void set_optimizer(std::shared_ptr<Optimizer> optimizer);

  grpc::Status AnalyzeWorkflow(grpc::ServerContext* context,
                               const gyre::v1::AnalyzeWorkflowRequest* request,
                               gyre::v1::AnalyzeWorkflowResponse* response) override;
  grpc::Status ApplyOptimizations(grpc::ServerContext* context,
                                  const gyre::v1::ApplyOptimizationsRequest* request,
                                  gyre::v1::ApplyOptimizationsResponse* response) override;

 private:
  std::shared_ptr<Optimizer> optimizer();

  absl::Mutex mu_;
  std::shared_ptr<Optimizer> optimizer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gyre::optimizer

#endif  // GYRE_SERVICES_OPTIMIZER_OPTIMIZER_SERVICE_H_
