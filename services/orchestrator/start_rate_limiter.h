#ifndef GYRE_SERVICES_ORCHESTRATOR_START_RATE_LIMITER_H_
#define GYRE_SERVICES_ORCHESTRATOR_START_RATE_LIMITER_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/common/token_buckets.h"

namespace gyre::orchestrator {

// Executions started per second per client (StartExecution, RunExecution),
// at the orchestrator's API edge, before the engine: a token bucket per
// client that refills at `per_second` up to `burst`. A start over it gets
// RESOURCE_EXHAUSTED naming the limit and when to retry. Off when
// per_second is 0 (the default: `gyre dev` and tests are unlimited).
//
// The client is what the caller passes: the principal the gateway forwards
// (metadata x-gyre-principal) or else the peer's address without its port.
// Memory stays bounded by kMaxClients however many addresses call.
//
// Thread-safe; Admit takes a mutex of its own for a few map operations,
// never the engine lock.
class StartRateLimiter {
 public:
  struct Options {
    double per_second = 0;  // 0: unlimited
    double burst = 0;       // 0: one second's worth (at least 1)
  };
  // Buckets kept at once (KeyedTokenBuckets says how room is made).
  static constexpr size_t kMaxClients = 100'000;

  explicit StartRateLimiter(Options options);

  bool enabled() const { return buckets_.enabled(); }

  // Takes one start from `client`'s bucket at `now`.
  absl::Status Admit(absl::string_view client, absl::Time now);

  // The client key of a gRPC call: `principal` when non-empty, else `peer`
  // ("ipv4:10.0.0.7:53412") without its port.
  static std::string ClientKey(absl::string_view principal, absl::string_view peer);

 private:
  KeyedTokenBuckets buckets_;
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_START_RATE_LIMITER_H_
