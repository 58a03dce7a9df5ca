#ifndef GYRE_SERVICES_ORCHESTRATOR_EXECUTION_LIST_MERGE_H_
#define GYRE_SERVICES_ORCHESTRATOR_EXECUTION_LIST_MERGE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gyre/v1/orchestrator_service.pb.h"

namespace gyre::orchestrator {

// ListExecutions across several orchestrators (issue 21, docs/architecture.md
// "Reaching an execution's owner"): each lists the executions it holds,
// newest first, with page tokens of its own; a merged page takes the newest
// of all their heads, and its token keeps every member's place.
//
// A member's place is its own page token (opaque here) and how many of the
// executions listed from it were taken already: a member page is merged only
// in part when others' executions are newer, and its token says where the
// *next* page starts, not where its untaken executions do. So the untaken
// ones are asked for again (at most 1,000, a page's limit) rather than lost.

// Where a member's listing goes on.
struct MemberCursor {
  // The member's page token ("" for its first page).
  std::string token;
  // How many executions from `token` on were taken already.
  uint32_t skip = 0;
  // Its listing was taken to the end.
  bool done = false;

  bool operator==(const MemberCursor&) const = default;
};

// Every member's place, by member id.
using MergedCursor = std::map<std::string, MemberCursor>;

// The most members a merged token holds (as many orchestrators as share one
// database: a handful). Past it, a token is refused.
inline constexpr size_t kMaxMergedMembers = 64;
// A member's own token: the engine's are a few bytes ("p123").
inline constexpr size_t kMaxMemberTokenBytes = 256;

// The page token of a merged listing: opaque to clients, "m" and URL-safe
// base64. An empty cursor (every member done) is the empty token.
std::string EncodeMergedToken(const MergedCursor& cursor);
// InvalidArgument naming the token when it was not made by
// EncodeMergedToken (or is past the limits above).
absl::StatusOr<MergedCursor> DecodeMergedToken(absl::string_view token);

// What to ask a member for: `cursor`'s token, with page_size enough to cover
// the executions to skip (1..1000).
int32_t MemberPageSize(const MemberCursor& cursor, size_t page_size);

// One member's answer to the request MemberPageSize made from `asked`.
struct MemberPage {
  std::string member;
  MemberCursor asked;
  // nullopt: the member did not answer (unreachable, timed out, failed).
  std::optional<gyre::v1::ListExecutionsResponse> response;
};

// The merged page: newest first by (create_time, name) over the members'
// heads, at most `page_size` executions (and, with `full_view`, contexts of
// at most limits::kMaxListPageValueBytes but at least one execution). It
// stops early where a member that has more ran out of listed executions (what
// it lists next may be newer than the others' rest). next_page_token holds
// every member's new place (a member that did not answer keeps `asked`, and
// is named in unavailable_members); empty once every member is done.
gyre::v1::ListExecutionsResponse MergeMemberPages(std::vector<MemberPage> pages, size_t page_size,
                                                  bool full_view);

}  // namespace gyre::orchestrator

#endif  // GYRE_SERVICES_ORCHESTRATOR_EXECUTION_LIST_MERGE_H_
