#include "services/gateway/http_server.h"

#include <optional>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/json_escape.h"
#include "libs/common/status_mapping.h"
#include "libs/logging/logger.h"

namespace gyre::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// How long a TLS close waits for the client's close_notify.
constexpr int kTlsShutdownSeconds = 5;

// One client connection: read a request, answer it, repeat while keep-alive.
// Everything runs on the connection's strand; the handler's responder posts
// back onto it. Owned by the shared pointers held by pending operations.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, const HttpServer::Options& options, const HttpHandler& handler,
              std::shared_ptr<std::atomic<int>> open_connections)
      : stream_(beast::tcp_stream(std::move(socket))),
        options_(options),
        handler_(handler),
        open_connections_(std::move(open_connections)) {}
  ~HttpSession() { open_connections_->fetch_sub(1, std::memory_order_relaxed); }

  void Start() {
    if (options_.tls == nullptr) return ReadHeader();
    // A TLS port: the first bytes tell a TLS ClientHello from a plaintext
    // request, which is read and answered (not dropped) so the client
    // learns why.
    lowest().expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    beast::async_detect_ssl(lowest(), buffer_,
                            [self = shared_from_this()](beast::error_code error, bool is_tls) {
                              if (error) return self->Close();
                              if (!is_tls) {
                                self->refuse_plaintext_ = true;
                                return self->ReadHeader();
                              }
                              self->Handshake();
                            });
  }

  // Answers 503 and closes: the server is at its connection limit. The
  // request is read first (bounded by the read timeout): over TLS the
  // answer needs the handshake anyway, and closing a socket with an unread
  // request resets it, which can destroy the answer before the client
  // reads it.
  void Refuse() {
    at_limit_ = true;
    Start();
  }

 private:
  beast::tcp_stream& lowest() { return stream_.next_layer(); }

  void Handshake() {
    stream_.StartTls(options_.tls->Current());
    stream_.tls().async_handshake(
        asio::ssl::stream_base::server, buffer_.data(),
        // The default argument works around Boost 1.81's constraint on the
        // buffered handshake, which checks for the unbuffered signature.
        [self = shared_from_this()](beast::error_code error, size_t used = 0) {
          // An untrusting client or a failed handshake: nothing to answer.
          if (error) {
            logging::Debug("TLS handshake failed", {{"error", error.message()}});
            return self->Close();
          }
          self->buffer_.consume(used);
          self->ReadHeader();
        });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    // Waiting for the next request of a keep-alive connection.
    lowest().expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code error, size_t) {
                              if (error) return self->OnReadError(error);
                              self->ReadBody();
                            });
  }

  void ReadBody() {
    lowest().expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, size_t) {
                       if (error) return self->OnReadError(error);
                       self->Dispatch();
                     });
  }

  void OnReadError(beast::error_code error) {
    if (error == http::error::body_limit) {
      Reply(JsonError(413, absl::StatusCode::kResourceExhausted,
                      absl::StrCat("request body exceeds the limit of ", options_.max_body_bytes,
                                   " bytes")),
            /*keep_alive=*/false);
      return;
    }
    if (error == http::error::header_limit) {
      Reply(JsonError(431, absl::StatusCode::kResourceExhausted,
                      absl::StrCat("request headers exceed the limit of ",
                                   options_.max_header_bytes, " bytes")),
            /*keep_alive=*/false);
      return;
    }
    // end_of_stream, timeout, a reset or a malformed request: nothing
    // useful can be answered on this connection.
    Close();
  }

  void Dispatch() {
    if (at_limit_) {
      Reply(JsonError(503, absl::StatusCode::kUnavailable,
                      absl::StrCat("the gateway is at its limit of ", options_.max_connections,
                                   " open connections; retry later")),
            /*keep_alive=*/false);
      return;
    }
    if (refuse_plaintext_) {
      Reply(JsonError(400, absl::StatusCode::kInvalidArgument,
                      "this port serves HTTPS only: a plaintext HTTP request is refused; use "
                      "https:// (wss:// for WebSockets)"),
            /*keep_alive=*/false);
      return;
    }
    auto request = std::make_shared<http::request<http::string_body>>(parser_->release());
    lowest().expires_never();  // the handler's backend call has its own deadline
    HttpRequest incoming;
    incoming.method = std::string(request->method_string());
    incoming.target = std::string(request->target());
    incoming.body = std::move(request->body());
    for (const auto& field : *request) {
      incoming.headers[absl::AsciiStrToLower(absl::string_view(
          field.name_string().data(), field.name_string().size()))] = std::string(field.value());
    }
    const bool keep_alive = request->keep_alive();
    auto strand = stream_.get_executor();
    if (websocket::is_upgrade(*request)) {
      incoming.upgrade = [self = shared_from_this(), strand, request](WebSocketAcceptor accept) {
        asio::post(strand, [self, request, accept = std::move(accept)]() mutable {
          self->lowest().expires_never();
          accept(std::move(self->stream_), std::move(*request));
        });
      };
    }
    handler_(std::move(incoming), [self = shared_from_this(), strand, keep_alive](HttpReply reply) {
      asio::post(strand, [self, keep_alive, reply = std::move(reply)]() mutable {
        self->Reply(std::move(reply), keep_alive);
      });
    });
  }

  void Reply(HttpReply reply, bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), 11);
    response->set(http::field::server, "gyre-gateway");
    if (!reply.content_type.empty()) response->set(http::field::content_type, reply.content_type);
    for (auto& [name, value] : reply.headers) response->set(name, value);
    response->keep_alive(keep_alive);
    response->body() = std::move(reply.body);
    response->prepare_payload();
    lowest().expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code error, size_t) {
                        if (error || !response->keep_alive()) {
                          self->Close();
                        } else {
                          self->ReadHeader();
                        }
                      });
  }

  void Close() {
    if (stream_.is_tls() && !tls_closing_) {
      // close_notify first, so the client knows the response is complete;
      // bounded by the write timeout set last.
      tls_closing_ = true;
      lowest().expires_after(std::chrono::seconds(kTlsShutdownSeconds));
      stream_.tls().async_shutdown(
          [self = shared_from_this()](beast::error_code) { self->Close(); });
      return;
    }
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  HttpStream stream_;
  bool refuse_plaintext_ = false;
  bool at_limit_ = false;
  bool tls_closing_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpServer::Options& options_;
  const HttpHandler& handler_;
  // Shared: a backend call may end after the server is gone.
  const std::shared_ptr<std::atomic<int>> open_connections_;
};

}  // namespace

