#include "services/gateway/authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "services/gateway/auth_failure.h"

namespace gyre::gateway {
namespace {

// "user:password" of an "Authorization: Basic ..." header; false when it is
// not valid base64 of that or longer than a password may be.
bool DecodeBasic(absl::string_view authorization, std::string* decoded) {
  const absl::string_view encoded = absl::StripAsciiWhitespace(authorization.substr(6));
  return encoded.size() <= 4 * PasswordAuthenticator::kMaxPasswordBytes &&
         absl::Base64Unescape(encoded, decoded) && absl::StrContains(*decoded, ':');
}

}  // namespace

bool Authenticator::NeedsPasswordHash(absl::string_view api_key,
                                      absl::string_view authorization) const {
  if (!api_key.empty() || passwords_.empty() ||
      !absl::StartsWithIgnoreCase(authorization, "basic ")) {
    return false;
  }
  std::string decoded;
  if (!DecodeBasic(authorization, &decoded)) return false;
  const size_t colon = decoded.find(':');
  return passwords_.NeedsHash(absl::string_view(decoded).substr(0, colon),
                              absl::string_view(decoded).substr(colon + 1));
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view api_key,
                                                      absl::string_view authorization,
                                                      absl::Time now) const {
  if (api_key.empty() && !authorization.empty()) {
    if (absl::StartsWithIgnoreCase(authorization, "basic ")) {
      if (passwords_.empty()) {
        return AuthFailure("unsupported_scheme",
                           "HTTP Basic is not enabled on this gateway (no basic_users)");
      }
      std::string decoded;
      if (!DecodeBasic(authorization, &decoded)) {
        return AuthFailure("malformed", "Authorization: Basic needs base64 of \"user:password\"");
      }
      const size_t colon = decoded.find(':');
      return passwords_.Authenticate(absl::string_view(decoded).substr(0, colon),
                                     absl::string_view(decoded).substr(colon + 1));
    }
    if (!absl::StartsWithIgnoreCase(authorization, "bearer ")) {
      return AuthFailure("unsupported_scheme",
                         "unsupported Authorization scheme; send \"Authorization: Bearer ...\", "
                         "\"Authorization: Basic ...\" or X-API-Key");
    }
    const absl::string_view token = absl::StripAsciiWhitespace(authorization.substr(7));
    if (jwt_ != nullptr && !absl::StartsWith(token, "gyk_")) {
      return jwt_->Authenticate(token, now);
    }
    api_key = token;
  }
  if (api_key.empty()) {
    return AuthFailure("missing",
                       "missing credentials: send an API key as X-API-Key or \"Authorization: "
                       "Bearer gyk_...\", a JWT as \"Authorization: Bearer ...\", or HTTP Basic");
  }
  // The key itself never appears in the answer or a log.
  absl::StatusOr<Principal> principal = api_keys_.Authenticate(api_key);
  if (!principal.ok()) return AuthFailure("invalid", "invalid API key");
  return principal;
}

}  // namespace gyre::gateway
