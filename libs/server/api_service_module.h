#ifndef GYRE_LIBS_SERVER_API_SERVICE_MODULE_H_
#define GYRE_LIBS_SERVER_API_SERVICE_MODULE_H_

#include <grpcpp/impl/codegen/service_type.h>

#include <memory>
#include <string>
#include <vector>

#include "libs/server/service_main.h"

namespace gyre::server {

// A process that hosts one gRPC API service and has no settings beyond the
// common server ones (the scheduler, optimizer and predictor today). The
// service is reported healthy under its proto name and its component name.
class ApiServiceModule : public ServiceModule {
 public:
  // `api_name` is the proto service's full name ("gyre.v1.SchedulerService"),
  // `component` the short name ("scheduler", health name "gyre.scheduler"),
  // `implemented_rpcs` the RPCs `service` implements
  // (ServiceHost::DeclareImplementedRpcs).
  ApiServiceModule(std::unique_ptr<grpc::Service> service, std::string api_name,
                   std::string component, std::vector<std::string> implemented_rpcs);

  void RegisterConfig(config::ConfigSchema* /*schema*/) override {}
  absl::Status AddServices(ServiceHost* host) override;

  grpc::Service* service() { return service_.get(); }

 private:
  std::unique_ptr<grpc::Service> service_;
  std::string api_name_;
  std::string component_;
  std::vector<std::string> implemented_rpcs_;
};

// The health-check name of a Gyre component, e.g. "gyre.scheduler".
std::string ComponentHealthName(absl::string_view component);

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_API_SERVICE_MODULE_H_
