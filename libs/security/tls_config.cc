#include "libs/security/tls_config.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace gyre::security {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

absl::StatusOr<std::unique_ptr<BIO, BioFree>> OpenPem(absl::string_view key,
                                                      const std::string& path) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(key, " ", path, ": cannot be read (missing, or not readable by this user)"));
  }
  return bio;
}

// The first certificate of a PEM file; an error names the key and file.
absl::StatusOr<std::unique_ptr<X509, X509Free>> ReadCertificate(absl::string_view key,
                                                                const std::string& path) {
  absl::StatusOr<std::unique_ptr<BIO, BioFree>> bio = OpenPem(key, path);
  if (!bio.ok()) return bio.status();
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " ", path, ": holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return cert;
}

absl::Status CheckKeyMatches(const std::string& prefix, const std::string& key_file, X509* cert) {
  absl::StatusOr<std::unique_ptr<BIO, BioFree>> bio =
      OpenPem(absl::StrCat(prefix, "tls_key_file"), key_file);
  if (!bio.ok()) return bio.status();
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "tls_key_file ", key_file, ": holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(prefix, "tls_key_file ", key_file,
                                                   ": is not the key of the certificate in ",
                                                   prefix, "tls_cert_file"));
  }
  return absl::OkStatus();
}

}  // namespace

void TlsConfig::Register(config::ConfigSchema* schema) {
  const std::string& p = key_prefix;
  schema->AddString(p + "tls_cert_file", &cert_file,
                    "this process's TLS certificate chain (PEM); setting it turns TLS on");
  schema->AddString(p + "tls_key_file", &key_file,
                    absl::StrCat("the private key of ", p, "tls_cert_file (PEM)"));
  schema->AddString(p + "tls_ca_file", &ca_file,
                    "CA bundle (PEM) that peers' certificates must chain to");
  schema->AddChoice(p + "tls_client_auth", &client_auth, {"none", "require"},
                    absl::StrCat("require: mutual TLS, clients must present a certificate "
                                 "signed by ",
                                 p, "tls_ca_file"));
  if (p.empty()) {
    schema->AddBool("require_tls", &require_tls,
                    "refuse to start rather than serve or connect in plaintext");
  }
  schema->AddDuration(p + "tls_reload_interval", &reload_interval,
                      "how often the TLS files are checked for a renewed version");
}

absl::Status TlsConfig::Validate(bool as_server) const {
  const std::string& p = key_prefix;
  const bool uses_tls = as_server ? ServerUsesTls() : ClientUsesTls();
  if (require_tls && !uses_tls) {
    return absl::FailedPreconditionError(
        as_server
            ? absl::StrCat("require_tls is set but ", p, "tls_cert_file is empty: plaintext ",
                           p.empty() ? "gRPC" : "HTTP", " is refused; set ", p, "tls_cert_file, ",
                           p, "tls_key_file (and ", p, "tls_ca_file for mutual TLS)")
            : absl::StrCat("require_tls is set but neither ", p, "tls_ca_file nor ", p,
                           "tls_cert_file is: a plaintext connection is refused; set ", p,
                           "tls_ca_file to the CA of the server"));
  }
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, "tls_cert_file and ", p,
                     "tls_key_file: set both (a certificate and its key) or neither"));
  }
  if (as_server && client_auth == "require" && (!ServerUsesTls() || ca_file.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        p, "tls_client_auth is require: ", p, "tls_cert_file, ", p, "tls_key_file and ", p,
        "tls_ca_file (the CA that signs client certificates) must all be set"));
  }
  if (reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(p, "tls_reload_interval: must be at least 1s"));
  }
  if (!cert_file.empty()) {
    absl::StatusOr<std::unique_ptr<X509, X509Free>> cert =
        ReadCertificate(absl::StrCat(p, "tls_cert_file"), cert_file);
    if (!cert.ok()) return cert.status();
    if (absl::Status status = CheckKeyMatches(p, key_file, cert->get()); !status.ok()) {
      return status;
    }
  }
  if (!ca_file.empty()) {
    if (absl::Status status = ReadCertificate(absl::StrCat(p, "tls_ca_file"), ca_file).status();
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace gyre::security
