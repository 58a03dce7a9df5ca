#include "services/gateway/jwt_authenticator.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <boost/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/logging/logger.h"
#include "services/gateway/auth_failure.h"

namespace gyre::gateway {

namespace {

constexpr size_t kMinHs256SecretBytes = 32;
constexpr int kMinRsaBits = 2048;

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read \"", path, "\""));
  }
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

boost::json::string_view Key(absl::string_view name) {
  return boost::json::string_view(name.data(), name.size());
}

// base64url without padding, as JWS uses it.
bool Base64UrlDecode(absl::string_view in, std::string* out) {
  return absl::WebSafeBase64Unescape(in, out);
}

absl::StatusOr<boost::json::object> DecodeJsonPart(absl::string_view part, absl::string_view what) {
  std::string json;
  if (!Base64UrlDecode(part, &json)) {
    return AuthFailure("malformed", absl::StrCat("JWT ", what, " is not base64url"));
  }
  boost::json::error_code error;
  boost::json::value value = boost::json::parse(json, error);
  if (error || !value.is_object()) {
    return AuthFailure("malformed", absl::StrCat("JWT ", what, " is not a JSON object"));
  }
  return std::move(value.as_object());
}

std::string StringMember(const boost::json::object& object, absl::string_view name) {
  const boost::json::value* value = object.if_contains(Key(name));
  return value != nullptr && value->is_string() ? std::string(value->as_string()) : std::string();
}

// A NumericDate claim; nullopt when absent, an error when not a number.
absl::StatusOr<std::optional<absl::Time>> TimeClaim(const boost::json::object& claims,
                                                    absl::string_view name) {
  const boost::json::value* value = claims.if_contains(Key(name));
  if (value == nullptr) return std::nullopt;
  // Bounded before any conversion: a double such as 1.8e75 does not fit in
  // int64 (undefined behaviour, found by fuzz/jwt_fuzz), and no real token
  // carries a date before 1970 or after the year 9999.
  constexpr double kMaxNumericDate = 253402300799.0;  // 9999-12-31T23:59:59Z
  double seconds = 0;
  if (value->is_int64()) {
    seconds = static_cast<double>(value->as_int64());
  } else if (value->is_uint64()) {
    seconds = static_cast<double>(value->as_uint64());
  } else if (value->is_double()) {
    seconds = value->as_double();
  } else {
    return AuthFailure("malformed", absl::StrCat("JWT claim \"", name, "\" is not a number"));
  }
  if (!(seconds >= 0 && seconds <= kMaxNumericDate)) {
    return AuthFailure(
        "malformed", absl::StrCat("JWT claim \"", name, "\" is not a date between 1970 and 9999"));
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(seconds));
}

std::unique_ptr<BIGNUM, decltype(&BN_free)> Bignum(absl::string_view base64url) {
  std::string bytes;
  if (!Base64UrlDecode(base64url, &bytes) || bytes.empty()) return {nullptr, BN_free};
  return {BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                    static_cast<int>(bytes.size()), nullptr),
          BN_free};
}

}  // namespace

absl::StatusOr<std::unique_ptr<JwtAuthenticator>> JwtAuthenticator::Create(Options options) {
  if (!options.hs256_secret.empty() && options.hs256_secret.size() < kMinHs256SecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwt_hs256_secret: must have at least ", kMinHs256SecretBytes, " bytes"));
  }
  std::unique_ptr<JwtAuthenticator> jwt(new JwtAuthenticator(std::move(options)));
  for (const std::string& path : jwt->options_.rs256_public_key_files) {
    if (absl::Status status = jwt->LoadPem(path); !status.ok()) return status;
  }
  if (!jwt->options_.jwks_file.empty()) {
    auto keys = std::make_shared<KeySet>();
    const FileStamp stamp = Stamp(jwt->options_.jwks_file);
    if (absl::Status status = LoadJwks(jwt->options_.jwks_file, keys.get()); !status.ok()) {
      return status;
    }
    absl::MutexLock lock(&jwt->mu_);
    jwt->jwks_keys_ = std::move(keys);
    jwt->jwks_stamp_ = stamp;
    jwt->jwks_checked_ = absl::Now();
  }
  return jwt;
}

size_t JwtAuthenticator::rsa_keys() const {
  absl::MutexLock lock(&mu_);
  return rsa_keys_.size() + jwks_keys_->size();
}

JwtAuthenticator::FileStamp JwtAuthenticator::Stamp(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return {};
  return {static_cast<int64_t>(info.st_size),
          static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec,
          static_cast<uint64_t>(info.st_ino)};
}

