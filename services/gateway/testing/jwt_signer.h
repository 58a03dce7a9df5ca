#ifndef GYRE_SERVICES_GATEWAY_TESTING_JWT_SIGNER_H_
#define GYRE_SERVICES_GATEWAY_TESTING_JWT_SIGNER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gyre::gateway::testing {

// An RSA key pair made for one test run, in the forms a test hands the
// gateway (PEM public key, JWKS members) and keeps for itself (private PEM).
struct RsaKeyPair {
  std::string private_pem;
  std::string public_pem;
  std::string n;  // modulus, base64url
  std::string e;  // exponent, base64url
};

// A fresh RSA key of `bits` bits (OpenSSL).
absl::StatusOr<RsaKeyPair> GenerateRsaKey(int bits = 2048);

// {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", n, e}]}.
std::string JwksOf(absl::string_view kid, const RsaKeyPair& key);

std::string Base64Url(absl::string_view data);

// header.payload (base64url of each JSON text) with no signature part
// filled in: the caller picks the signature (alg "none" tests send "").
std::string UnsignedJwt(absl::string_view header_json, absl::string_view payload_json);

// A compact JWS signed with HMAC-SHA-256 under `secret`; the header is
// taken as given, so a test can lie in it.
std::string SignHs256(absl::string_view header_json, absl::string_view payload_json,
                      absl::string_view secret);

// A compact JWS signed with RSASSA-PKCS1-v1_5 SHA-256 under `private_pem`.
absl::StatusOr<std::string> SignRs256(absl::string_view header_json, absl::string_view payload_json,
                                      absl::string_view private_pem);

}  // namespace gyre::gateway::testing

#endif  // GYRE_SERVICES_GATEWAY_TESTING_JWT_SIGNER_H_
