#include "services/gateway/password_authenticator.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "services/gateway/auth_failure.h"

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
