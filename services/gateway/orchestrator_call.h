#ifndef GYRE_SERVICES_GATEWAY_ORCHESTRATOR_CALL_H_
#define GYRE_SERVICES_GATEWAY_ORCHESTRATOR_CALL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/common/status_mapping.h"
#include "libs/common/tenant.h"

namespace gyre::gateway {

// A method of a generated stub's callback interface (stub->async()), e.g.
// &v1::OrchestratorService::StubInterface::async_interface::GetExecution.
template <typename AsyncInterface, typename Request, typename Response>
using AsyncUnaryMethod = void (AsyncInterface::*)(grpc::ClientContext*, const Request*, Response*,
                                                  std::function<void(grpc::Status)>);

// What a call carries besides its request: the "x-request-id" metadata so
// the backend's logs can name it, and the caller's tenant
// ("x-gyre-tenant", libs/common/tenant.h) so the orchestrator records it
// and shows the caller only that tenant's objects. Empty ones are not sent.
struct CallMetadata {
  std::string request_id;
  std::string tenant;
};

// Starts one unary call with gRPC's callback API and returns at once: no
// thread waits for the answer. `done` runs on a gRPC thread with the
// response or the call's status (DEADLINE_EXCEEDED after `timeout`,
// UNAVAILABLE when the backend is down).
template <typename AsyncInterface, typename Request, typename Response>
void StartUnaryCall(AsyncInterface* async,
                    AsyncUnaryMethod<AsyncInterface, Request, Response> method,
                    std::type_identity_t<Request> request, const CallMetadata& metadata,
                    absl::Duration timeout,
                    std::type_identity_t<std::function<void(absl::StatusOr<Response>)>> done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!metadata.request_id.empty()) {
    call->context.AddMetadata("x-request-id", metadata.request_id);
  }
  if (!metadata.tenant.empty()) call->context.AddMetadata(kTenantMetadata, metadata.tenant);
  (async->*method)(&call->context, &call->request, &call->response,
                   [call, done = std::move(done)](grpc::Status status) {
                     if (!status.ok()) {
                       done(FromGrpcStatus(status));
                     } else {
                       done(std::move(call->response));
                     }
                   });
}

// The same with only a request id (calls made for no tenant, such as the
// health check).
template <typename AsyncInterface, typename Request, typename Response>
void StartUnaryCall(AsyncInterface* async,
                    AsyncUnaryMethod<AsyncInterface, Request, Response> method,
                    std::type_identity_t<Request> request, const std::string& request_id,
                    absl::Duration timeout,
                    std::type_identity_t<std::function<void(absl::StatusOr<Response>)>> done) {
  StartUnaryCall<AsyncInterface, Request, Response>(
      async, method, std::move(request), CallMetadata{request_id, ""}, timeout, std::move(done));
}

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_ORCHESTRATOR_CALL_H_
