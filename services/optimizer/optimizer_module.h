#ifndef GYRE_SERVICES_OPTIMIZER_OPTIMIZER_MODULE_H_
#define GYRE_SERVICES_OPTIMIZER_OPTIMIZER_MODULE_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "libs/server/service_main.h"
#include "services/optimizer/optimizer_service.h"

namespace gyre::optimizer {

struct OptimizerConfig {
  // Where stored workflows and finished executions are fetched from; empty:
  // inline definitions only.
  std::string orchestrator_address = "127.0.0.1:50051";
  absl::Duration orchestrator_timeout = absl::Seconds(30);
  // gyre-predictor, for the durations of tasks the request gives none for;
  // empty: builtin and default durations only.
  std::string predictor_address;
  absl::Duration predictor_timeout = absl::Seconds(2);
};

// The gyre-optimizer process: OptimizerService plus its orchestrator client.
class OptimizerModule : public server::ServiceModule {
 public:
  OptimizerModule();

  void RegisterConfig(config::ConfigSchema* schema) override;
  absl::Status AddServices(server::ServiceHost* host) override;
  absl::Status OnServing(server::ServiceHost* host) override;

  // Calls the orchestrator over `channel` instead of dialling
  // orchestrator_address (gyre dev: the in-process channel).
  void set_orchestrator_channel(std::shared_ptr<grpc::Channel> channel) {
    channel_ = std::move(channel);
  }
  // Asks gyre-predictor over `channel` instead of dialling
  // predictor_address (gyre dev: its own predictor, in-process).
  void set_predictor_channel(std::shared_ptr<grpc::Channel> channel) {
    predictor_channel_ = std::move(channel);
  }

 private:
  OptimizerConfig config_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<grpc::Channel> predictor_channel_;
  std::unique_ptr<OptimizerServiceImpl> service_;
};

}  // namespace gyre::optimizer

#endif  // GYRE_SERVICES_OPTIMIZER_OPTIMIZER_MODULE_H_
