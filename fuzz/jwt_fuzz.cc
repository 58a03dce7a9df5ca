// The gateway's JWT verification (JwtAuthenticator::Authenticate) on
// arbitrary bytes (issue 23). The first byte chooses: even, the rest is the
// token as a client sends it (header, payload and signature parsing, alg
// confusion, sizes); odd, the rest is "header JSON\npayload JSON", signed
// here with the verifier's HS256 secret so that the claim checks behind the
// signature (exp, nbf, iss, aud, role, tenant, their types) are fuzzed too.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "services/gateway/jwt_authenticator.h"
#include "services/gateway/testing/jwt_signer.h"

namespace {

constexpr char kSecret[] = "jwt-fuzz-hs256-secret-of-at-least-32-bytes";

const gyre::gateway::JwtAuthenticator& Verifier() {
  static const gyre::gateway::JwtAuthenticator* verifier = [] {
    gyre::gateway::JwtAuthenticator::Options options;
    options.hs256_secret = kSecret;
    options.issuer = "https://idp.test";
    options.audience = "gyre";
    auto created = gyre::gateway::JwtAuthenticator::Create(options);
    if (!created.ok()) __builtin_trap();
    return created->release();
  }();
  return *verifier;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  // A fixed time: the seeds' exp and nbf are around 1,800,000,000.
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  if ((data[0] & 1) == 0) {
    (void)Verifier().Authenticate(rest, now);
    return 0;
  }
  const size_t newline = rest.find('\n');
  const std::string header = rest.substr(0, newline);
  const std::string payload = newline == std::string::npos ? "" : rest.substr(newline + 1);
  (void)Verifier().Authenticate(gyre::gateway::testing::SignHs256(header, payload, kSecret), now);
  return 0;
}
