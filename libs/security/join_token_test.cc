#include "libs/security/join_token.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gyre::security {
namespace {

TEST(JoinTokenVerifierTest, AcceptsEveryConfiguredTokenForRotation) {
  auto verifier = JoinTokenVerifier::FromHashes({HashJoinToken("old"), HashJoinToken("new")});
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_TRUE(verifier->Check("old").ok());
  EXPECT_TRUE(verifier->Check("new").ok());
}

TEST(JoinTokenVerifierTest, RefusesMissingAndWrongTokensWithoutEchoingThem) {
  auto verifier = JoinTokenVerifier::FromHashes({HashJoinToken("s3cret-token")});
  ASSERT_TRUE(verifier.ok());
  EXPECT_EQ(verifier->Check("").code(), absl::StatusCode::kUnauthenticated);
  const absl::Status wrong = verifier->Check("guess-token");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(absl::StrContains(wrong.message(), "guess-token"));
  EXPECT_EQ(verifier->Check(std::string(kMaxJoinTokenBytes + 1, 'x')).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(JoinTokenVerifierTest, NoHashesLeavesRegistrationOpen) {
  auto verifier = JoinTokenVerifier::FromHashes({});
  ASSERT_TRUE(verifier.ok());
  EXPECT_TRUE(verifier->open());
  EXPECT_TRUE(verifier->Check("").ok());
}

TEST(JoinTokenVerifierTest, NamesTheEntryThatIsNotAHash) {
  auto verifier = JoinTokenVerifier::FromHashes({HashJoinToken("a"), "the-token-itself"});
  ASSERT_FALSE(verifier.ok());
  EXPECT_TRUE(absl::StrContains(verifier.status().message(), "agent_join_token_hashes[1]"))
      << verifier.status();
  EXPECT_FALSE(absl::StrContains(verifier.status().message(), "the-token-itself"));
}

TEST(JoinTokenVerifierTest, HashIsSha256Hex) {
  // echo -n abc | sha256sum
  EXPECT_EQ(HashJoinToken("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace gyre::security
