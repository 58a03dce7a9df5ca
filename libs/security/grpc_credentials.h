#ifndef GYRE_LIBS_SECURITY_GRPC_CREDENTIALS_H_
#define GYRE_LIBS_SECURITY_GRPC_CREDENTIALS_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/security/tls_config.h"

namespace gyre::security {

// What a gRPC server listens with: TLS from `tls`'s files (re-read every
// reload_interval, so a rotated certificate is served without a restart;
// client certificates required when client_auth is require), or plaintext
// when no certificate is configured. Errors are Validate's.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> NewServerCredentials(const TlsConfig& tls);

// What a client dials with: TLS checking the server against ca_file (and
// presenting cert_file for mutual TLS), or plaintext when neither is set.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> NewChannelCredentials(
    const TlsConfig& tls);

// The one factory of client channels to Gyre services (the CLI, agents, the
// gateway, gyre dev): `arguments` as the caller needs them (message sizes),
// credentials from `tls`. An error (a refused plaintext, an unreadable
// file) names the setting.
absl::StatusOr<std::shared_ptr<grpc::Channel>> NewChannel(
    const std::string& address, const TlsConfig& tls,
    const grpc::ChannelArguments& arguments = grpc::ChannelArguments());

}  // namespace gyre::security

#endif  // GYRE_LIBS_SECURITY_GRPC_CREDENTIALS_H_
