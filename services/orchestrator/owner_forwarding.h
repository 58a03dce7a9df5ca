#ifndef GYRE_SERVICES_ORCHESTRATOR_OWNER_FORWARDING_H_
#define GYRE_SERVICES_ORCHESTRATOR_OWNER_FORWARDING_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gyre/v1/orchestrator_service.grpc.pb.h"
#include "libs/common/status_mapping.h"
#include "libs/security/tls_config.h"
#include "services/orchestrator/shard_directory.h"
#include "services/orchestrator/shard_map.h"
#include "services/orchestrator/shard_ownership.h"

namespace gyre::orchestrator {

// The metadata that marks a call one orchestrator forwarded to another; its
// value is the forwarder's id. A forwarded call is never forwarded again.
inline constexpr char kForwardedByMetadata[] = "gyre-forwarded-by";

// Reaching an execution's owner (issue 21, docs/architecture.md "Reaching an
// execution's owner"): several orchestrators share one PostgreSQL, each
// holding the executions of the shards it owns. A call about an execution
// held elsewhere is answered by the engine with ShardNotOwnedError; the
// service layer then makes the same call on the shard's owner, as the
// directory names it, and returns its answer and status unchanged, so that
// the gateway, `gyre` and any gRPC client need no knowledge of shards.
//
// The loop guard: a forwarded call carries kForwardedByMetadata, and an
// orchestrator that does not own the shard either answers it with
// UNAVAILABLE ("shard N is moving between orchestrators; retry"), as it does
// when no owner is known. When the directory names this orchestrator itself
// (it lags the leases by up to a round), the call is tried here once more.
//
// Cost: nothing unless the engine says "not owned" (one extra hop for a
// call that reached the wrong orchestrator); with no directory (one
// orchestrator, the default) the service holds no OwnerForwarding at all.
//
// Owns: a channel per member address (created on first use, kept). Not
// owned: the directory. Thread-safe.
class OwnerForwarding {
 public:
  using Stub = gyre::v1::OrchestratorService::StubInterface;

  struct Options {
    // How this orchestrator dials other Gyre services (the process's TLS
    // settings, as for the scheduler and the predictor).
    security::TlsConfig tls;
    // The shard count of the database (ShardOfExecution).
    uint32_t shard_count = kDefaultShardCount;
  };

  OwnerForwarding(const ShardDirectory* directory, Options options);

  const ShardDirectory& directory() const { return *directory_; }
  uint32_t shard_count() const { return options_.shard_count; }

  // Whether the call of `context` was forwarded by another orchestrator.
  static bool IsForwarded(const grpc::ServerContextBase& context);

  // UNAVAILABLE: `shard` has no reachable owner now (a retry succeeds once
  // the leases settle); `why` says what was seen.
  static absl::Status Moving(uint32_t shard, absl::string_view why);

  // Where a call the engine answered "not owned" for `shard` goes: the
  // owner's stub, or null for this orchestrator itself (the directory is
  // behind the engine: try once more here); UNAVAILABLE for a call that was
  // forwarded already or a shard without a known owner.
  struct Target {
    std::shared_ptr<Stub> stub;  // null: here
    std::string member;
  };
  absl::StatusOr<Target> Route(const grpc::ServerContextBase& context, uint32_t shard);

  // The owner's stub of `member`, created on first use.
  absl::StatusOr<std::shared_ptr<Stub>> StubFor(const OrchestratorMember& member);

  // Adds to `client` what a forwarded call carries from the call of
  // `context`: the caller's identity (the gateway's "x-gyre-tenant",
  // "x-gyre-principal", "x-request-id"), so that the owner authorizes,
  // limits and logs it as it would the original (a caller with no
  // principal is named by its address, so the owner's per-client limits
  // see it, not this orchestrator), and the forwarded mark.
  void CopyMetadata(const grpc::ServerContextBase& context, grpc::ClientContext* client) const;
  // A client context for a unary call forwarded from `context`: its
  // deadline and cancellation, CopyMetadata.
  std::unique_ptr<grpc::ClientContext> UnaryContext(const grpc::ServerContextBase& context) const;

