#ifndef GYRE_LIBS_SECURITY_SERVER_SSL_CONTEXT_H_
#define GYRE_LIBS_SECURITY_SERVER_SSL_CONTEXT_H_

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/security/tls_config.h"

namespace gyre::security {

// The OpenSSL server context of a TLS port that is not gRPC (the gateway's
// HTTPS and WSS), built from TlsConfig's files and rebuilt when they change,
// as NewServerCredentials' certificate provider does for gRPC ports. gRPC's
// FileWatcherCertificateProvider keeps the PEM it reads inside gRPC's core,
// with no API to hand it to OpenSSL, so this is the reloader for the rest.
//
// TLS 1.2 and later only. With ca_file and client_auth "require", clients
// must present a certificate that chains to ca_file.
//
// Thread-safe: Current() is called by every new connection, from any thread.
class ServerSslContext {
 public:
  // Validates `tls` (Validate(as_server=true): the errors name the key and
  // file) and builds the first context. `tls` must turn TLS on.
  static absl::StatusOr<std::unique_ptr<ServerSslContext>> Create(const TlsConfig& tls);

  // The context a new connection handshakes with. At most once per
  // reload_interval the files are read again; when their bytes changed, a new
  // context is built from them and used from then on (connections already
  // open keep theirs). A renewal caught half-written (a key that is not the
  // certificate's) is logged and retried at the next check, the previous
  // context still serving.
  std::shared_ptr<boost::asio::ssl::context> Current();

  // How many contexts were built (1 at start): a test's evidence of reload.
  int generation() const;

 private:
  struct Files {
    std::string cert, key, ca;
    bool operator==(const Files& other) const {
      return cert == other.cert && key == other.key && ca == other.ca;
    }
  };

  explicit ServerSslContext(TlsConfig tls) : tls_(std::move(tls)) {}
  absl::StatusOr<Files> ReadFiles() const;
  absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> Build(const Files& files) const;

  const TlsConfig tls_;
  mutable absl::Mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> current_ ABSL_GUARDED_BY(mu_);
  Files loaded_ ABSL_GUARDED_BY(mu_);
  absl::Time next_check_ ABSL_GUARDED_BY(mu_);
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gyre::security

#endif  // GYRE_LIBS_SECURITY_SERVER_SSL_CONTEXT_H_
