#include "services/gateway/api_key_authenticator.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gyre::gateway {
namespace {

TEST(ApiKeyAuthenticatorTest, AcceptsAConfiguredKeyByItsHashOnly) {
  ApiKeyAuthenticator keys;
  const std::string key = "gyk_example";
  ASSERT_TRUE(
      keys.AddConfigured(absl::StrCat("ci:operator:team-a:", ApiKeyAuthenticator::HashKey(key)))
          .ok());
  absl::StatusOr<Principal> principal = keys.Authenticate(key);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->name, "ci");
  EXPECT_EQ(principal->role, Role::kOperator);
  EXPECT_EQ(principal->tenant, "team-a");
  EXPECT_EQ(keys.Authenticate("gyk_other").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(ApiKeyAuthenticatorTest, ThreePartEntryIsInTheDefaultTenant) {
  ApiKeyAuthenticator keys;
  ASSERT_TRUE(
      keys.AddConfigured(absl::StrCat("v:viewer:", ApiKeyAuthenticator::HashKey("k"))).ok());
  EXPECT_EQ(keys.Authenticate("k")->tenant, "default");
}

TEST(ApiKeyAuthenticatorTest, RejectsMalformedEntriesWithoutEchoingThem) {
  ApiKeyAuthenticator keys;
  EXPECT_EQ(keys.AddConfigured("nohash").code(), absl::StatusCode::kInvalidArgument);
  const absl::Status bad_role =
      keys.AddConfigured(absl::StrCat("x:root:", ApiKeyAuthenticator::HashKey("k")));
  EXPECT_TRUE(absl::StrContains(bad_role.message(), "unknown role \"root\"")) << bad_role;
  const absl::Status short_hash = keys.AddConfigured("x:admin:abc123");
  EXPECT_EQ(short_hash.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(short_hash.message(), "abc123")) << short_hash;
  EXPECT_TRUE(keys.empty());
}

TEST(ApiKeyAuthenticatorTest, GeneratedKeysAreDistinctAndPrefixed) {
  absl::StatusOr<std::string> a = ApiKeyAuthenticator::GenerateKey();
  absl::StatusOr<std::string> b = ApiKeyAuthenticator::GenerateKey();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(absl::StartsWith(*a, "gyk_")) << *a;
  EXPECT_GE(a->size(), 4u + 43u);
  EXPECT_NE(*a, *b);
}

TEST(ApiKeyAuthenticatorTest, AClearKeyIsKeptOnlyAsItsHash) {
  ApiKeyAuthenticator keys;
  keys.AddKey("gyk_secret", Principal{"dev", Role::kAdmin, ""});
  EXPECT_EQ(keys.Authenticate("gyk_secret")->role, Role::kAdmin);
  EXPECT_EQ(keys.Authenticate("gyk_secret")->tenant, "default");
}

}  // namespace
}  // namespace gyre::gateway
