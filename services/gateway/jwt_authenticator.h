#ifndef GYRE_SERVICES_GATEWAY_JWT_AUTHENTICATOR_H_
#define GYRE_SERVICES_GATEWAY_JWT_AUTHENTICATOR_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/gateway/api_key_authenticator.h"

namespace gyre::gateway {

// Verifies JWT bearer tokens (JWS compact form) signed with HS256 or RS256,
// as an OIDC provider issues them, and maps their claims to a principal.
//
// What is refused, each with an AuthFailure reason the metrics count:
// a malformed token ("malformed"), `alg` other than HS256/RS256 or one no
// key is configured for — "none" included ("alg_not_allowed"), a signature
// that does not verify ("bad_signature"), no RSA key with the token's `kid`
// ("unknown_key"), `exp` past or `nbf` ahead beyond the clock skew
// ("expired", "not_yet_valid"), another `iss` or `aud` ("wrong_issuer",
// "wrong_audience"), no subject, role or tenant claim ("missing_claim").
//
// Algorithm confusion is impossible by construction: HS256 tokens are
// checked only against the configured shared secret and RS256 tokens only
// against RSA public keys, so a public key can never be used as an HMAC
// secret whatever the token's header says.
//
// The JWKS file is read again when it changes (its size, modification time
// or inode differ; looked at, on use, at most once per jwks_recheck), so a
// provider's key rotation needs no restart. A new file that does not load
// leaves the keys as they were (and is logged); a key gone from the file is
// refused from then on.
//
// Thread-safety: built at start (Create), then Authenticate is safe from any
// number of threads.
class JwtAuthenticator {
 public:
  // Largest token accepted.
  static constexpr size_t kMaxTokenBytes = 16 << 10;

  struct Options {
    // Required `iss`; empty accepts any issuer.
    std::string issuer;
    // Required member of `aud` (a string or an array); empty accepts any.
    std::string audience;
    // HS256 shared secret (at least 32 bytes); empty: HS256 refused.
    std::string hs256_secret;
    // RS256 public keys as PEM files (SubjectPublicKeyInfo).
    std::vector<std::string> rs256_public_key_files;
    // RS256 public keys as a JWKS document ({"keys": [{"kty": "RSA", "kid",
    // "n", "e"}, ...]}), the file an OIDC provider publishes at jwks_uri.
    std::string jwks_file;
    // How often, at most, the JWKS file is checked for a change.
    absl::Duration jwks_recheck = absl::Seconds(1);
    // Claims naming the principal, its role (a string, or an array whose
    // highest known role counts) and its tenant.
    std::string subject_claim = "sub";
    std::string role_claim = "role";
    std::string tenant_claim = "tenant";
    // Slack for `exp` and `nbf` against clocks that differ.
    absl::Duration clock_skew = absl::Seconds(60);
  };

  // Loads the keys; InvalidArgument names the file and what is wrong.
  static absl::StatusOr<std::unique_ptr<JwtAuthenticator>> Create(Options options);

  // The principal of `token`, or an AuthFailure saying why not.
  absl::StatusOr<Principal> Authenticate(absl::string_view token, absl::Time now) const;

  // RSA keys loaded (from files and the JWKS as last read).
  size_t rsa_keys() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  };
  struct RsaKey {
    std::string kid;  // empty for a PEM file's key
    std::unique_ptr<EVP_PKEY, PkeyFree> key;
  };

  using KeySet = std::vector<RsaKey>;
  // The JWKS file's identity: a change of any part means a new file.
  struct FileStamp {
    int64_t size = -1;
    int64_t mtime_ns = 0;
    uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
  };

  explicit JwtAuthenticator(Options options) : options_(std::move(options)) {}
  absl::Status LoadPem(const std::string& path);
  static absl::Status LoadJwks(const std::string& path, KeySet* loaded);
  static FileStamp Stamp(const std::string& path);
  // RS256 is accepted: PEM keys or a JWKS file are configured.
  bool HasRsaKeys() const { return !rsa_keys_.empty() || !options_.jwks_file.empty(); }
  // The JWKS keys, read again first when the file changed and jwks_recheck
  // has passed since the last look.
  std::shared_ptr<const KeySet> JwksKeys() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status VerifyRs256(absl::string_view kid, absl::string_view signed_part,
                           absl::string_view signature) const;

  Options options_;
  std::vector<RsaKey> rsa_keys_;  // from PEM files, fixed
  mutable absl::Mutex mu_;
  mutable std::shared_ptr<const KeySet> jwks_keys_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<const KeySet>();
  mutable FileStamp jwks_stamp_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time jwks_checked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_JWT_AUTHENTICATOR_H_
