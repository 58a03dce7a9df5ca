#ifndef GYRE_SERVICES_ORCHESTRATOR_CLIENT_LIMITS_H_
#define GYRE_SERVICES_ORCHESTRATOR_CLIENT_LIMITS_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace grpc {
class ServerContextBase;
}

namespace gyre::orchestrator {

// What one client may hold open at the orchestrator at once: streams
// (Watch, WatchBatches, RunExecution, an agent's Connect) and unary calls
// in flight. The client is the gateway's forwarded principal (metadata
// x-gyre-principal), else the peer's address without its port
// (StartRateLimiter::ClientKey). Past a limit the call gets
// RESOURCE_EXHAUSTED naming the limit and its config key. A limit of 0 is
// off (the default: `gyre dev` and tests are unlimited).
//
// Memory: an entry exists only while its client holds something, so the
// map is bounded by the calls gRPC has open. Thread-safe; a mutex of its
// own for a map lookup, never the engine lock.
class ClientLimits {
 public:
  struct Options {
    int64_t max_streams_per_client = 0;         // 0: unlimited
    int64_t max_inflight_calls_per_client = 0;  // 0: unlimited
  };

  // One stream or call held by a client, given back when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept { *this = std::move(other); }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { Release(); }

   private:
    friend class ClientLimits;
    enum class Kind { kStream, kCall };
    Slot(ClientLimits* limits, std::string client, Kind kind)
        : limits_(limits), client_(std::move(client)), kind_(kind) {}
    void Release();

    ClientLimits* limits_ = nullptr;
    std::string client_;
    Kind kind_ = Kind::kStream;
  };

  explicit ClientLimits(Options options) : options_(options) {}

  // Limits all off: what a service uses until it is given others.
  static ClientLimits* Unlimited();

  // A stream for `client`; `what` names the call in the error.
  absl::StatusOr<Slot> AcquireStream(absl::string_view client, absl::string_view what);
  // A unary call in flight for `client`.
  absl::StatusOr<Slot> AcquireCall(absl::string_view client, absl::string_view what);

  // The client key of a gRPC call (see the class comment).
  static std::string ClientOf(const grpc::ServerContextBase& context);

 private:
  struct Held {
    int64_t streams = 0;
    int64_t calls = 0;
  };
  absl::StatusOr<Slot> Acquire(absl::string_view client, absl::string_view what, Slot::Kind kind);
  void Release(const std::string& client, Slot::Kind kind);

  const Options options_;
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, Held> held_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_CLIENT_LIMITS_H_