std::shared_ptr<const JwtAuthenticator::KeySet> JwtAuthenticator::JwksKeys() const {
  absl::MutexLock lock(&mu_);
  if (options_.jwks_file.empty()) return jwks_keys_;
  const absl::Time now = absl::Now();
  if (now - jwks_checked_ < options_.jwks_recheck) return jwks_keys_;
  jwks_checked_ = now;
  // A stat and, rarely, a small file read under the lock: at most once per
  // jwks_recheck, and only RS256 checks wait for it.
  const FileStamp stamp = Stamp(options_.jwks_file);
  if (stamp == jwks_stamp_) return jwks_keys_;
  jwks_stamp_ = stamp;
  auto keys = std::make_shared<KeySet>();
  if (absl::Status status = LoadJwks(options_.jwks_file, keys.get()); !status.ok()) {
    logging::Warn("jwt_jwks_file changed but does not load; keeping the previous keys",
                  {{"error", std::string(status.message())}});
    return jwks_keys_;
  }
  logging::Info("jwt_jwks_file read again",
                {{"file", options_.jwks_file}, {"keys", static_cast<int64_t>(keys->size())}});
  jwks_keys_ = std::move(keys);
  return jwks_keys_;
}

absl::Status JwtAuthenticator::LoadPem(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFile(path, "jwt_public_key_files");
  if (!pem.ok()) return pem.status();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem->data(), pem->size()),
                                                BIO_free);
  RsaKey key{"", std::unique_ptr<EVP_PKEY, PkeyFree>(
                     PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr))};
  if (key.key == nullptr || EVP_PKEY_get_base_id(key.key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jwt_public_key_files: \"", path, "\" is not a PEM RSA public key (BEGIN PUBLIC KEY)"));
  }
  if (EVP_PKEY_get_bits(key.key.get()) < kMinRsaBits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jwt_public_key_files: \"", path, "\": RSA keys need at least ", kMinRsaBits, " bits"));
  }
  rsa_keys_.push_back(std::move(key));
  return absl::OkStatus();
}

absl::Status JwtAuthenticator::LoadJwks(const std::string& path, KeySet* loaded) {
  absl::StatusOr<std::string> text = ReadFile(path, "jwt_jwks_file");
  if (!text.ok()) return text.status();
  boost::json::error_code error;
  boost::json::value doc = boost::json::parse(*text, error);
  const boost::json::value* keys =
      !error && doc.is_object() ? doc.as_object().if_contains("keys") : nullptr;
  if (keys == nullptr || !keys->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwt_jwks_file: \"", path, "\" is not a JWKS ({\"keys\": [...]})"));
  }
  for (const boost::json::value& entry : keys->as_array()) {
    if (!entry.is_object()) continue;
    const boost::json::object& jwk = entry.as_object();
    // Only RSA signing keys: a provider's encryption keys, or symmetric
    // ("oct") keys, are never accepted as RS256 verifiers.
    if (StringMember(jwk, "kty") != "RSA") continue;
    if (const std::string use = StringMember(jwk, "use"); !use.empty() && use != "sig") continue;
    if (const std::string alg = StringMember(jwk, "alg"); !alg.empty() && alg != "RS256") continue;
    const std::string kid = StringMember(jwk, "kid");
    auto n = Bignum(StringMember(jwk, "n"));
    auto e = Bignum(StringMember(jwk, "e"));
    if (n == nullptr || e == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("jwt_jwks_file: \"", path, "\": key \"", kid, "\" has no valid n and e"));
    }
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                          OSSL_PARAM_BLD_free);
    OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get());
    OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get());
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
        OSSL_PARAM_BLD_to_param(build.get()), OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> context(
        EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (params == nullptr || context == nullptr || EVP_PKEY_fromdata_init(context.get()) != 1 ||
        EVP_PKEY_fromdata(context.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("jwt_jwks_file: \"", path, "\": key \"", kid,
                                                     "\" is not a valid RSA public key"));
    }
    RsaKey rsa{kid, std::unique_ptr<EVP_PKEY, PkeyFree>(key)};
    if (EVP_PKEY_get_bits(key) < kMinRsaBits) {
      return absl::InvalidArgumentError(absl::StrCat("jwt_jwks_file: \"", path, "\": key \"", kid,
                                                     "\" has fewer than ", kMinRsaBits, " bits"));
    }
    loaded->push_back(std::move(rsa));
  }
  return absl::OkStatus();
}

absl::Status JwtAuthenticator::VerifyRs256(absl::string_view kid, absl::string_view signed_part,
                                           absl::string_view signature) const {
  bool key_found = false;
  const std::shared_ptr<const KeySet> jwks = JwksKeys();
  for (const KeySet* set : {&rsa_keys_, jwks.get()}) {
    for (const RsaKey& key : *set) {
      // A token naming a kid is checked against that key only; without a kid
      // every key is tried (a provider with one key often omits it).
      if (!kid.empty() && !key.kid.empty() && key.kid != kid) continue;
      key_found = true;
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                      EVP_MD_CTX_free);
      if (context != nullptr &&
          EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha256(), nullptr, key.key.get()) == 1 &&
          EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                           signature.size(),
                           reinterpret_cast<const unsigned char*>(signed_part.data()),
                           signed_part.size()) == 1) {
        return absl::OkStatus();
      }
    }
  }
  if (!key_found) {
    return AuthFailure("unknown_key", absl::StrCat("JWT kid \"", kid, "\" names no known key"));
  }
  return AuthFailure("bad_signature", "JWT signature does not verify");
}

