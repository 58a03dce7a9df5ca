#ifndef GYRE_SERVICES_GATEWAY_AUTHENTICATOR_H_
#define GYRE_SERVICES_GATEWAY_AUTHENTICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/gateway/api_key_authenticator.h"
#include "services/gateway/jwt_authenticator.h"
#include "services/gateway/password_authenticator.h"

namespace gyre::gateway {

// The gateway's credential check: picks the method a request's headers use
// and asks its authenticator.
//
//   X-API-Key: gyk_...                 API key
//   Authorization: Bearer gyk_...      API key
//   Authorization: Bearer eyJ...       JWT (when configured)
//   Authorization: Basic base64(u:p)   HTTP Basic user (when configured)
//
// Every failure is an AuthFailure (auth_failure.h) whose reason the metrics
// count; no message ever contains the credential.
//
// Thread-safety: configured at start through the mutable_* accessors, then
// Authenticate is safe from any number of threads.
class Authenticator {
 public:
  ApiKeyAuthenticator& mutable_api_keys() { return api_keys_; }
  PasswordAuthenticator& mutable_passwords() { return passwords_; }
  void set_jwt(std::unique_ptr<JwtAuthenticator> jwt) { jwt_ = std::move(jwt); }

  // `api_key`: the X-API-Key header; `authorization`: the Authorization
  // header (either may be empty).
  absl::StatusOr<Principal> Authenticate(absl::string_view api_key, absl::string_view authorization,
                                         absl::Time now) const;

  // Whether Authenticate would hash a password (HTTP Basic, not
  // remembered): slow on purpose, so the caller runs it off its I/O thread.
  bool NeedsPasswordHash(absl::string_view api_key, absl::string_view authorization) const;

  // No method has any credential configured: every request is refused.
  bool empty() const { return api_keys_.empty() && passwords_.empty() && jwt_ == nullptr; }

 private:
  ApiKeyAuthenticator api_keys_;
  PasswordAuthenticator passwords_;
  std::unique_ptr<JwtAuthenticator> jwt_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_AUTHENTICATOR_H_
