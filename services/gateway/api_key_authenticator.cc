#include "services/gateway/api_key_authenticator.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gyre::gateway {

namespace {

std::string RawSha256(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", name, "\" (expected viewer, operator or admin)"));
}

void ApiKeyAuthenticator::AddKey(absl::string_view key, Principal principal) {
  if (principal.tenant.empty()) principal.tenant = "default";
  by_hash_[RawSha256(key)] = std::move(principal);
}

absl::Status ApiKeyAuthenticator::AddConfigured(absl::string_view entry) {
  std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
  if (parts.size() != 3 && parts.size() != 4) {
    return absl::InvalidArgumentError(
        "api_keys: an entry is NAME:ROLE:SHA256HEX or NAME:ROLE:TENANT:SHA256HEX");
  }
  Principal principal;
  principal.name = std::string(parts[0]);
  if (principal.name.empty()) return absl::InvalidArgumentError("api_keys: an entry has no name");
  absl::StatusOr<Role> role = ParseRole(parts[1]);
  if (!role.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("api_keys: entry \"", principal.name, "\": ", role.status().message()));
  }
  principal.role = *role;
  principal.tenant = parts.size() == 4 ? std::string(parts[2]) : "default";
  const absl::string_view hex = parts.back();
  std::string raw;
  if (hex.size() != 2 * SHA256_DIGEST_LENGTH || !absl::c_all_of(hex, absl::ascii_isxdigit)) {
    return absl::InvalidArgumentError(absl::StrCat("api_keys: entry \"", principal.name,
                                                   "\": the last part must be the key's SHA-256 as "
                                                   "64 hex digits (printf %s KEY | sha256sum)"));
  }
  raw = absl::HexStringToBytes(hex);
  by_hash_[raw] = std::move(principal);
  return absl::OkStatus();
}

absl::StatusOr<Principal> ApiKeyAuthenticator::Authenticate(absl::string_view key) const {
  // Looked up by hash: the comparison of secrets is a hash-table probe on a
  // digest, which leaks nothing useful about the key through timing.
  auto it = by_hash_.find(RawSha256(key));
  if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown API key");
  return it->second;
}

absl::StatusOr<std::string> ApiKeyAuthenticator::GenerateKey() {
  unsigned char random[32];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    return absl::InternalError("cannot generate an API key: OpenSSL's RAND_bytes failed");
  }
  return absl::StrCat(
      "gyk_", absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<char*>(random), 32)));
}

std::string ApiKeyAuthenticator::HashKey(absl::string_view key) {
  return absl::BytesToHexString(RawSha256(key));
}

}  // namespace gyre::gateway
