#include "libs/server/service_host.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <google/protobuf/descriptor.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/common/limits.h"
#include "libs/logging/logger.h"
#include "libs/security/grpc_credentials.h"
#include "libs/server/rpc_metrics_interceptor.h"
#include "libs/server/unimplemented_message_interceptor.h"
#include "prometheus/gauge.h"

namespace gyre::server {

ServiceHost::ServiceHost(std::string process_name, ServerConfig config)
    : process_name_(std::move(process_name)), config_(std::move(config)), metrics_(process_name_) {}

ServiceHost::~ServiceHost() {
  if (server_ != nullptr) Shutdown();
}

void ServiceHost::AddService(grpc::Service* service, std::string health_name) {
  services_.push_back(service);
  if (!health_name.empty()) health_names_.push_back(std::move(health_name));
}

void ServiceHost::DeclareImplementedRpcs(std::string api_name, std::vector<std::string> rpcs) {
  implemented_rpcs_.emplace_back(std::move(api_name), std::move(rpcs));
}

void ServiceHost::AddHealthName(std::string health_name) {
  health_names_.push_back(std::move(health_name));
}

absl::Status ServiceHost::Start() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      security::NewServerCredentials(config_.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.grpc_address, *credentials, &grpc_port_);
  // A port is this server's alone: with gRPC's default SO_REUSEPORT a second
  // server on the same port starts too, and clients land at random on two
  // unrelated stores.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : services_) builder.RegisterService(service);
  // Large workflows (a million tasks) arrive as one definition; larger
  // requests than Gyre can record are refused here, whole, before any
  // handler runs (libs/common/limits.h).
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits::kMaxGrpcRequestBytes));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<UnimplementedMessageInterceptorFactory>());
  interceptors.push_back(std::make_unique<RpcMetricsInterceptorFactory>(metrics_.registry()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    server_.reset();
    return absl::FailedPreconditionError(
        absl::StrCat("grpc_address ", config_.grpc_address,
                     ": cannot listen (port in use by another process, or not an address of this "
                     "machine); choose another with --grpc_address"));
  }
  if (absl::Status status = metrics_.Start(config_.metrics_address); !status.ok()) {
    server_->Shutdown();
    server_.reset();
    return status;
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  for (const std::string& name : health_names_) health->SetServingStatus(name, true);
  health->SetServingStatus("", true);
  health->SetServingStatus(kLivenessHealthName, true);
  // What the API has and has not built yet, from the proto's own list of
  // RPCs against what the module declares.
  std::vector<std::string> not_implemented;
  auto& implemented_gauge = prometheus::BuildGauge()
                                .Name("gyre_rpc_implemented")
                                .Help(
                                    "1 for an RPC this process implements, 0 for one that "
                                    "answers UNIMPLEMENTED (not built yet)")
                                .Register(metrics_.registry());
  for (const auto& [api_name, rpcs] : implemented_rpcs_) {
    const google::protobuf::ServiceDescriptor* api =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(api_name);
    if (api == nullptr) continue;
    for (int i = 0; i < api->method_count(); ++i) {
      const std::string& method = api->method(i)->name();
      const bool built = std::find(rpcs.begin(), rpcs.end(), method) != rpcs.end();
      const std::string name = absl::StrCat(api_name, "/", method);
      health->SetServingStatus(name, built);
      implemented_gauge.Add({{"rpc", name}}).Set(built ? 1 : 0);
      if (!built) not_implemented.push_back(name);
    }
  }
  if (!not_implemented.empty()) {
    logging::Warn("not built yet in this version of Gyre: these RPCs answer UNIMPLEMENTED",
                  {{"not_implemented", absl::StrJoin(not_implemented, ",")}});
  }
  logging::Info("serving", {{"grpc_port", grpc_port_},
                            {"metrics_port", metrics_.port()},
                            {"grpc_address", config_.grpc_address},
                            {"tls", !config_.tls.ServerUsesTls()           ? "off"
                                    : config_.tls.client_auth == "require" ? "mutual"
                                                                           : "on"}});
  return absl::OkStatus();
}

void ServiceHost::SetServing(bool serving) {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  for (const std::string& name : health_names_) health->SetServingStatus(name, serving);
  health->SetServingStatus("", serving);
}

void ServiceHost::Shutdown() {
  if (server_ == nullptr) return;
  logging::Info("shutting down",
                {{"grace_seconds", absl::ToDoubleSeconds(config_.shutdown_grace)}});
  // Health goes first, so load balancers stop routing here while RPCs drain.
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + config_.shutdown_grace));
  server_->Wait();
  server_.reset();
  logging::Info("stopped");
}

std::shared_ptr<grpc::Channel> ServiceHost::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

}  // namespace gyre::server