HttpReply JsonError(int http_status, absl::StatusCode code, absl::string_view message,
                    absl::string_view details_json) {
  std::string body = absl::StrCat("{\"error\":{\"code\":", http_status, ",\"status\":\"",
                                  absl::StatusCodeToString(code), "\",\"message\":");
  AppendJsonString(message, &body);
  if (!details_json.empty()) absl::StrAppend(&body, ",\"details\":", details_json);
  body.append("}}");
  return HttpReply{http_status, "application/json", std::move(body), {}};
}

HttpReply JsonError(const absl::Status& status) {
  return JsonError(ToHttpStatusCode(status.code()), status.code(), status.message());
}

HttpServer::HttpServer(Options options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  const size_t colon = options_.address.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(options_.address).substr(colon + 1), &port) ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid HTTP address \"", options_.address, "\" (expected host:port)"));
  }
  beast::error_code error;
  const asio::ip::address host = asio::ip::make_address(options_.address.substr(0, colon), error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid HTTP address \"", options_.address, "\": ", error.message()));
  }
  const tcp::endpoint endpoint(host, static_cast<uint16_t>(port));
  acceptor_ = std::make_unique<tcp::acceptor>(asio::make_strand(io_));
  acceptor_->open(endpoint.protocol(), error);
  if (!error) acceptor_->set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor_->bind(endpoint, error);
  if (!error) acceptor_->listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    acceptor_.reset();
    return absl::UnavailableError(
        absl::StrCat("HTTP server cannot listen on ", options_.address, ": ", error.message()));
  }
  port_ = acceptor_->local_endpoint().port();
  Accept();
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { io_.run(); });
  return absl::OkStatus();
}

void HttpServer::Accept() {
  acceptor_->async_accept(
      asio::make_strand(io_), [this](beast::error_code error, tcp::socket socket) {
        if (error == asio::error::operation_aborted) return;
        if (!error) {
          const int open = open_connections_->fetch_add(1, std::memory_order_relaxed) + 1;
          auto session = std::make_shared<HttpSession>(std::move(socket), options_, handler_,
                                                       open_connections_);
          if (open > options_.max_connections) {
            session->Refuse();
          } else {
            session->Start();
          }
        }
        Accept();
      });
}

void HttpServer::Stop() {
  if (acceptor_ != nullptr) {
    asio::post(acceptor_->get_executor(), [this] {
      beast::error_code ignored;
      acceptor_->close(ignored);
    });
  }
  io_.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  acceptor_.reset();
}

}  // namespace gyre::gateway
