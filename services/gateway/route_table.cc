#include "services/gateway/route_table.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gyre::gateway {

std::string ApiCall::Query(absl::string_view name) const {
  auto it = query.find(name);
  return it == query.end() || it->second.empty() ? std::string() : it->second.front();
}

void RouteTable::Add(Route route) {
  Compiled compiled;
  for (absl::string_view segment : absl::StrSplit(route.path_template, '/', absl::SkipEmpty())) {
    compiled.segments.emplace_back(segment);
  }
  compiled_.push_back(std::move(compiled));
  routes_.push_back(std::move(route));
}

absl::StatusOr<RouteTable::Match> RouteTable::Find(absl::string_view method,
                                                   const std::vector<std::string>& segments) const {
  std::vector<std::string> allowed;
  for (size_t i = 0; i < routes_.size(); ++i) {
    const std::vector<std::string>& pattern = compiled_[i].segments;
    if (pattern.size() != segments.size()) continue;
    Match match;
    bool matches = true;
    for (size_t s = 0; s < pattern.size() && matches; ++s) {
      if (absl::StartsWith(pattern[s], "{")) {
        if (segments[s].empty()) matches = false;
        match.params[pattern[s].substr(1, pattern[s].size() - 2)] = segments[s];
      } else {
        matches = pattern[s] == segments[s];
      }
    }
    if (!matches) continue;
    if (routes_[i].method != method) {
      allowed.push_back(routes_[i].method);
      continue;
    }
    match.route = &routes_[i];
    return match;
  }
  const std::string path = absl::StrCat("/", absl::StrJoin(segments, "/"));
  if (!allowed.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("method ", method, " is not allowed on ", path,
                     " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
  }
  return absl::NotFoundError(absl::StrCat("no route for ", path));
}

}  // namespace gyre::gateway
