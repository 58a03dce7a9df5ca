#ifndef GYRE_SERVICES_GATEWAY_API_KEY_AUTHENTICATOR_H_
#define GYRE_SERVICES_GATEWAY_API_KEY_AUTHENTICATOR_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::gateway {

// What a principal may do; each role includes the ones below it.
enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };

// "viewer", "operator", "admin".
absl::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(absl::string_view name);

// Who made a request, once authenticated.
struct Principal {
  std::string name;  // e.g. "ci" or "dev"; never a secret
  Role role = Role::kViewer;
  std::string tenant;  // "default" unless configured
};

// Checks API keys ("gyk_" + random) against stored SHA-256 hashes: the keys
// themselves are never kept, so a dump of the configuration or memory does
// not reveal them. A key is high-entropy, so an unsalted fast hash is the
// right tool (a password needs Argon2; a key does not).
//
// Thread-safety: built at start (Add*), then only read (Authenticate), which
// is safe from any number of threads.
class ApiKeyAuthenticator {
 public:
  // Adds a key given in clear (the dev key): only its hash is kept.
  void AddKey(absl::string_view key, Principal principal);
  // Adds a configured entry "NAME:ROLE:SHA256HEX" or
  // "NAME:ROLE:TENANT:SHA256HEX" (SHA-256 of the key, 64 hex digits).
  // InvalidArgument says which part is wrong (never echoing the hash).
  absl::Status AddConfigured(absl::string_view entry);

  // The principal of `key`; Unauthenticated when it is unknown.
  absl::StatusOr<Principal> Authenticate(absl::string_view key) const;

  bool empty() const { return by_hash_.empty(); }

  // A new random key, "gyk_" + 43 base64url characters (256 bits).
  static absl::StatusOr<std::string> GenerateKey();
  // Lower-case hex SHA-256 of `key`, the form configured entries carry.
  static std::string HashKey(absl::string_view key);

 private:
  absl::flat_hash_map<std::string, Principal> by_hash_;  // raw 32-byte digest -> principal
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_API_KEY_AUTHENTICATOR_H_
