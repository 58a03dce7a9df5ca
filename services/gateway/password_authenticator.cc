#include "services/gateway/password_authenticator.h"

#include <argon2.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/gateway/auth_failure.h"

namespace gyre::gateway {

namespace {

constexpr uint32_t kTimeCost = 2;
constexpr uint32_t kMemoryCostKiB = 19 * 1024;
constexpr uint32_t kParallelism = 1;
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

}  // namespace

PasswordAuthenticator::PasswordAuthenticator() {
  unsigned char key[32];
  // Without randomness the memo would be keyed predictably; it then stays
  // empty (every request pays Argon2) rather than weak.
  if (RAND_bytes(key, sizeof(key)) == 1) memo_key_.assign(reinterpret_cast<char*>(key), 32);
}

absl::Status PasswordAuthenticator::AddConfigured(absl::string_view entry) {
  // The PHC string has no ':', so the first three ':' split the entry.
  std::vector<absl::string_view> parts = absl::StrSplit(entry, absl::MaxSplits(':', 3));
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(
        "basic_users: an entry is NAME:ROLE:TENANT:ARGON2ID_HASH (gyre-gateway hash-password)");
  }
  User user;
  user.principal.name = std::string(parts[0]);
  if (user.principal.name.empty() || absl::StrContains(user.principal.name, ' ')) {
    return absl::InvalidArgumentError("basic_users: an entry has no name, or a space in it");
  }
  absl::StatusOr<Role> role = ParseRole(parts[1]);
  if (!role.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("basic_users: user \"", user.principal.name, "\": ", role.status().message()));
  }
  user.principal.role = *role;
  user.principal.tenant = parts[2].empty() ? "default" : std::string(parts[2]);
  if (!absl::StartsWith(parts[3], "$argon2id$")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "basic_users: user \"", user.principal.name,
        "\": the last part must be an Argon2id hash \"$argon2id$v=19$...\" (gyre-gateway "
        "hash-password)"));
  }
  user.encoded_hash = std::string(parts[3]);
  users_[user.principal.name] = std::move(user);
  return absl::OkStatus();
}

std::string PasswordAuthenticator::MemoKey(absl::string_view user,
                                           absl::string_view password) const {
  const std::string message = absl::StrCat(user.size(), ":", user, password);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), memo_key_.data(), static_cast<int>(memo_key_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return std::string(reinterpret_cast<char*>(digest), length);
}

bool PasswordAuthenticator::NeedsHash(absl::string_view user, absl::string_view password) const {
  if (password.size() > kMaxPasswordBytes || !users_.contains(user)) return false;
  if (memo_key_.empty()) return true;
  const std::string key = MemoKey(user, password);
  absl::MutexLock lock(&mu_);
  return !verified_.contains(key);
}

absl::StatusOr<Principal> PasswordAuthenticator::Authenticate(absl::string_view user,
                                                              absl::string_view password) const {
  constexpr absl::string_view kRefused = "invalid user name or password";
  if (password.size() > kMaxPasswordBytes) {
    return AuthFailure("wrong_password", absl::StrCat("password longer than kMaxPasswordBytes (",
                                                      kMaxPasswordBytes, " bytes)"));
  }
  auto it = users_.find(user);
  if (it == users_.end()) return AuthFailure("unknown_user", kRefused);
  const bool memo = !memo_key_.empty();
  const std::string key = memo ? MemoKey(user, password) : std::string();
  if (memo) {
    absl::MutexLock lock(&mu_);
    if (verified_.contains(key)) return it->second.principal;
  }
  if (argon2id_verify(it->second.encoded_hash.c_str(), password.data(), password.size()) !=
      ARGON2_OK) {
    return AuthFailure("wrong_password", kRefused);
  }
  if (memo) {
    absl::MutexLock lock(&mu_);
    if (verified_.size() >= kMaxRemembered) verified_.clear();
    verified_.insert(key);
  }
  return it->second.principal;
}

absl::StatusOr<std::string> PasswordAuthenticator::HashPassword(absl::string_view password) {
  if (password.empty() || password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a password must have 1..", kMaxPasswordBytes, " bytes (kMaxPasswordBytes)"));
  }
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof(salt)) != 1) {
    return absl::InternalError("cannot hash the password: OpenSSL's RAND_bytes failed");
  }
  std::string encoded(
      argon2_encodedlen(kTimeCost, kMemoryCostKiB, kParallelism, kSaltBytes, kHashBytes, Argon2_id),
      '\0');
  const int result = argon2id_hash_encoded(kTimeCost, kMemoryCostKiB, kParallelism, password.data(),
                                           password.size(), salt, sizeof(salt), kHashBytes,
                                           encoded.data(), encoded.size());
  if (result != ARGON2_OK) {
    return absl::InternalError(
        absl::StrCat("cannot hash the password: Argon2id failed: ", argon2_error_message(result)));
  }
  encoded.resize(encoded.find('\0'));
  return encoded;
}

}  // namespace gyre::gateway
