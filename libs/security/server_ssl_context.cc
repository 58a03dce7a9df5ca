#include "libs/security/server_ssl_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fstream>
#include <sstream>

#include <boost/asio/buffer.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/logging/logger.h"

namespace gyre::security {
namespace {

namespace ssl = boost::asio::ssl;

absl::StatusOr<std::string> ReadFile(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " ", path, ": cannot be read (missing, or not readable by this user)"));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// PEM files are a few KiB; past this a path names the wrong file.
constexpr size_t kMaxPemBytes = 1 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<ServerSslContext>> ServerSslContext::Create(const TlsConfig& tls) {
  if (absl::Status status = tls.Validate(/*as_server=*/true); !status.ok()) return status;
  if (!tls.ServerUsesTls()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tls.key_prefix, "tls_cert_file: empty, so this port serves no TLS"));
  }
  std::unique_ptr<ServerSslContext> context(new ServerSslContext(tls));
  absl::StatusOr<Files> files = context->ReadFiles();
  if (!files.ok()) return files.status();
  absl::StatusOr<std::shared_ptr<ssl::context>> built = context->Build(*files);
  if (!built.ok()) return built.status();
  absl::MutexLock lock(&context->mu_);
  context->current_ = *std::move(built);
  context->loaded_ = *std::move(files);
  context->next_check_ = absl::Now() + tls.reload_interval;
  context->generation_ = 1;
  return context;
}

absl::StatusOr<ServerSslContext::Files> ServerSslContext::ReadFiles() const {
  const std::string& p = tls_.key_prefix;
  Files files;
  absl::StatusOr<std::string> cert = ReadFile(p + "tls_cert_file", tls_.cert_file);
  if (!cert.ok()) return cert.status();
  files.cert = *std::move(cert);
  absl::StatusOr<std::string> key = ReadFile(p + "tls_key_file", tls_.key_file);
  if (!key.ok()) return key.status();
  files.key = *std::move(key);
  if (!tls_.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadFile(p + "tls_ca_file", tls_.ca_file);
    if (!ca.ok()) return ca.status();
    files.ca = *std::move(ca);
  }
  if (files.cert.size() > kMaxPemBytes || files.key.size() > kMaxPemBytes ||
      files.ca.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(absl::StrCat(p, "tls_cert_file, ", p, "tls_key_file, ", p,
                                                   "tls_ca_file: each must be under ", kMaxPemBytes,
                                                   " bytes of PEM"));
  }
  return files;
}

absl::StatusOr<std::shared_ptr<ssl::context>> ServerSslContext::Build(const Files& files) const {
  const std::string& p = tls_.key_prefix;
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code error;
  // TLS 1.2 is the oldest version without known protocol breaks.
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       error);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  if (!error) context->use_certificate_chain(boost::asio::buffer(files.cert), error);
  if (error) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(p, "tls_cert_file ", tls_.cert_file,
                                                   ": not a usable PEM certificate chain (",
                                                   error.message(), ")"));
  }
  context->use_private_key(boost::asio::buffer(files.key), ssl::context::pem, error);
  if (error || SSL_CTX_check_private_key(context->native_handle()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(p, "tls_key_file ", tls_.key_file,
                                                   ": not the unencrypted PEM key of the ",
                                                   "certificate in ", p, "tls_cert_file"));
  }
  if (!files.ca.empty()) {
    context->add_certificate_authority(boost::asio::buffer(files.ca), error);
    if (error) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(
          p, "tls_ca_file ", tls_.ca_file, ": not a usable PEM CA bundle (", error.message(), ")"));
    }
  }
  if (tls_.client_auth == "require") {
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, error);
  }
  return context;
}

std::shared_ptr<ssl::context> ServerSslContext::Current() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now < next_check_) return current_;
  next_check_ = now + tls_.reload_interval;
  absl::StatusOr<Files> files = ReadFiles();
  if (!files.ok()) {
    logging::Warn("TLS files unreadable; the previous certificate is still served",
                  {{"error", std::string(files.status().message())}});
    return current_;
  }
  if (*files == loaded_) return current_;
  absl::StatusOr<std::shared_ptr<ssl::context>> built = Build(*files);
  if (!built.ok()) {
    logging::Warn(
        "renewed TLS files are not usable (yet); the previous certificate is still served",
        {{"error", std::string(built.status().message())}});
    return current_;
  }
  current_ = *std::move(built);
  loaded_ = *std::move(files);
  ++generation_;
  logging::Info("TLS certificate reloaded",
                {{"cert_file", tls_.cert_file}, {"generation", generation_}});
  return current_;
}

int ServerSslContext::generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

}  // namespace gyre::security
