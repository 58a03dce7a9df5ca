#ifndef GYRE_LIBS_SERVER_RPC_METRICS_INTERCEPTOR_H_
#define GYRE_LIBS_SERVER_RPC_METRICS_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace gyre::server {

// Creates one interceptor per RPC that records, on every gRPC server:
//   gyre_grpc_server_handled_total{grpc_method, grpc_code}
//   gyre_grpc_server_handling_seconds{grpc_method}   (histogram)
// Label values are bounded: method names come from the registered services
// and codes from the 17 canonical ones. Thread-safe.
class RpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(prometheus::Registry& registry);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_seconds_;
};

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_RPC_METRICS_INTERCEPTOR_H_
