#ifndef GYRE_LIBS_SERVER_UNIMPLEMENTED_MESSAGE_INTERCEPTOR_H_
#define GYRE_LIBS_SERVER_UNIMPLEMENTED_MESSAGE_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

namespace gyre::server {

// gRPC's generated service base classes answer RPCs that a service does not
// implement yet with UNIMPLEMENTED and an empty message. This interceptor
// fills in a message naming the method, e.g.
//   "/gyre.v1.OptimizerService/AnalyzeWorkflow is not implemented yet in this version of Gyre"
// so API surface that later work fills in fails honestly and clearly.
// Statuses with a message of their own pass through untouched. Stateless.
class UnimplementedMessageInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_UNIMPLEMENTED_MESSAGE_INTERCEPTOR_H_