absl::StatusOr<Principal> JwtAuthenticator::Authenticate(absl::string_view token,
                                                         absl::Time now) const {
  if (token.size() > kMaxTokenBytes) {
    return AuthFailure("malformed",
                       absl::StrCat("JWT longer than kMaxTokenBytes (", kMaxTokenBytes, " bytes)"));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) {
    return AuthFailure("malformed", "JWT must have three base64url parts separated by '.'");
  }
  absl::StatusOr<boost::json::object> header = DecodeJsonPart(parts[0], "header");
  if (!header.ok()) return header.status();
  const std::string alg = StringMember(*header, "alg");
  const absl::string_view signed_part(token.data(), parts[0].size() + 1 + parts[1].size());
  std::string signature;
  if (!Base64UrlDecode(parts[2], &signature)) {
    return AuthFailure("malformed", "JWT signature is not base64url");
  }
  if (alg == "HS256" && !options_.hs256_secret.empty()) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), options_.hs256_secret.data(), static_cast<int>(options_.hs256_secret.size()),
         reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), digest,
         &length);
    if (signature.size() != length || CRYPTO_memcmp(signature.data(), digest, length) != 0) {
      return AuthFailure("bad_signature", "JWT signature does not verify");
    }
  } else if (alg == "RS256" && HasRsaKeys()) {
    if (absl::Status status = VerifyRs256(StringMember(*header, "kid"), signed_part, signature);
        !status.ok()) {
      return status;
    }
  } else {
    return AuthFailure(
        "alg_not_allowed",
        absl::StrCat("JWT alg \"", alg.substr(0, 16), "\" is not accepted here (configured: ",
                     options_.hs256_secret.empty() ? "" : "HS256 ", HasRsaKeys() ? "RS256" : "",
                     ")"));
  }

  // Only a verified token's claims are read.
  absl::StatusOr<boost::json::object> claims = DecodeJsonPart(parts[1], "payload");
  if (!claims.ok()) return claims.status();
  absl::StatusOr<std::optional<absl::Time>> expires = TimeClaim(*claims, "exp");
  if (!expires.ok()) return expires.status();
  if (!expires->has_value()) return AuthFailure("missing_claim", "JWT has no \"exp\"");
  if (**expires + options_.clock_skew <= now) return AuthFailure("expired", "JWT has expired");
  absl::StatusOr<std::optional<absl::Time>> not_before = TimeClaim(*claims, "nbf");
  if (!not_before.ok()) return not_before.status();
  if (not_before->has_value() && **not_before - options_.clock_skew > now) {
    return AuthFailure("not_yet_valid", "JWT is not valid yet (nbf)");
  }
  if (!options_.issuer.empty() && StringMember(*claims, "iss") != options_.issuer) {
    return AuthFailure("wrong_issuer", "JWT was issued by another issuer");
  }
  if (!options_.audience.empty()) {
    bool ours = false;
    if (const boost::json::value* aud = claims->if_contains("aud"); aud != nullptr) {
      if (aud->is_string()) ours = aud->as_string() == options_.audience;
      if (aud->is_array()) {
        for (const boost::json::value& one : aud->as_array()) {
          ours = ours || (one.is_string() && one.as_string() == options_.audience);
        }
      }
    }
    if (!ours) return AuthFailure("wrong_audience", "JWT is meant for another audience");
  }

  Principal principal;
  principal.name = StringMember(*claims, options_.subject_claim);
  principal.tenant = StringMember(*claims, options_.tenant_claim);
  if (principal.name.empty() || principal.tenant.empty()) {
    return AuthFailure("missing_claim",
                       absl::StrCat("JWT needs the claims \"", options_.subject_claim, "\" and \"",
                                    options_.tenant_claim, "\""));
  }
  bool has_role = false;
  auto consider = [&](const boost::json::value& value) {
    if (!value.is_string()) return;
    absl::StatusOr<Role> role = ParseRole(std::string(value.as_string()));
    if (role.ok() && (!has_role || *role > principal.role)) principal.role = *role;
    has_role = has_role || role.ok();
  };
  if (const boost::json::value* role = claims->if_contains(options_.role_claim); role != nullptr) {
    if (role->is_array()) {
      for (const boost::json::value& one : role->as_array()) consider(one);
    } else {
      consider(*role);
    }
  }
  if (!has_role) {
    return AuthFailure("missing_claim",
                       absl::StrCat("JWT claim \"", options_.role_claim,
                                    "\" names no role (viewer, operator or admin)"));
  }
  return principal;
}

}  // namespace gyre::gateway
