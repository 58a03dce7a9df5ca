#ifndef GYRE_LIBS_SECURITY_TLS_CONFIG_H_
#define GYRE_LIBS_SECURITY_TLS_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/config/config_schema.h"

namespace gyre::security {

// How one process secures its gRPC traffic, as a server and as a client: the
// same certificate is its identity both ways (as cert-manager issues one per
// workload), and the CA bundle is what it trusts in its peers. Files are
// PEM, mounted as Kubernetes Secrets, and re-read every `reload_interval`,
// so a renewed certificate is served without a restart.
//
// Plaintext stays the default (`gyre dev`, tests): TLS is on for a server
// when `cert_file` is set, for a client when `ca_file` or `cert_file` is.
struct TlsConfig {
  // This process's certificate chain (PEM); with key_file, its identity.
  std::string cert_file;
  // The private key of cert_file (PEM). Never logged.
  std::string key_file;
  // The CA bundle (PEM) peers' certificates are checked against: the
  // server's by a client, clients' by a server when client_auth is require.
  std::string ca_file;
  // "none": any client may connect over TLS; "require": mutual TLS, a
  // client must present a certificate signed by ca_file.
  std::string client_auth = "none";
  // Refuse to start (exit 2) rather than serve or call in plaintext.
  bool require_tls = false;
  // How often the three files are checked for a new version.
  absl::Duration reload_interval = absl::Seconds(30);
  // Prefix of the config keys, so a second TLS port of one process (the
  // gateway's HTTPS, "http_") has its own files and errors name the key
  // the operator set. require_tls is one per process: only the unprefixed
  // settings declare it.
  std::string key_prefix;

  // Declares tls_cert_file, tls_key_file, tls_ca_file, tls_client_auth,
  // require_tls and tls_reload_interval (each after key_prefix; require_tls
  // only without a prefix).
  void Register(config::ConfigSchema* schema);

  bool ServerUsesTls() const { return !cert_file.empty(); }
  bool ClientUsesTls() const { return !ca_file.empty() || !cert_file.empty(); }

  // Checks the settings fit together and the files are usable PEM (the
  // key matches the certificate, the CA bundle parses), so a mistake stops
  // the process at start with the key and file named, not at the first
  // handshake. `as_server`: the settings serve a port (a client needs no
  // certificate of its own, a server does).
  absl::Status Validate(bool as_server) const;
};

}  // namespace gyre::security

#endif  // GYRE_LIBS_SECURITY_TLS_CONFIG_H_
