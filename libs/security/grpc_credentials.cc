#include "libs/security/grpc_credentials.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/time/time.h"

namespace gyre::security {
namespace {

using ::grpc::experimental::FileWatcherCertificateProvider;

unsigned int RefreshSeconds(const TlsConfig& tls) {
  return static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval)));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> NewServerCredentials(
    const TlsConfig& tls) {
  if (absl::Status status = tls.Validate(/*as_server=*/true); !status.ok()) return status;
  if (!tls.ServerUsesTls()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file, RefreshSeconds(tls));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!tls.ca_file.empty()) options.watch_root_certs();
  options.set_cert_request_type(tls.client_auth == "require"
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> NewChannelCredentials(
    const TlsConfig& tls) {
  if (absl::Status status = tls.Validate(/*as_server=*/false); !status.ok()) return status;
  if (!tls.ClientUsesTls()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  if (!tls.cert_file.empty()) {
    options.set_certificate_provider(std::make_shared<FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.ca_file, RefreshSeconds(tls)));
    options.watch_identity_key_cert_pairs();
  } else {
    options.set_certificate_provider(
        std::make_shared<FileWatcherCertificateProvider>(tls.ca_file, RefreshSeconds(tls)));
  }
  // Without a CA bundle of its own the client trusts the system's roots.
  if (!tls.ca_file.empty()) options.watch_root_certs();
  return grpc::experimental::TlsCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> NewChannel(const std::string& address,
                                                          const TlsConfig& tls,
                                                          const grpc::ChannelArguments& arguments) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      NewChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  return grpc::CreateCustomChannel(address, *credentials, arguments);
}

}  // namespace gyre::security
