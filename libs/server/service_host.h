#ifndef GYRE_LIBS_SERVER_SERVICE_HOST_H_
#define GYRE_LIBS_SERVER_SERVICE_HOST_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "libs/metrics/metrics_endpoint.h"
#include "libs/server/server_config.h"

namespace gyre::server {

// Hosts a process's gRPC services: one grpc::Server with the standard health
// service (grpc.health.v1) and reflection, RPC metrics on every method, and
// the Prometheus /metrics endpoint on its own port.
//
// Lifecycle: AddService() any number of times, Start() once, Shutdown()
// once. A service is reported SERVING under its health name from Start()
// until Shutdown() begins. Not thread-safe; the process's main thread drives
// it. The gRPC services themselves run on gRPC's threads.
class ServiceHost {
 public:
  ServiceHost(std::string process_name, ServerConfig config);
  ~ServiceHost();

  ServiceHost(const ServiceHost&) = delete;
  ServiceHost& operator=(const ServiceHost&) = delete;

  // Registers `service` (not owned; must outlive the host). `health_name` is
  // what health checks ask for, by convention the proto service's full name
  // ("gyre.v1.OrchestratorService"); empty registers no health name.
  void AddService(grpc::Service* service, std::string health_name);

  // Declares which RPCs (method names, e.g. "PredictResources") of the proto
  // service `api_name` ("gyre.v1.PredictorService", added by AddService)
  // this process implements: the rest answer UNIMPLEMENTED. Each RPC is then
  // a health name of its own ("gyre.v1.PredictorService/ForecastQueueLoad",
  // NOT_SERVING when not implemented), a gyre_rpc_implemented gauge (1 or
  // 0), and the start log names the ones not implemented. Listed from the
  // proto's descriptor, so a new RPC is "not implemented" until declared.
  void DeclareImplementedRpcs(std::string api_name, std::vector<std::string> rpcs);

  // Reports `health_name` in health checks without a service of its own
  // (components such as the agent or the gateway that serve no gRPC API).
  void AddHealthName(std::string health_name);

  // Binds both ports and starts serving. Errors (Unavailable) name the
  // address that could not be bound.
  absl::Status Start();

  // The health name that stays SERVING from Start() until Shutdown()
  // whatever SetServing says: what a liveness probe asks, so that a
  // dependency's outage takes the process out of rotation (readiness)
  // without getting it restarted.
  static constexpr char kLivenessHealthName[] = "gyre.liveness";

  // Reports the overall health ("") and every name given to AddService or
  // AddHealthName SERVING (true) or NOT_SERVING (false): a process that is
  // up but cannot do its work (its state store is unreachable) says so.
  // Per-RPC names and kLivenessHealthName keep theirs. Thread-safe against
  // RPCs; a no-op before Start. Must not race Shutdown().
  void SetServing(bool serving);

  // Marks every health name NOT_SERVING, stops accepting RPCs, waits up to
  // the configured grace for in-flight RPCs, then cancels the rest.
  void Shutdown();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_.port(); }
  prometheus::Registry& metrics_registry() { return metrics_.registry(); }
  const ServerConfig& config() const { return config_; }

  // A channel to this server that bypasses the network (single-process mode).
  std::shared_ptr<grpc::Channel> InProcessChannel();

 private:
  std::string process_name_;
  ServerConfig config_;
  metrics::MetricsEndpoint metrics_;
  std::vector<grpc::Service*> services_;
  std::vector<std::string> health_names_;
  std::vector<std::pair<std::string, std::vector<std::string>>> implemented_rpcs_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
};

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_SERVICE_HOST_H_
