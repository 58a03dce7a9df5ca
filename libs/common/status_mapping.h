#ifndef GYRE_LIBS_COMMON_STATUS_MAPPING_H_
#define GYRE_LIBS_COMMON_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace gyre {

// The one place where domain errors (absl::Status) become wire errors.
// Domain code never builds grpc::Status or HTTP codes itself.

// Maps an absl::Status to a grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Maps a grpc::Status (e.g. from a client call) back to absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Maps an absl::Status code to the HTTP status code the gateway answers with,
// following google.rpc.Code's documented HTTP mapping, except
// FAILED_PRECONDITION, which is 409 (a conflict with the resource's state).
int ToHttpStatusCode(absl::StatusCode code);

// Returns an UNIMPLEMENTED status naming the RPC, for API surface that a later
// milestone fills in: callers learn exactly what is missing instead of
// getting an empty error.
absl::Status NotImplemented(absl::string_view rpc_name);

}  // namespace gyre

#endif  // GYRE_LIBS_COMMON_STATUS_MAPPING_H_
