#include "services/gateway/password_authenticator.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/gateway/auth_failure.h"
#include "services/gateway/authenticator.h"

namespace gyre::gateway {
namespace {

TEST(PasswordAuthenticatorTest, AcceptsTheRightPasswordAndRefusesAWrongOne) {
  absl::StatusOr<std::string> hash = PasswordAuthenticator::HashPassword("correct horse");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_TRUE(absl::StartsWith(*hash, "$argon2id$v=19$m=19456,t=2,p=1$")) << *hash;
  PasswordAuthenticator users;
  ASSERT_TRUE(users.AddConfigured("alice:operator:blue:" + *hash).ok());

  absl::StatusOr<Principal> alice = users.Authenticate("alice", "correct horse");
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kOperator);
  EXPECT_EQ(alice->tenant, "blue");
  // Remembered now: the second check takes the memo, with the same answer.
  EXPECT_TRUE(users.Authenticate("alice", "correct horse").ok());

  absl::StatusOr<Principal> wrong = users.Authenticate("alice", "correct horsE");
  ASSERT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(AuthFailureReason(wrong.status()), "wrong_password");
  EXPECT_FALSE(absl::StrContains(wrong.status().message(), "horse"));
  absl::StatusOr<Principal> nobody = users.Authenticate("bob", "correct horse");
  EXPECT_EQ(AuthFailureReason(nobody.status()), "unknown_user");
  // The client cannot tell an unknown user from a wrong password.
  EXPECT_EQ(nobody.status().message(), wrong.status().message());
}

// The gateway hashes on its password workers exactly when NeedsHash says
// so; a remembered success answers without Argon2id, a wrong password after
// a right one still needs the hash and is still refused.
TEST(PasswordAuthenticatorTest, OnlyUnrememberedPasswordsOfKnownUsersNeedAHash) {
  absl::StatusOr<std::string> hash = PasswordAuthenticator::HashPassword("correct horse");
  ASSERT_TRUE(hash.ok()) << hash.status();
  Authenticator authenticator;
  ASSERT_TRUE(authenticator.mutable_passwords().AddConfigured("alice:viewer::" + *hash).ok());
  const PasswordAuthenticator& users = authenticator.mutable_passwords();
  const std::string right = "Basic " + absl::Base64Escape("alice:correct horse");
  const std::string wrong = "Basic " + absl::Base64Escape("alice:correct horsE");

  EXPECT_TRUE(users.NeedsHash("alice", "correct horse"));
  EXPECT_TRUE(authenticator.NeedsPasswordHash("", right));
  ASSERT_TRUE(authenticator.Authenticate("", right, absl::Now()).ok());
  // The cache hit path: no hash any more, the same principal.
  EXPECT_FALSE(users.NeedsHash("alice", "correct horse"));
  EXPECT_FALSE(authenticator.NeedsPasswordHash("", right));
  absl::StatusOr<Principal> again = authenticator.Authenticate("", right, absl::Now());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->name, "alice");

  EXPECT_TRUE(authenticator.NeedsPasswordHash("", wrong));
  EXPECT_EQ(AuthFailureReason(authenticator.Authenticate("", wrong, absl::Now()).status()),
            "wrong_password");
  EXPECT_TRUE(authenticator.NeedsPasswordHash("", wrong));  // failures are never remembered
  // Refused without a hash: unknown users, API keys, no Basic at all.
  EXPECT_FALSE(users.NeedsHash("bob", "correct horse"));
  EXPECT_FALSE(authenticator.NeedsPasswordHash("gyk_x", right));
  EXPECT_FALSE(authenticator.NeedsPasswordHash("", "Bearer gyk_x"));
}

TEST(PasswordAuthenticatorTest, TwoHashesOfOnePasswordDifferBySalt) {
  EXPECT_NE(*PasswordAuthenticator::HashPassword("pw"), *PasswordAuthenticator::HashPassword("pw"));
}

TEST(PasswordAuthenticatorTest, RefusesMalformedEntriesNamingThePart) {
  PasswordAuthenticator users;
  EXPECT_TRUE(absl::StrContains(users.AddConfigured("alice:operator").message(), "NAME:ROLE"));
  EXPECT_TRUE(
      absl::StrContains(users.AddConfigured("alice:root:t:$argon2id$x").message(), "unknown role"));
  EXPECT_TRUE(
      absl::StrContains(users.AddConfigured("alice:admin:t:plaintext").message(), "Argon2id"));
  EXPECT_TRUE(users.empty());
}

}  // namespace
}  // namespace gyre::gateway
