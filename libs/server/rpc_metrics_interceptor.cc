#include "libs/server/rpc_metrics_interceptor.h"

#include <chrono>
#include <string>

namespace gyre::server {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index <= 16 ? kNames[index] : "UNKNOWN";
}

// Records one RPC's outcome when the server sends its status.
class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(std::string method, prometheus::Family<prometheus::Counter>& handled,
                        prometheus::Histogram& seconds)
      : method_(std::move(method)),
        handled_(handled),
        seconds_(seconds),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      handled_.Add({{"grpc_method", method_}, {"grpc_code", CodeName(status.error_code())}})
          .Increment();
      seconds_.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Histogram& seconds_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

RpcMetricsInterceptorFactory::RpcMetricsInterceptorFactory(prometheus::Registry& registry)
    : handled_(prometheus::BuildCounter()
                   .Name("gyre_grpc_server_handled_total")
                   .Help("RPCs completed on the server, by method and status code.")
                   .Register(registry)),
      handling_seconds_(prometheus::BuildHistogram()
                            .Name("gyre_grpc_server_handling_seconds")
                            .Help("Time from receiving an RPC to sending its status.")
                            .Register(registry)) {}

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  std::string method = info->method() != nullptr ? info->method() : "unknown";
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
  prometheus::Histogram& seconds = handling_seconds_.Add({{"grpc_method", method}}, kBuckets);
  return new RpcMetricsInterceptor(std::move(method), handled_, seconds);
}

}  // namespace gyre::server
