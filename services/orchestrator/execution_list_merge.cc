#include "services/orchestrator/execution_list_merge.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/client_text.h"
#include "libs/common/limits.h"

namespace gyre::orchestrator {

namespace v1 = ::gyre::v1;

namespace {

// The most a member is asked for at once (ListExecutions' page limit).
constexpr size_t kMaxMemberPage = 1000;

// "<length>:<bytes>": ids and tokens may hold any byte.
void PutField(std::string* out, absl::string_view value) {
  absl::StrAppend(out, value.size(), ":", value);
}

bool TakeNumber(absl::string_view* in, char end, uint64_t* value) {
  const size_t stop = in->find(end);
  if (stop == absl::string_view::npos || stop == 0 || stop > 10) return false;
  if (!absl::SimpleAtoi(in->substr(0, stop), value)) return false;
  in->remove_prefix(stop + 1);
  return true;
}

bool TakeField(absl::string_view* in, size_t max, std::string* value) {
  uint64_t size = 0;
  if (!TakeNumber(in, ':', &size) || size > max || size > in->size()) return false;
  value->assign(in->data(), size);
  in->remove_prefix(size);
  return true;
}

absl::Status NotOurs(absl::string_view token) {
  return absl::InvalidArgumentError(
      absl::StrCat("page_token ", QuoteClientText(token),
                   " was not handed out by ListExecutions across orchestrators (a token of one "
                   "orchestrator's list, or cut or changed)"));
}

// Newest first: the later create_time, then the greater name (ids start
// with their creation time in milliseconds).
bool Newer(const v1::Execution& a, const v1::Execution& b) {
  if (a.create_time().seconds() != b.create_time().seconds()) {
    return a.create_time().seconds() > b.create_time().seconds();
  }
  if (a.create_time().nanos() != b.create_time().nanos()) {
    return a.create_time().nanos() > b.create_time().nanos();
  }
  return a.name() > b.name();
}

size_t ContextBytes(const v1::Execution& execution) {
  size_t bytes = 0;
  for (const auto& [key, value] : execution.context()) bytes += key.size() + value.size();
  return bytes;
}

}  // namespace

std::string EncodeMergedToken(const MergedCursor& cursor) {
  bool all_done = true;
  for (const auto& [member, place] : cursor) all_done = all_done && place.done;
  if (all_done) return "";
  std::string payload;
  for (const auto& [member, place] : cursor) {
    PutField(&payload, member);
    PutField(&payload, place.token);
    absl::StrAppend(&payload, place.skip, place.done ? "d" : "", ";");
  }
  return absl::StrCat("m", absl::WebSafeBase64Escape(payload));
}

absl::StatusOr<MergedCursor> DecodeMergedToken(absl::string_view token) {
  MergedCursor cursor;
  if (token.empty()) return cursor;
  std::string payload;
  if (token[0] != 'm' || !absl::WebSafeBase64Unescape(token.substr(1), &payload)) {
    return NotOurs(token);
  }
  absl::string_view in = payload;
  while (!in.empty()) {
    if (cursor.size() == kMaxMergedMembers) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_token names more than ", kMaxMergedMembers, " orchestrators"));
    }
    std::string member;
    MemberCursor place;
    if (!TakeField(&in, kMaxMemberTokenBytes, &member) ||
        !TakeField(&in, kMaxMemberTokenBytes, &place.token)) {
      return NotOurs(token);
    }
    const size_t stop = in.find(';');
    if (stop == absl::string_view::npos) return NotOurs(token);
    absl::string_view skip = in.substr(0, stop);
    in.remove_prefix(stop + 1);
    if (!skip.empty() && skip.back() == 'd') {
      place.done = true;
      skip.remove_suffix(1);
    }
    if (!absl::SimpleAtoi(skip, &place.skip) || place.skip >= kMaxMemberPage ||
        !cursor.emplace(std::move(member), std::move(place)).second) {
      return NotOurs(token);
    }
  }
  return cursor;
}

int32_t MemberPageSize(const MemberCursor& cursor, size_t page_size) {
  return static_cast<int32_t>(std::min<size_t>(page_size + cursor.skip, kMaxMemberPage));
}

v1::ListExecutionsResponse MergeMemberPages(std::vector<MemberPage> pages, size_t page_size,
                                            bool full_view) {
  // One member's listed executions not yet taken: [next, end) of its page.
  struct Head {
    MemberPage* page;
    int next;
    int end;
    bool more;  // the member lists more after its page
  };
  std::vector<Head> heads;
  MergedCursor cursor;
  v1::ListExecutionsResponse merged;
  for (MemberPage& page : pages) {
    if (page.asked.done) {
      cursor[page.member] = page.asked;
      continue;
    }
    if (!page.response.has_value()) {
      cursor[page.member] = page.asked;
      merged.add_unavailable_members(page.member);
      continue;
    }
    const int listed = page.response->executions_size();
    const int start = static_cast<int>(std::min<uint32_t>(page.asked.skip, listed));
    heads.push_back(Head{&page, start, listed, !page.response->next_page_token().empty()});
  }
  size_t context_bytes = 0;
  while (static_cast<size_t>(merged.executions_size()) < page_size) {
    Head* newest = nullptr;
    bool blocked = false;
    for (Head& head : heads) {
      if (head.next == head.end) {
        // What it lists next is unknown and may be newer than the rest.
        blocked = blocked || head.more;
        continue;
      }
      if (newest == nullptr || Newer(head.page->response->executions(head.next),
                                     newest->page->response->executions(newest->next))) {
        newest = &head;
      }
    }
    if (blocked || newest == nullptr) break;
    v1::Execution* execution = newest->page->response->mutable_executions(newest->next);
    if (full_view) {
      const size_t bytes = ContextBytes(*execution);
      if (merged.executions_size() > 0 && context_bytes + bytes > limits::kMaxListPageValueBytes) {
        break;
      }
      context_bytes += bytes;
    }
    *merged.add_executions() = std::move(*execution);
    ++newest->next;
  }
  for (const Head& head : heads) {
    const MemberPage& page = *head.page;
    MemberCursor& place = cursor[page.member];
    if (head.next < head.end) {
      // Part of its page is left: asked again next time, the taken part skipped.
      place = MemberCursor{page.asked.token, static_cast<uint32_t>(head.next), false};
    } else if (head.more) {
      // Its page is taken (or skipped) whole: on from its next page.
      const uint32_t listed = static_cast<uint32_t>(head.end);
      place = MemberCursor{page.response->next_page_token(),
                           page.asked.skip > listed ? page.asked.skip - listed : 0, false};
    } else {
      place = MemberCursor{"", 0, true};
    }
  }
  merged.set_next_page_token(EncodeMergedToken(cursor));
  return merged;
}

}  // namespace gyre::orchestrator
