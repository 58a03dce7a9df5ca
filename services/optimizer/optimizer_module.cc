#include "services/optimizer/optimizer_module.h"

#include <grpcpp/create_channel.h>

#include "libs/server/api_service_module.h"

namespace gyre::optimizer {

OptimizerModule::OptimizerModule() : service_(std::make_unique<OptimizerServiceImpl>()) {}

void OptimizerModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddString("orchestrator_address", &config_.orchestrator_address,
                    "orchestrator gRPC address, for stored workflows and executions (empty: "
                    "inline definitions only)");
  schema->AddDuration("orchestrator_timeout", &config_.orchestrator_timeout,
                      "deadline of each orchestrator call");
  schema->AddString("predictor_address", &config_.predictor_address,
                    "gyre-predictor gRPC address: its learned durations for tasks the request "
                    "gives none for (empty: builtin and default durations only)");
  schema->AddDuration("predictor_timeout", &config_.predictor_timeout,
                      "deadline of each PredictResources call");
}

absl::Status OptimizerModule::AddServices(server::ServiceHost* host) {
  host->AddService(service_.get(), "gyre.v1.OptimizerService");
  host->DeclareImplementedRpcs("gyre.v1.OptimizerService", OptimizerServiceImpl::ImplementedRpcs());
  host->AddHealthName(server::ComponentHealthName("optimizer"));
  return absl::OkStatus();
}

absl::Status OptimizerModule::OnServing(server::ServiceHost* /*host*/) {
  std::shared_ptr<grpc::Channel> channel = channel_;
  if (channel == nullptr && !config_.orchestrator_address.empty()) {
    channel = grpc::CreateChannel(config_.orchestrator_address, grpc::InsecureChannelCredentials());
  }
  std::shared_ptr<gyre::v1::OrchestratorService::StubInterface> stub;
  if (channel != nullptr) stub = gyre::v1::OrchestratorService::NewStub(channel);
  std::shared_ptr<grpc::Channel> predictor_channel = predictor_channel_;
  if (predictor_channel == nullptr && !config_.predictor_address.empty()) {
    predictor_channel =
        grpc::CreateChannel(config_.predictor_address, grpc::InsecureChannelCredentials());
  }
  std::shared_ptr<gyre::v1::PredictorService::StubInterface> predictor;
  if (predictor_channel != nullptr) {
    predictor = gyre::v1::PredictorService::NewStub(predictor_channel);
  }
  service_->set_optimizer(std::make_shared<Optimizer>(std::move(stub), config_.orchestrator_timeout,
                                                      std::move(predictor),
                                                      config_.predictor_timeout));
  return absl::OkStatus();
}

}  // namespace gyre::optimizer