  // ListExecutions in sharded mode: every member's list (this one's by
  // `local`, the others' by a forwarded call, in parallel) merged by
  // MergeMemberPages (execution_list_merge.h), whose page token holds each
  // member's place. A member that does not answer is named in the page's
  // unavailable_members. `request` has the caller's tenant applied.
  absl::StatusOr<gyre::v1::ListExecutionsResponse> ListExecutions(
      const grpc::ServerContextBase& context, const gyre::v1::ListExecutionsRequest& request,
      absl::FunctionRef<
          absl::StatusOr<gyre::v1::ListExecutionsResponse>(const gyre::v1::ListExecutionsRequest&)>
          local);

 private:
  const ShardDirectory* directory_;
  Options options_;
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::shared_ptr<Stub>> stubs_ ABSL_GUARDED_BY(mutex_);
};

// A method of the generated stub, e.g. &OwnerForwarding::Stub::GetExecution.
template <typename Request, typename Response>
using UnaryStubMethod = grpc::Status (OwnerForwarding::Stub::*)(grpc::ClientContext*,
                                                                const Request&, Response*);

// The answer of an execution-scoped unary call: `local()` (the engine's),
// or, when it is "not owned" and `forwarding` is set, the owner's answer to
// the same call (`method` with `request`). `local` may run twice (a stale
// directory names this orchestrator). With `forwarding` null this is
// `local()`, mapped.
template <typename Request, typename Response>
grpc::Status AnswerOrForward(OwnerForwarding* forwarding, grpc::ServerContext* context,
                             UnaryStubMethod<Request, Response> method, const Request& request,
                             absl::FunctionRef<absl::StatusOr<Response>()> local,
                             Response* response) {
  absl::StatusOr<Response> result = local();
  if (!result.ok() && forwarding != nullptr) {
    if (std::optional<uint32_t> shard = NotOwnedShard(result.status()); shard.has_value()) {
      absl::StatusOr<OwnerForwarding::Target> target = forwarding->Route(*context, *shard);
      if (!target.ok()) return ToGrpcStatus(target.status());
      if (target->stub != nullptr) {
        std::unique_ptr<grpc::ClientContext> client = forwarding->UnaryContext(*context);
        return (target->stub.get()->*method)(client.get(), request, response);
      }
      result = local();
      if (!result.ok() && NotOwnedShard(result.status()).has_value()) {
        return ToGrpcStatus(OwnerForwarding::Moving(
            *shard, "the directory names this orchestrator, which does not own it"));
      }
    }
  }
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// The same with the local answer written into `response` in place (which
// may live on an arena, where building it apart and moving it in would be
// a copy): `local(response)` fills it or says why not; it may run twice,
// each time on a cleared `response`.
template <typename Request, typename Response>
grpc::Status AnswerInPlaceOrForward(OwnerForwarding* forwarding,
                                    const grpc::ServerContextBase& context,
                                    UnaryStubMethod<Request, Response> method,
                                    const Request& request,
                                    absl::FunctionRef<absl::Status(Response*)> local,
                                    Response* response) {
  const auto answer = [&] {
    response->Clear();
    return local(response);
  };
  absl::Status result = answer();
  if (!result.ok() && forwarding != nullptr) {
    if (std::optional<uint32_t> shard = NotOwnedShard(result); shard.has_value()) {
      absl::StatusOr<OwnerForwarding::Target> target = forwarding->Route(context, *shard);
      if (!target.ok()) return ToGrpcStatus(target.status());
      if (target->stub != nullptr) {
        std::unique_ptr<grpc::ClientContext> client = forwarding->UnaryContext(context);
        response->Clear();
        return (target->stub.get()->*method)(client.get(), request, response);
      }
      result = answer();
      if (!result.ok() && NotOwnedShard(result).has_value()) {
        return ToGrpcStatus(OwnerForwarding::Moving(
            *shard, "the directory names this orchestrator, which does not own it"));
      }
    }
  }
  return ToGrpcStatus(result);
}

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_OWNER_FORWARDING_H_
