#include "libs/server/unimplemented_message_interceptor.h"

#include <string>

#include "libs/common/status_mapping.h"

namespace gyre::server {
namespace {

class UnimplementedMessageInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit UnimplementedMessageInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        methods->ModifySendStatus(ToGrpcStatus(NotImplemented(method_)));
      }
    }
    methods->Proceed();
  }

 private:
  std::string method_;
};

}  // namespace

grpc::experimental::Interceptor* UnimplementedMessageInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new UnimplementedMessageInterceptor(info->method() != nullptr ? info->method() : "RPC");
}

}  // namespace gyre::server
