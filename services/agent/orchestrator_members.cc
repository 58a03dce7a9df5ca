#include "services/agent/orchestrator_members.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/logging/logger.h"

namespace gyre::agent {
namespace {

struct HostPort {
  std::string host;  // without brackets
  std::string port;
};

// "host:port", "[v6]:port" or "dns:///host:port"; nullopt when malformed.
std::optional<HostPort> SplitEntry(absl::string_view entry) {
  absl::ConsumePrefix(&entry, "dns:///");
  const size_t colon = entry.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return std::nullopt;
  uint32_t port = 0;
  if (!absl::SimpleAtoi(entry.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return std::nullopt;
  }
  absl::string_view host = entry.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) return std::nullopt;
  if (host.empty() || host.find_first_of("/, ") != absl::string_view::npos) return std::nullopt;
  return HostPort{std::string(host), std::string(entry.substr(colon + 1))};
}

bool IsIpLiteral(const std::string& host) {
  in6_addr scratch{};
  return inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &scratch) == 1;
}

// The addresses of one family `host` has, as gRPC targets with `port`.
std::vector<std::string> Lookup(const std::string& host, const std::string& port, int family,
                                int* error) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  *error = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  std::vector<std::string> targets;
  if (*error != 0) return targets;
  for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (at->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(at->ai_addr)->sin_addr, text,
                sizeof(text));
      targets.push_back(absl::StrCat(text, ":", port));
    } else if (at->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(at->ai_addr)->sin6_addr, text,
                sizeof(text));
      targets.push_back(absl::StrCat("[", text, "]:", port));
    }
  }
  freeaddrinfo(found);
  return targets;
}

// What one entry stands for now; an error when its name does not resolve.
absl::StatusOr<std::vector<OrchestratorMember>> ResolveEntry(const std::string& entry) {
  if (!NeedsResolving(entry)) return std::vector<OrchestratorMember>{{entry, ""}};
  const std::optional<HostPort> parts = SplitEntry(entry);
  if (!parts) return absl::InvalidArgumentError(absl::StrCat("bad entry \"", entry, "\""));
  int error = 0;
  std::vector<std::string> targets = Lookup(parts->host, parts->port, AF_INET, &error);
  if (targets.empty()) targets = Lookup(parts->host, parts->port, AF_INET6, &error);
  if (targets.empty()) {
    return absl::UnavailableError(
        absl::StrCat("orchestrator_address: ", parts->host, " does not resolve (",
                     error != 0 ? gai_strerror(error) : "no address", ")"));
  }
  std::vector<OrchestratorMember> members;
  const std::string authority = absl::StrCat(parts->host, ":", parts->port);
  for (std::string& target : targets) members.push_back({std::move(target), authority});
  return members;
}

// Sorted, deduplicated, within kMaxOrchestrators.
std::vector<OrchestratorMember> Normalize(std::vector<OrchestratorMember> members,
                                          std::vector<std::string>* errors) {
  std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
    return std::tie(a.target, a.authority) < std::tie(b.target, b.authority);
  });
  members.erase(std::unique(members.begin(), members.end(),
                            [](const auto& a, const auto& b) { return a.target == b.target; }),
                members.end());
  if (members.size() > kMaxOrchestrators) {
    errors->push_back(absl::StrCat("orchestrator_address stands for ", members.size(),
                                   " orchestrators; the agent connects to at most ",
                                   kMaxOrchestrators, " (kMaxOrchestrators), the rest dropped"));
    members.resize(kMaxOrchestrators);
  }
  return members;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseOrchestratorAddresses(absl::string_view text) {
  std::vector<std::string> entries;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    if (!SplitEntry(part)) {
      return absl::InvalidArgumentError(
          absl::StrCat("orchestrator_address: invalid entry \"", part,
                       "\" (expected host:port or dns:///host:port, comma-separated)"));
    }
    entries.emplace_back(part);
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        "orchestrator_address is empty (expected host:port, or several comma-separated)");
  }
  if (entries.size() > kMaxOrchestrators) {
    return absl::InvalidArgumentError(absl::StrCat("orchestrator_address: ", entries.size(),
                                                   " entries; at most ", kMaxOrchestrators,
                                                   " orchestrators (kMaxOrchestrators)"));
  }
  return entries;
}

bool NeedsResolving(absl::string_view entry) {
  const std::optional<HostPort> parts = SplitEntry(entry);
  return parts.has_value() && !IsIpLiteral(parts->host);
}

ResolvedOrchestrators ResolveOrchestrators(const std::vector<std::string>& entries) {
  ResolvedOrchestrators resolved;
  std::vector<OrchestratorMember> members;
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StatusOr<std::vector<OrchestratorMember>> found = ResolveEntry(entries[i]);
    if (!found.ok()) {
      resolved.errors.emplace_back(found.status().message());
      resolved.failed_entries.push_back(i);
      continue;
    }
    members.insert(members.end(), found->begin(), found->end());
  }
  resolved.members = Normalize(std::move(members), &resolved.errors);
  return resolved;
}

OrchestratorResolver::OrchestratorResolver(std::vector<std::string> entries,
                                           absl::Duration interval, OnChange on_change)
    : entries_(std::move(entries)),
      interval_(interval),
      on_change_(std::move(on_change)),
      by_entry_(entries_.size()) {}

OrchestratorResolver::~OrchestratorResolver() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void OrchestratorResolver::Start() {
  Resolve();
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mutex_);
        auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stopping_; };
        if (mutex_.AwaitWithTimeout(absl::Condition(&stopping), interval_)) return;
      }
      Resolve();
    }
  });
}

void OrchestratorResolver::Resolve() {
  std::vector<OrchestratorMember> members;
  std::vector<std::string> errors;
  for (size_t i = 0; i < entries_.size(); ++i) {
    absl::StatusOr<std::vector<OrchestratorMember>> found = ResolveEntry(entries_[i]);
    if (found.ok()) {
      by_entry_[i] = *std::move(found);
    } else {
      errors.emplace_back(found.status().message());  // keeps what it stood for
    }
    members.insert(members.end(), by_entry_[i].begin(), by_entry_[i].end());
  }
  members = Normalize(std::move(members), &errors);
  if (!errors.empty()) {
    logging::Warn("orchestrator addresses not all resolved; the last known are kept",
                  {{"errors", absl::StrJoin(errors, "; ")}});
  }
  if (!first_ && members == current_) return;
  first_ = false;
  std::vector<std::string> targets;
  for (const OrchestratorMember& member : members) targets.push_back(member.target);
  logging::Info("orchestrators to connect to", {{"orchestrators", absl::StrJoin(targets, ",")},
                                                {"count", static_cast<int64_t>(members.size())}});
  current_ = members;
  on_change_(members);
}

}  // namespace gyre::agent
