#include "services/gateway/jwt_authenticator.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/gateway/auth_failure.h"
#include "services/gateway/testing/jwt_signer.h"

namespace gyre::gateway {
namespace {

using testing::SignHs256;
using testing::SignRs256;

constexpr char kSecret[] = "a-shared-secret-of-at-least-32-bytes!";
constexpr char kIssuer[] = "https://idp.example";
constexpr char kAudience[] = "gyre";

std::string WriteFile(const std::string& name, const std::string& content) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path) << content;
  return path;
}

class JwtAuthenticatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_ = new testing::RsaKeyPair(*testing::GenerateRsaKey());
    other_key_ = new testing::RsaKeyPair(*testing::GenerateRsaKey());
  }
  void SetUp() override {
    JwtAuthenticator::Options options;
    options.issuer = kIssuer;
    options.audience = kAudience;
    options.hs256_secret = kSecret;
    options.jwks_file = WriteFile("jwks.json", testing::JwksOf("k1", *key_));
    auto jwt = JwtAuthenticator::Create(options);
    ASSERT_TRUE(jwt.ok()) << jwt.status();
    jwt_ = *std::move(jwt);
    ASSERT_EQ(jwt_->rsa_keys(), 1u);
  }

  // Claims valid now unless overridden by `extra` (JSON members, which win
  // because boost::json keeps the last duplicate).
  static std::string Claims(const std::string& extra = "") {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    return absl::StrCat("{\"sub\":\"ann\",\"role\":\"operator\",\"tenant\":\"blue\",\"iss\":\"",
                        kIssuer, "\",\"aud\":\"", kAudience, "\",\"exp\":", now + 300,
                        ",\"nbf\":", now - 10, extra, "}");
  }
  // The reason `token` is refused ("" when it is accepted).
  std::string Refusal(const std::string& token) const {
    absl::StatusOr<Principal> principal = jwt_->Authenticate(token, absl::Now());
    if (principal.ok()) return "";
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
    return AuthFailureReason(principal.status());
  }

  static testing::RsaKeyPair* key_;
  static testing::RsaKeyPair* other_key_;
  std::unique_ptr<JwtAuthenticator> jwt_;
};
testing::RsaKeyPair* JwtAuthenticatorTest::key_ = nullptr;
testing::RsaKeyPair* JwtAuthenticatorTest::other_key_ = nullptr;

constexpr char kHs256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
constexpr char kRs256[] = "{\"alg\":\"RS256\",\"kid\":\"k1\"}";

TEST_F(JwtAuthenticatorTest, AcceptsHs256AndRs256WithTheirClaims) {
  absl::StatusOr<Principal> hs =
      jwt_->Authenticate(SignHs256(kHs256, Claims(), kSecret), absl::Now());
  ASSERT_TRUE(hs.ok()) << hs.status();
  EXPECT_EQ(hs->name, "ann");
  EXPECT_EQ(hs->role, Role::kOperator);
  EXPECT_EQ(hs->tenant, "blue");
  absl::StatusOr<Principal> rs = jwt_->Authenticate(
      *SignRs256(kRs256, Claims(",\"role\":[\"viewer\",\"admin\",\"x\"]"), key_->private_pem),
      absl::Now());
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ(rs->role, Role::kAdmin) << "the highest role of an array counts";
}

TEST_F(JwtAuthenticatorTest, ChecksExpiryAndNotBeforeWithClockSkew) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(absl::StrCat(",\"exp\":", now - 120)), kSecret)),
            "expired");
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(absl::StrCat(",\"exp\":", now - 20)), kSecret)), "")
      << "within the 60 s skew";
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(absl::StrCat(",\"nbf\":", now + 600)), kSecret)),
            "not_yet_valid");
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(absl::StrCat(",\"nbf\":", now + 20)), kSecret)), "");
  // Dates beyond int64 or before 1970 are malformed, not undefined behaviour
  // (fuzz/jwt_fuzz found 1.8e75).
  for (const char* date : {"1.79999e+75", "-1", "18446744073709551615", "1e300", "-1e300"}) {
    EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(absl::StrCat(",\"exp\":", date)), kSecret)),
              "malformed")
        << date;
    EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(absl::StrCat(",\"nbf\":", date)), kSecret)),
              "malformed")
        << date;
  }
  // exp is required: a token that never expires is refused.
  EXPECT_EQ(
      Refusal(SignHs256(kHs256, "{\"sub\":\"a\",\"role\":\"admin\",\"tenant\":\"t\"}", kSecret)),
      "missing_claim");
}

