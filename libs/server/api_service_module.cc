#include "libs/server/api_service_module.h"

#include "absl/strings/str_cat.h"

namespace gyre::server {

ApiServiceModule::ApiServiceModule(std::unique_ptr<grpc::Service> service, std::string api_name,
                                   std::string component, std::vector<std::string> implemented_rpcs)
    : service_(std::move(service)),
      api_name_(std::move(api_name)),
      component_(std::move(component)),
      implemented_rpcs_(std::move(implemented_rpcs)) {}

absl::Status ApiServiceModule::AddServices(ServiceHost* host) {
  host->AddService(service_.get(), api_name_);
  host->DeclareImplementedRpcs(api_name_, implemented_rpcs_);
  host->AddHealthName(ComponentHealthName(component_));
  return absl::OkStatus();
}

std::string ComponentHealthName(absl::string_view component) {
  return absl::StrCat("gyre.", component);
}

}  // namespace gyre::server
