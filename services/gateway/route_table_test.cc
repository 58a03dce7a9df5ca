#include "services/gateway/route_table.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gyre::gateway {
namespace {

std::vector<std::string> Segments(std::initializer_list<const char*> parts) {
  return std::vector<std::string>(parts.begin(), parts.end());
}

RouteTable Table() {
  RouteTable table;
  for (const auto& [method, path] : std::vector<std::pair<const char*, const char*>>{
           {"GET", "/api/v1/executions/{id}"},
           {"POST", "/api/v1/executions/{id}/pause"},
           {"GET", "/api/v1/executions/{id}/tasks/{task}/logs"},
           {"DELETE", "/api/v1/executions/{id}"}}) {
    table.Add({method, path, Role::kViewer, nullptr});
  }
  return table;
}

TEST(RouteTableTest, MatchesTemplatesAndBindsParameters) {
  const RouteTable table = Table();
  auto match =
      table.Find("GET", Segments({"api", "v1", "executions", "e1", "tasks", "t.2", "logs"}));
  ASSERT_TRUE(match.ok()) << match.status();
  EXPECT_EQ(match->route->path_template, "/api/v1/executions/{id}/tasks/{task}/logs");
  EXPECT_EQ(match->params.at("id"), "e1");
  EXPECT_EQ(match->params.at("task"), "t.2");
}

TEST(RouteTableTest, TheMethodSelectsAmongSamePathRoutes) {
  const RouteTable table = Table();
  EXPECT_EQ(table.Find("DELETE", Segments({"api", "v1", "executions", "e1"}))->route->method,
            "DELETE");
  EXPECT_EQ(table.Find("GET", Segments({"api", "v1", "executions", "e1"}))->route->method, "GET");
}

TEST(RouteTableTest, WrongMethodNamesTheAllowedOnes) {
  const auto match = Table().Find("PUT", Segments({"api", "v1", "executions", "e1", "pause"}));
  ASSERT_EQ(match.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(match.status().message(), "allowed: POST")) << match.status();
}

TEST(RouteTableTest, UnknownPathIsNotFound) {
  EXPECT_EQ(Table().Find("GET", Segments({"api", "v1", "nope"})).status().code(),
            absl::StatusCode::kNotFound);
  // A parameter never matches an empty segment.
  EXPECT_EQ(Table().Find("GET", Segments({"api", "v1", "executions", ""})).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gyre::gateway
