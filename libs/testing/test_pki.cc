#include "libs/testing/test_pki.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <atomic>

#include "absl/strings/str_cat.h"

namespace gyre::testing {
namespace {

absl::Status OpenSslError(const std::string& what) {
  char text[256] = {0};
  ERR_error_string_n(ERR_get_error(), text, sizeof(text));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, ": ", text));
}

EVP_PKEY* NewKey() { return EVP_EC_gen("P-256"); }

bool AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  if (extension == nullptr) return false;
  const bool added = X509_add_ext(cert, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  return added;
}

// A certificate for `key` named `common_name`, its validity set; signed
// later by the caller.
X509* NewCertificate(EVP_PKEY* key, const std::string& common_name, absl::Duration not_before,
                     absl::Duration not_after) {
  static std::atomic<long> serial{1};
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert),
                   serial.fetch_add(1) + absl::ToUnixSeconds(absl::Now()));
  X509_gmtime_adj(X509_getm_notBefore(cert), absl::ToInt64Seconds(not_before));
  X509_gmtime_adj(X509_getm_notAfter(cert), absl::ToInt64Seconds(not_after));
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

absl::Status WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  BIO* bio = BIO_new_file(path.c_str(), "w");
  if (bio == nullptr) return OpenSslError(absl::StrCat("open ", path));
  const int written =
      cert != nullptr ? PEM_write_bio_X509(bio, cert)
                      : PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  BIO_free(bio);
  if (written != 1) return OpenSslError(absl::StrCat("write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestCertificateAuthority> TestCertificateAuthority::Create(
    const std::string& common_name) {
  TestCertificateAuthority ca;
  ca.key_.reset(NewKey());
  if (ca.key_ == nullptr) return OpenSslError("CA key");
  ca.cert_.reset(NewCertificate(ca.key_.get(), common_name, absl::Hours(-1), absl::Hours(24)));
  X509_set_issuer_name(ca.cert_.get(), X509_get_subject_name(ca.cert_.get()));
  if (!AddExtension(ca.cert_.get(), ca.cert_.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExtension(ca.cert_.get(), ca.cert_.get(), NID_key_usage,
                    "critical,keyCertSign,cRLSign") ||
      !AddExtension(ca.cert_.get(), ca.cert_.get(), NID_subject_key_identifier, "hash")) {
    return OpenSslError("CA extensions");
  }
  if (X509_sign(ca.cert_.get(), ca.key_.get(), EVP_sha256()) == 0) return OpenSslError("CA sign");
  return ca;
}

absl::Status TestCertificateAuthority::WriteCertificate(const std::string& path) const {
  return WritePem(path, cert_.get(), nullptr);
}

absl::StatusOr<TestCertificateAuthority::Issued> TestCertificateAuthority::Issue(
    const std::string& prefix, const std::string& common_name, absl::Duration not_before,
    absl::Duration not_after) const {
  std::unique_ptr<EVP_PKEY, KeyFree> key(NewKey());
  if (key == nullptr) return OpenSslError("key");
  std::unique_ptr<X509, CertFree> cert(
      NewCertificate(key.get(), common_name, not_before, not_after));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get()));
  if (!AddExtension(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !AddExtension(cert.get(), cert_.get(), NID_key_usage, "critical,digitalSignature") ||
      !AddExtension(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
      !AddExtension(cert.get(), cert_.get(), NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") ||
      !AddExtension(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid")) {
    return OpenSslError("certificate extensions");
  }
  if (X509_sign(cert.get(), key_.get(), EVP_sha256()) == 0) return OpenSslError("sign");
  Issued issued{prefix + ".crt", prefix + ".key"};
  // The key first: a reader that sees the new certificate finds its key.
  if (absl::Status status = WritePem(issued.key_file + ".tmp", nullptr, key.get()); !status.ok()) {
    return status;
  }
  if (absl::Status status = WritePem(issued.cert_file + ".tmp", cert.get(), nullptr);
      !status.ok()) {
    return status;
  }
  if (std::rename((issued.key_file + ".tmp").c_str(), issued.key_file.c_str()) != 0 ||
      std::rename((issued.cert_file + ".tmp").c_str(), issued.cert_file.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename into ", prefix, ".{crt,key}"));
  }
  return issued;
}

}  // namespace gyre::testing
