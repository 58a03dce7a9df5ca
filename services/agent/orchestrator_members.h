#ifndef GYRE_SERVICES_AGENT_ORCHESTRATOR_MEMBERS_H_
#define GYRE_SERVICES_AGENT_ORCHESTRATOR_MEMBERS_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace gyre::agent {

// Orchestrators one agent connects to at most (entries of
// orchestrator_address, and addresses they resolve to): one stream each.
inline constexpr size_t kMaxOrchestrators = 64;

// One orchestrator the agent holds a stream to.
struct OrchestratorMember {
  // What gRPC dials: the entry as written, or one address a DNS name
  // resolved to ("10.1.2.3:50051", "[fd00::7]:50051"). Also the member's
  // name: the agent's streams are keyed by it.
  std::string target;
  // For a resolved address, the DNS name and port it came from: the
  // authority the channel presents and the name TLS verifies the server's
  // certificate against. Empty when `target` is dialed as written.
  std::string authority;

  bool operator==(const OrchestratorMember& other) const {
    return target == other.target && authority == other.authority;
  }
};

// The entries of orchestrator_address: comma-separated "host:port" or
// "dns:///host:port", 1 to kMaxOrchestrators of them (blanks around commas
// ignored). An error names the bad entry or the limit.
absl::StatusOr<std::vector<std::string>> ParseOrchestratorAddresses(absl::string_view text);

// Whether the entry names a host to resolve (a DNS name), rather than an IP
// address dialed as it is.
bool NeedsResolving(absl::string_view entry);

// What the entries stand for now: an IP entry as it is; a DNS name as every
// IPv4 address it has, or its IPv6 ones when it has no IPv4 one (a
// dual-stack Kubernetes Service names each pod twice; one stream per pod).
// Sorted, without duplicates, at most kMaxOrchestrators (the rest dropped,
// with `errors` saying so). `errors` lists the names that did not resolve
// (their members are missing from the result).
struct ResolvedOrchestrators {
  std::vector<OrchestratorMember> members;
  std::vector<std::string> errors;
  // Indices into the entries of those that did not resolve.
  std::vector<size_t> failed_entries;
};
ResolvedOrchestrators ResolveOrchestrators(const std::vector<std::string>& entries);

// Resolves the entries again every `interval` on a thread of its own, so
// that orchestrators that join (a new pod behind a headless Service) are
// connected and those that leave are dropped: `on_change` gets the whole
// new set whenever it differs. A name that fails to resolve keeps the
// members it had (a DNS hiccup must not drop a live orchestrator).
class OrchestratorResolver {
 public:
  using OnChange = std::function<void(const std::vector<OrchestratorMember>&)>;
  OrchestratorResolver(std::vector<std::string> entries, absl::Duration interval,
                       OnChange on_change);
  ~OrchestratorResolver();

  // Resolves once on the calling thread (on_change runs before it returns,
  // even with an empty set), then starts the thread.
  void Start();

 private:
  void Resolve();

  const std::vector<std::string> entries_;
  const absl::Duration interval_;
  const OnChange on_change_;
  // The members each entry stood for at its last successful resolution.
  std::vector<std::vector<OrchestratorMember>> by_entry_;
  std::vector<OrchestratorMember> current_;
  bool first_ = true;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace gyre::agent

#endif  // GYRE_SERVICES_AGENT_ORCHESTRATOR_MEMBERS_H_
