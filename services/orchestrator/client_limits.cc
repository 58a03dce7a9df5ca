#include "services/orchestrator/client_limits.h"

#include <grpcpp/server_context.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "services/orchestrator/start_rate_limiter.h"

namespace gyre::orchestrator {

ClientLimits::Slot& ClientLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    limits_ = std::exchange(other.limits_, nullptr);
    client_ = std::move(other.client_);
    kind_ = other.kind_;
  }
  return *this;
}

void ClientLimits::Slot::Release() {
  if (limits_ != nullptr) std::exchange(limits_, nullptr)->Release(client_, kind_);
}

ClientLimits* ClientLimits::Unlimited() {
  static ClientLimits* const unlimited = new ClientLimits(Options{});
  return unlimited;
}

absl::StatusOr<ClientLimits::Slot> ClientLimits::AcquireStream(absl::string_view client,
                                                               absl::string_view what) {
  return Acquire(client, what, Slot::Kind::kStream);
}

absl::StatusOr<ClientLimits::Slot> ClientLimits::AcquireCall(absl::string_view client,
                                                             absl::string_view what) {
  return Acquire(client, what, Slot::Kind::kCall);
}

absl::StatusOr<ClientLimits::Slot> ClientLimits::Acquire(absl::string_view client,
                                                         absl::string_view what, Slot::Kind kind) {
  const bool stream = kind == Slot::Kind::kStream;
  const int64_t limit =
      stream ? options_.max_streams_per_client : options_.max_inflight_calls_per_client;
  if (limit <= 0) return Slot();  // off: nothing to count
  {
    absl::MutexLock lock(&mutex_);
    Held& held = held_[client];
    int64_t& count = stream ? held.streams : held.calls;
    if (count >= limit) {
      if (held.streams == 0 && held.calls == 0) held_.erase(client);
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s: client \"%s\" already has %d %s open, the most the orchestrator's %s allows; "
          "retry once one ends",
          what, absl::CHexEscape(client.substr(0, 128)), count,
          stream ? "streams (Watch, WatchBatches, RunExecution, agent Connect)" : "calls",
          stream ? "max_streams_per_client" : "max_inflight_calls_per_client"));
    }
    ++count;
  }
  return Slot(this, std::string(client), kind);
}

void ClientLimits::Release(const std::string& client, Slot::Kind kind) {
  absl::MutexLock lock(&mutex_);
  auto it = held_.find(client);
  if (it == held_.end()) return;
  (kind == Slot::Kind::kStream ? it->second.streams : it->second.calls)--;
  if (it->second.streams <= 0 && it->second.calls <= 0) held_.erase(it);
}

std::string ClientLimits::ClientOf(const grpc::ServerContextBase& context) {
  absl::string_view principal;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("x-gyre-principal"); it != metadata.end()) {
    principal = absl::string_view(it->second.data(), it->second.size());
  }
  return StartRateLimiter::ClientKey(principal, context.peer());
}

}  // namespace gyre::orchestrator
