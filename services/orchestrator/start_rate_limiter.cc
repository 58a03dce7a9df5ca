#include "services/orchestrator/start_rate_limiter.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/common/client_text.h"

namespace gyre::orchestrator {

StartRateLimiter::StartRateLimiter(Options options)
    : buckets_(
          {.per_second = options.per_second, .burst = options.burst, .max_keys = kMaxClients}) {}

absl::Status StartRateLimiter::Admit(absl::string_view client, absl::Time now) {
  const absl::Duration wait = buckets_.Take(client, now);
  if (wait == absl::ZeroDuration()) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "client %s started executions faster than the orchestrator's "
      "executions_per_second_per_client (%g a second, bursts of %g); retry in %.3f s",
      QuoteClientText(client), buckets_.per_second(), buckets_.burst(),
      absl::ToDoubleSeconds(wait)));
}

std::string StartRateLimiter::ClientKey(absl::string_view principal, absl::string_view peer) {
  if (!principal.empty()) return absl::StrCat("principal:", principal);
  // "ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "unix:/path": cut the port.
  const size_t colon = peer.rfind(':');
  const size_t first = peer.find(':');
  if (colon != absl::string_view::npos && colon != first && !absl::StartsWith(peer, "unix:")) {
    return std::string(peer.substr(0, colon));
  }
  return std::string(peer);
}

}  // namespace gyre::orchestrator