TEST_F(JwtAuthenticatorTest, RefusesForgedTokens) {
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(), "another-secret-of-at-least-32-bytes")),
            "bad_signature");
  // A valid signature over other claims: the payload was swapped.
  const std::string real = SignHs256(kHs256, Claims(), kSecret);
  const std::string swapped = absl::StrCat(
      testing::UnsignedJwt(kHs256, Claims(",\"role\":\"admin\"")), real.substr(real.rfind('.')));
  EXPECT_EQ(Refusal(swapped), "bad_signature");
  EXPECT_EQ(Refusal(*SignRs256(kRs256, Claims(), other_key_->private_pem)), "bad_signature");
  EXPECT_EQ(Refusal(*SignRs256("{\"alg\":\"RS256\",\"kid\":\"k9\"}", Claims(), key_->private_pem)),
            "unknown_key");
  EXPECT_EQ(Refusal("not-a-jwt"), "malformed");
  EXPECT_EQ(Refusal("e30.e30.%%%"), "malformed");
}

TEST_F(JwtAuthenticatorTest, RefusesOtherAudiencesAndIssuers) {
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(",\"aud\":\"billing\""), kSecret)), "wrong_audience");
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(",\"aud\":[\"billing\",\"gyre\"]"), kSecret)), "");
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(",\"iss\":\"https://evil.example\""), kSecret)),
            "wrong_issuer");
  EXPECT_EQ(Refusal(SignHs256(kHs256, Claims(",\"tenant\":\"\""), kSecret)), "missing_claim");
}

TEST_F(JwtAuthenticatorTest, RefusesAlgNone) {
  for (const char* alg : {"none", "None", "NONE", ""}) {
    const std::string header = absl::StrCat("{\"alg\":\"", alg, "\"}");
    EXPECT_EQ(Refusal(testing::UnsignedJwt(header, Claims()) + "."), "alg_not_allowed") << alg;
  }
}

TEST_F(JwtAuthenticatorTest, RefusesAnRsaPublicKeyUsedAsAnHmacSecret) {
  // The classic confusion: the attacker knows the public key and signs an
  // HS256 token with its PEM text as the HMAC secret.
  const std::string confused = SignHs256(kHs256, Claims(), key_->public_pem);
  EXPECT_EQ(Refusal(confused), "bad_signature");
  // And with no HS256 secret configured at all, HS256 is not accepted.
  JwtAuthenticator::Options rs_only;
  rs_only.rs256_public_key_files = {WriteFile("k1.pem", key_->public_pem)};
  auto jwt = JwtAuthenticator::Create(rs_only);
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  absl::StatusOr<Principal> principal = (*jwt)->Authenticate(confused, absl::Now());
  EXPECT_EQ(AuthFailureReason(principal.status()), "alg_not_allowed");
  EXPECT_TRUE(
      (*jwt)->Authenticate(*SignRs256(kRs256, Claims(), key_->private_pem), absl::Now()).ok());
}

// A provider rotates its keys: the JWKS file is replaced; the next check
// (jwks_recheck 0 here, 1 s by default) reads it again, so the new key is
// accepted and the removed one refused, without a restart. A file that does
// not load keeps the keys as they were.
TEST_F(JwtAuthenticatorTest, ReadsTheJwksFileAgainWhenItIsRotated) {
  JwtAuthenticator::Options options;
  options.issuer = kIssuer;
  options.audience = kAudience;
  options.jwks_recheck = absl::ZeroDuration();
  options.jwks_file = WriteFile("rotating.json", testing::JwksOf("k1", *key_));
  auto created = JwtAuthenticator::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  jwt_ = *std::move(created);
  const std::string old_token = *SignRs256(kRs256, Claims(), key_->private_pem);
  const std::string new_token =
      *SignRs256("{\"alg\":\"RS256\",\"kid\":\"k2\"}", Claims(), other_key_->private_pem);
  EXPECT_EQ(Refusal(old_token), "");
  EXPECT_EQ(Refusal(new_token), "unknown_key");

  // Rotated as providers do: the new file written aside, renamed over.
  const std::string next = WriteFile("rotating.json.new", testing::JwksOf("k2", *other_key_));
  ASSERT_EQ(std::rename(next.c_str(), options.jwks_file.c_str()), 0);
  EXPECT_EQ(Refusal(new_token), "");
  EXPECT_EQ(Refusal(old_token), "unknown_key");

  // A broken rotation keeps the last good keys.
  const std::string broken = WriteFile("rotating.json.bad", "{\"not\": \"a jwks\"}");
  ASSERT_EQ(std::rename(broken.c_str(), options.jwks_file.c_str()), 0);
  EXPECT_EQ(Refusal(new_token), "");
  EXPECT_EQ(jwt_->rsa_keys(), 1u);
}

TEST_F(JwtAuthenticatorTest, RefusesWeakOrUnreadableKeysAtStart) {
  JwtAuthenticator::Options options;
  options.hs256_secret = "short";
  EXPECT_FALSE(JwtAuthenticator::Create(options).ok());
  options = {};
  options.jwks_file = WriteFile("bad.json", "{\"no\":1}");
  EXPECT_FALSE(JwtAuthenticator::Create(options).ok());
  options = {};
  options.rs256_public_key_files = {"/nonexistent/key.pem"};
  EXPECT_FALSE(JwtAuthenticator::Create(options).ok());
}

}  // namespace
}  // namespace gyre::gateway
