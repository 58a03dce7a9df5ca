#include "services/gateway/testing/jwt_signer.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace gyre::gateway::testing {

namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string BignumParam(EVP_PKEY* key, const char* name) {
  BIGNUM* value = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &value) != 1) return "";
  std::string bytes(static_cast<size_t>(BN_num_bytes(value)), '\0');
  BN_bn2bin(value, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(value);
  return Base64Url(bytes);
}

}  // namespace

std::string Base64Url(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

absl::StatusOr<RsaKeyPair> GenerateRsaKey(int bits) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_RSA_gen(static_cast<unsigned int>(bits)), EVP_PKEY_free);
  if (key == nullptr) return absl::InternalError("EVP_RSA_gen failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> private_bio(BIO_new(BIO_s_mem()), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> public_bio(BIO_new(BIO_s_mem()), BIO_free);
  if (PEM_write_bio_PrivateKey(private_bio.get(), key.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1 ||
      PEM_write_bio_PUBKEY(public_bio.get(), key.get()) != 1) {
    return absl::InternalError("cannot write the RSA key as PEM");
  }
  return RsaKeyPair{BioText(private_bio.get()), BioText(public_bio.get()),
                    BignumParam(key.get(), OSSL_PKEY_PARAM_RSA_N),
                    BignumParam(key.get(), OSSL_PKEY_PARAM_RSA_E)};
}

std::string JwksOf(absl::string_view kid, const RsaKeyPair& key) {
  return absl::StrCat("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"", kid,
                      "\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"", key.n, "\",\"e\":\"", key.e,
                      "\"}]}");
}

std::string UnsignedJwt(absl::string_view header_json, absl::string_view payload_json) {
  return absl::StrCat(Base64Url(header_json), ".", Base64Url(payload_json));
}

std::string SignHs256(absl::string_view header_json, absl::string_view payload_json,
                      absl::string_view secret) {
  const std::string signed_part = UnsignedJwt(header_json, payload_json);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), digest,
       &length);
  return absl::StrCat(signed_part, ".",
                      Base64Url(absl::string_view(reinterpret_cast<char*>(digest), length)));
}

absl::StatusOr<std::string> SignRs256(absl::string_view header_json, absl::string_view payload_json,
                                      absl::string_view private_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (key == nullptr) return absl::InvalidArgumentError("not a PEM private key");
  const std::string signed_part = UnsignedJwt(header_json, payload_json);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  EVP_MD_CTX_free);
  size_t length = 0;
  if (EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(context.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(signed_part.data()),
                     signed_part.size()) != 1) {
    return absl::InternalError("RS256 signing failed");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(signed_part.data()),
                     signed_part.size()) != 1) {
    return absl::InternalError("RS256 signing failed");
  }
  signature.resize(length);
  return absl::StrCat(signed_part, ".", Base64Url(signature));
}

}  // namespace gyre::gateway::testing
