#include "services/orchestrator/start_rate_limiter.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/common/client_text.h"

namespace gyre::orchestrator {

StartRateLimiter::StartRateLimiter(Options options) : options_(options) {}

void StartRateLimiter::Refill(Bucket& bucket, absl::Time now) const {
  const double burst = std::max(1.0, options_.burst > 0 ? options_.burst : options_.per_second);
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.updated));
  bucket.tokens = std::min(burst, bucket.tokens + elapsed * options_.per_second);
  bucket.updated = now;
}

absl::Status StartRateLimiter::Admit(absl::string_view client, absl::Time now) {
  if (!enabled()) return absl::OkStatus();
  const double burst = std::max(1.0, options_.burst > 0 ? options_.burst : options_.per_second);
  absl::MutexLock lock(&mutex_);
  auto it = buckets_.find(client);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxClients) {
      // Drop the buckets that are full again: their clients lose nothing.
      std::vector<std::string> full;
      for (auto& [key, bucket] : buckets_) {
        Refill(bucket, now);
        if (bucket.tokens >= burst) full.push_back(key);
      }
      for (const std::string& key : full) buckets_.erase(key);
      // Still over half full: more clients than it can follow are busy
      // (a flood of addresses). Start over, so that the sweep above runs at
      // most once per kMaxClients / 2 new clients.
      if (buckets_.size() > kMaxClients / 2) buckets_.clear();
    }
    it = buckets_.emplace(std::string(client), Bucket{burst, now}).first;
  }
  Bucket& bucket = it->second;
  Refill(bucket, now);
  if (bucket.tokens < 1) {
    const double wait = (1 - bucket.tokens) / options_.per_second;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "client %s started executions faster than the orchestrator's "
        "executions_per_second_per_client (%g a second, bursts of %g); retry in %.3f s",
        QuoteClientText(client), options_.per_second, burst, wait));
  }
  bucket.tokens -= 1;
  return absl::OkStatus();
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
