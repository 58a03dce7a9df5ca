#ifndef GYRE_SERVICES_GATEWAY_PASSWORD_AUTHENTICATOR_H_
#define GYRE_SERVICES_GATEWAY_PASSWORD_AUTHENTICATOR_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/gateway/api_key_authenticator.h"

namespace gyre::gateway {

// HTTP Basic users with Argon2id-hashed passwords (libargon2). Users are
// configured as "NAME:ROLE:TENANT:$argon2id$v=19$m=...,t=...,p=...$SALT$HASH"
// (the PHC string `gyre-gateway hash-password` prints); passwords are never
// kept.
//
// Argon2id is slow and memory-hard on purpose (tens of milliseconds), too
// slow for every request of a keep-alive client: a successful check is
// remembered as a keyed digest (HMAC-SHA-256 under a random per-process key)
// of user and password, so a repeat costs one HMAC. Failures are never
// remembered, and the memo holds at most kMaxRemembered entries.
//
// Thread-safety: Add* at start; Authenticate from any number of threads.
class PasswordAuthenticator {
 public:
  static constexpr size_t kMaxRemembered = 4096;
  // Longest user name and password accepted (both are hashed; longer input
  // would only cost CPU).
  static constexpr size_t kMaxPasswordBytes = 1024;

  PasswordAuthenticator();

  // Adds a configured user; InvalidArgument names the entry and the part
  // that is wrong (never echoing the hash).
  absl::Status AddConfigured(absl::string_view entry);

  // The principal of `user` when `password` is theirs; an AuthFailure
  // ("unknown_user" or "wrong_password", both answered the same way to the
  // client) otherwise.
  absl::StatusOr<Principal> Authenticate(absl::string_view user, absl::string_view password) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether Authenticate(user, password) would run Argon2id: a known user
  // whose password has not passed a check recently. The gateway runs those
  // on its password workers, off the I/O threads; the rest (a memo hit, an
  // unknown user, an over-long password) cost no hash.
  bool NeedsHash(absl::string_view user, absl::string_view password) const ABSL_LOCKS_EXCLUDED(mu_);

  bool empty() const { return users_.empty(); }

  // The Argon2id PHC string of `password` with a fresh random salt
  // (t=2, m=19 MiB, p=1: the OWASP recommendation).
  static absl::StatusOr<std::string> HashPassword(absl::string_view password);

 private:
  struct User {
    Principal principal;
    std::string encoded_hash;  // the PHC string
  };
  std::string MemoKey(absl::string_view user, absl::string_view password) const;

  absl::flat_hash_map<std::string, User> users_;
  std::string memo_key_;  // random, never leaves the process
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_set<std::string> verified_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_PASSWORD_AUTHENTICATOR_H_
