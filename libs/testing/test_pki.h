#ifndef GYRE_LIBS_TESTING_TEST_PKI_H_
#define GYRE_LIBS_TESTING_TEST_PKI_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gyre::testing {

// A throwaway certificate authority for TLS tests: made fresh by each test
// (nothing checked in that could expire), it issues certificates valid for
// 127.0.0.1 and localhost, including already-expired ones. EC P-256 keys,
// so making one costs milliseconds.
class TestCertificateAuthority {
 public:
  struct Issued {
    std::string cert_file;
    std::string key_file;
  };

  // A self-signed CA named `common_name`, valid from an hour ago for a day.
  static absl::StatusOr<TestCertificateAuthority> Create(const std::string& common_name);

  // Writes the CA's certificate (the trust anchor) to `path`.
  absl::Status WriteCertificate(const std::string& path) const;

  // Issues a certificate for `common_name` (SAN IP:127.0.0.1, DNS:localhost;
  // server and client use) valid from now + `not_before` to now +
  // `not_after` (both may be negative: an expired certificate), and writes
  // it and its key as PEM to `<prefix>.crt` and `<prefix>.key`.
  absl::StatusOr<Issued> Issue(const std::string& prefix, const std::string& common_name,
                               absl::Duration not_before = absl::Hours(-1),
                               absl::Duration not_after = absl::Hours(24)) const;

 private:
  struct KeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  };
  struct CertFree {
    void operator()(X509* cert) const { X509_free(cert); }
  };

  std::unique_ptr<EVP_PKEY, KeyFree> key_;
  std::unique_ptr<X509, CertFree> cert_;
};

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_TEST_PKI_H_
