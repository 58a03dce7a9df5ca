#include "libs/security/join_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gyre::security {
namespace {

constexpr absl::string_view kPrefix = "sha256:";

std::array<unsigned char, 32> Digest(absl::string_view token) {
  std::array<unsigned char, 32> digest;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  return digest;
}

}  // namespace

std::string HashJoinToken(absl::string_view token) {
  const std::array<unsigned char, 32> digest = Digest(token);
  return absl::StrCat(kPrefix, absl::BytesToHexString(absl::string_view(
                                   reinterpret_cast<const char*>(digest.data()), digest.size())));
}

absl::StatusOr<JoinTokenVerifier> JoinTokenVerifier::FromHashes(
    const std::vector<std::string>& hashes) {
  JoinTokenVerifier verifier;
  for (size_t i = 0; i < hashes.size(); ++i) {
    absl::string_view hex = absl::StripAsciiWhitespace(hashes[i]);
    const bool prefixed = absl::ConsumePrefix(&hex, kPrefix);
    const bool is_hex = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
                          return absl::ascii_isxdigit(static_cast<unsigned char>(c));
                        });
    if (!prefixed || !is_hex) {
      return absl::InvalidArgumentError(absl::StrCat(
          "agent_join_token_hashes[", i,
          "]: not a token hash (expected sha256: and 64 hex digits, as `gyre hash-token` prints)"));
    }
    const std::string bytes = absl::HexStringToBytes(hex);
    std::array<unsigned char, 32> digest;
    std::copy(bytes.begin(), bytes.end(), digest.begin());
    verifier.digests_.push_back(digest);
  }
  return verifier;
}

absl::Status JoinTokenVerifier::Check(absl::string_view token) const {
  if (open()) return absl::OkStatus();
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "agent registration refused: no join token (set the agent's join_token, "
        "join_token_file or GYRE_JOIN_TOKEN)");
  }
  if (token.size() <= kMaxJoinTokenBytes) {
    const std::array<unsigned char, 32> digest = Digest(token);
    for (const std::array<unsigned char, 32>& accepted : digests_) {
      // Constant time: how much of a guess matched must not show in timing.
      if (CRYPTO_memcmp(digest.data(), accepted.data(), digest.size()) == 0) {
        return absl::OkStatus();
      }
    }
  }
  return absl::PermissionDeniedError(
      "agent registration refused: the join token is not one of agent_join_token_hashes");
}

}  // namespace gyre::security
