#include "services/orchestrator/workflow_registry.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/orchestrator/testing/engine_builders.h"

namespace gyre::orchestrator {
namespace {

namespace v1 = ::gyre::v1;

using ::gyre::orchestrator::testing::Task;
using ::gyre::orchestrator::testing::Workflow;

// Stores a prepared definition named workflows/`name` with tasks `task_ids`.
absl::Status Add(WorkflowRegistry& registry, const std::string& name,
                 const std::vector<std::string>& task_ids, bool create, absl::Time now) {
  std::vector<v1::TaskSpec> tasks;
  for (const std::string& id : task_ids) tasks.push_back(Task(id));
  v1::WorkflowDefinition def = Workflow(name, std::move(tasks));
  if (absl::Status prepared = WorkflowRegistry::Prepare(nullptr, def); !prepared.ok()) {
    return prepared;
  }
  return registry.AddVersion(def, create, now);
}

TEST(WorkflowRegistryTest, VersionsAreNumberedAndEachCanBeResolved) {
  WorkflowRegistry registry;
  const absl::Time t1 = absl::FromUnixSeconds(1000), t2 = absl::FromUnixSeconds(2000);
  ASSERT_TRUE(Add(registry, "etl", {"a"}, /*create=*/true, t1).ok());
  EXPECT_EQ(Add(registry, "etl", {"a"}, /*create=*/true, t1).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Add(registry, "missing", {"a"}, /*create=*/false, t1).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(Add(registry, "etl", {"a", "b"}, /*create=*/false, t2).ok());

  absl::StatusOr<WorkflowRegistry::Definition> latest = registry.Resolve("workflows/etl");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ((*latest)->version(), 2);
  EXPECT_EQ((*latest)->tasks_size(), 2);
  EXPECT_EQ((*latest)->create_time().seconds(), 2000);
  absl::StatusOr<WorkflowRegistry::Definition> first = registry.Resolve("workflows/etl/versions/1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->version(), 1);
  EXPECT_EQ((*first)->tasks_size(), 1);
  EXPECT_EQ((*first)->create_time().seconds(), 1000);
  // The short name resolves too; Latest takes either.
  ASSERT_TRUE(registry.Resolve("etl").ok());
  EXPECT_EQ(registry.Latest("etl")->version(), 2);
  EXPECT_EQ(registry.Latest("workflows/etl")->version(), 2);
  EXPECT_EQ(registry.Latest("nope"), nullptr);

  EXPECT_EQ(registry.Resolve("workflows/etl/versions/3").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Resolve("workflows/etl/versions/x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Resolve("workflows/etl/revisions/1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Resolve("jobs/etl").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkflowRegistryTest, AnUnknownNameSuggestsTheNearestOrLeavesItToTheCaller) {
  WorkflowRegistry registry;
  ASSERT_TRUE(Add(registry, "nightly-etl", {"a"}, true, absl::UnixEpoch()).ok());
  ASSERT_TRUE(Add(registry, "backup", {"a"}, true, absl::UnixEpoch()).ok());

  absl::StatusOr<WorkflowRegistry::Definition> typo = registry.Resolve("workflows/nightly-elt");
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(typo.status().message(), "did you mean \"workflows/nightly-etl\""))
      << typo.status();

  // With a Suggestion, the message has none and the caller gets what to compare.
  WorkflowRegistry::Suggestion suggestion;
  absl::StatusOr<WorkflowRegistry::Definition> deferred =
      registry.Resolve("workflows/nightly-elt", &suggestion);
  EXPECT_EQ(deferred.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(absl::StrContains(deferred.status().message(), "did you mean")) << deferred.status();
  EXPECT_EQ(suggestion.word, "workflows/nightly-elt");
  EXPECT_EQ(suggestion.candidates,
            (std::vector<std::string>{"workflows/backup", "workflows/nightly-etl"}));
}

TEST(WorkflowRegistryTest, PagesFollowNamesAndTokensRoundTrip) {
  WorkflowRegistry registry;
  for (const char* name : {"c", "a", "b", "d"}) {
    ASSERT_TRUE(Add(registry, name, {"t"}, true, absl::UnixEpoch()).ok());
  }
  ASSERT_TRUE(Add(registry, "b", {"t", "u"}, false, absl::UnixEpoch()).ok());

  bool more = false;
  std::vector<WorkflowRegistry::Definition> page = registry.Page("", 2, &more);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->name(), "workflows/a");
  EXPECT_EQ(page[1]->name(), "workflows/b");
  EXPECT_EQ(page[1]->version(), 2);  // the latest version of each
  EXPECT_TRUE(more);

  const std::string token = WorkflowRegistry::PageToken(page[1]->name());
  absl::StatusOr<std::string> after = WorkflowRegistry::AfterToken(token);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, "workflows/b");
  // A workflow stored meanwhile before the token does not shift the next page.
  ASSERT_TRUE(Add(registry, "aa", {"t"}, true, absl::UnixEpoch()).ok());
  page = registry.Page(*after, 2, &more);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->name(), "workflows/c");
  EXPECT_EQ(page[1]->name(), "workflows/d");
  EXPECT_FALSE(more);

  EXPECT_EQ(*WorkflowRegistry::AfterToken(""), "");
  for (const char* bad : {"b", "x", "wB", "w/etc", "w"}) {
    EXPECT_EQ(WorkflowRegistry::AfterToken(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace gyre::orchestrator
