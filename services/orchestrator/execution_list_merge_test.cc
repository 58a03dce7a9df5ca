// The page-token merge of ListExecutions across orchestrators, against
// members that page as the engine does (newest first, opaque tokens, short
// pages), so that walking the merged pages is checked whole.

#include "services/orchestrator/execution_list_merge.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

// One orchestrator's executions, newest first, listed from a token
// "p<index>"; `max_page` caps a page below what was asked (as a filter or a
// FULL view's byte bound does).
struct FakeMember {
  std::string id;
  std::vector<v1::Execution> executions;  // newest first
  size_t max_page = 1000;

  v1::ListExecutionsResponse List(const std::string& token, int32_t page_size) const {
    size_t from = 0;
    if (!token.empty()) {
      EXPECT_TRUE(absl::SimpleAtoi(token.substr(1), &from)) << token;
    }
    v1::ListExecutionsResponse response;
    size_t i = from;
    for (; i < executions.size() && response.executions_size() < page_size &&
           static_cast<size_t>(response.executions_size()) < max_page;
         ++i) {
      *response.add_executions() = executions[i];
    }
    if (i < executions.size()) response.set_next_page_token(absl::StrCat("p", i));
    return response;
  }
};

v1::Execution At(int64_t seconds, const std::string& name) {
  v1::Execution execution;
  execution.set_name(name);
  execution.mutable_create_time()->set_seconds(seconds);
  return execution;
}

// `count` executions of `member`, created at from, from + step, ...; newest first.
std::vector<v1::Execution> Spread(const std::string& member, int count, int64_t from,
                                  int64_t step) {
  std::vector<v1::Execution> executions;
  executions.reserve(count);
  for (int i = 0; i < count; ++i) {
    executions.push_back(At(from + i * step, absl::StrCat("executions/", member, "-", i)));
  }
  std::reverse(executions.begin(), executions.end());
  return executions;
}

// Walks the merged listing to its end, `down` members not answering on
// the pages listed in it (page number -> members).
struct Walk {
  std::vector<std::string> names;
  int pages = 0;
  std::vector<std::string> unavailable;  // as the pages said, in order
};
Walk WalkAll(const std::vector<FakeMember>& members, size_t page_size,
             const std::map<int, std::set<std::string>>& down = {}) {
  Walk walk;
  std::string token;
  do {
    absl::StatusOr<MergedCursor> cursor = DecodeMergedToken(token);
    EXPECT_TRUE(cursor.ok()) << cursor.status();
    if (!cursor.ok()) break;
    std::vector<MemberPage> pages;
    for (const FakeMember& member : members) {
      MemberPage page{member.id, (*cursor)[member.id], std::nullopt};
      auto silent = down.find(walk.pages);
      const bool answers = silent == down.end() || !silent->second.contains(member.id);
      if (!page.asked.done && answers) {
        page.response = member.List(page.asked.token, MemberPageSize(page.asked, page_size));
      }
      pages.push_back(std::move(page));
    }
    v1::ListExecutionsResponse merged = MergeMemberPages(std::move(pages), page_size, false);
    EXPECT_LE(static_cast<size_t>(merged.executions_size()), page_size);
    for (const v1::Execution& execution : merged.executions()) {
      walk.names.push_back(execution.name());
    }
    for (const std::string& member : merged.unavailable_members()) {
      walk.unavailable.push_back(member);
    }
    token = merged.next_page_token();
    ++walk.pages;
  } while (!token.empty() && walk.pages < 1000);
  EXPECT_TRUE(token.empty()) << "the walk did not end";
  return walk;
}

// Every execution of `members`, newest first.
std::vector<std::string> Expected(const std::vector<FakeMember>& members) {
  std::vector<v1::Execution> all;
  for (const FakeMember& member : members) {
    all.insert(all.end(), member.executions.begin(), member.executions.end());
  }
  std::sort(all.begin(), all.end(), [](const v1::Execution& a, const v1::Execution& b) {
    if (a.create_time().seconds() != b.create_time().seconds()) {
      return a.create_time().seconds() > b.create_time().seconds();
    }
    return a.name() > b.name();
  });
  std::vector<std::string> names;
  names.reserve(all.size());
  for (const v1::Execution& execution : all) names.push_back(execution.name());
  return names;
}

TEST(ExecutionListMergeTest, TokensRoundTripAndStrangeOnesAreRefused) {
  MergedCursor cursor;
  cursor["host-a:12"] = MemberCursor{"p17", 3, false};
  cursor["b;1:2"] = MemberCursor{"", 0, true};
  cursor["c"] = MemberCursor{"", 0, false};
  const std::string token = EncodeMergedToken(cursor);
  ASSERT_FALSE(token.empty());
  absl::StatusOr<MergedCursor> decoded = DecodeMergedToken(token);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, cursor);

  // Every member done: the last page, no token.
  EXPECT_EQ(EncodeMergedToken({{"a", MemberCursor{"", 0, true}}}), "");
  EXPECT_TRUE(DecodeMergedToken("")->empty());

  for (const std::string& bad :
       {std::string("p12"), std::string("m!!"), token.substr(0, 9), absl::StrCat("m", "MTo")}) {
    absl::StatusOr<MergedCursor> refused = DecodeMergedToken(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ExecutionListMergeTest, PagesListEveryMembersExecutionsOnceNewestFirst) {
  // Interleaved in time, one member far newer, one with short pages.
  std::vector<FakeMember> members = {
      {"a", Spread("a", 23, 100, 3)},
      {"b", Spread("b", 17, 101, 4)},
      {"c", Spread("c", 5, 1000, 1), 2},
      {"d", {}},
  };
  for (size_t page_size : {1, 3, 7, 100}) {
    Walk walk = WalkAll(members, page_size);
    EXPECT_EQ(walk.names, Expected(members)) << "page_size " << page_size;
    EXPECT_TRUE(walk.unavailable.empty());
  }
  // One page holds everything when it may.
  EXPECT_EQ(WalkAll(members, 100).pages, 3)
      << "c's short pages (2 at a time) stop a page where c has more";
}

TEST(ExecutionListMergeTest, ASilentMemberIsNamedAndListedLaterNeverLost) {
  std::vector<FakeMember> members = {
      {"a", Spread("a", 10, 100, 2)},
      {"b", Spread("b", 10, 101, 2)},
  };
  // b does not answer for pages 1 and 2 (counting from 0).
  Walk walk = WalkAll(members, 4, {{1, {"b"}}, {2, {"b"}}});
  EXPECT_EQ(walk.unavailable, (std::vector<std::string>{"b", "b"}));
  std::vector<std::string> listed = walk.names;
  std::vector<std::string> expected = Expected(members);
  std::sort(listed.begin(), listed.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed, expected) << "every execution once, b's after it answered again";
}

TEST(ExecutionListMergeTest, MemberPagesCoverWhatIsSkipped) {
  EXPECT_EQ(MemberPageSize(MemberCursor{"", 0, false}, 100), 100);
  EXPECT_EQ(MemberPageSize(MemberCursor{"p3", 40, false}, 100), 140);
  EXPECT_EQ(MemberPageSize(MemberCursor{"p3", 990, false}, 100), 1000);
}

}  // namespace
}  // namespace gyre::orchestrator
