#ifndef GYRE_SERVICES_GATEWAY_HTTP_STREAM_H_
#define GYRE_SERVICES_GATEWAY_HTTP_STREAM_H_

#include <memory>
#include <utility>
#include <variant>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace gyre::gateway {

// One client connection of the gateway's port: plaintext TCP, or TLS over it
// once StartTls() is called. One type for both, so the HTTP session and the
// WebSocket subscribers are written once (a template per transport would
// double their code and their binary size).
//
// A Beast AsyncStream: Beast's HTTP and WebSocket operations run on it, and
// beast::get_lowest_layer() reaches the tcp_stream (timeouts, the socket).
class HttpStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  explicit HttpStream(boost::beast::tcp_stream tcp) : stream_(std::move(tcp)) {}
  HttpStream(HttpStream&&) = default;
  HttpStream& operator=(HttpStream&&) = default;

  // Wraps the connection in TLS with `context` (kept alive as long as the
  // connection); the server handshake is the caller's next step.
  void StartTls(std::shared_ptr<boost::asio::ssl::context> context) {
    context_ = std::move(context);
    // Moved out first: emplace destroys the current alternative before it
    // constructs the new one.
    boost::beast::tcp_stream tcp(std::move(std::get<boost::beast::tcp_stream>(stream_)));
    stream_.emplace<TlsStream>(std::move(tcp), *context_);
  }

  bool is_tls() const { return stream_.index() == 1; }
  TlsStream& tls() { return std::get<TlsStream>(stream_); }

  executor_type get_executor() { return next_layer().get_executor(); }

  // The TCP stream under TLS, or the stream itself.
  boost::beast::tcp_stream& next_layer() {
    return is_tls() ? tls().next_layer() : std::get<boost::beast::tcp_stream>(stream_);
  }

  template <class MutableBufferSequence, class ReadHandler>
  void async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    if (is_tls()) {
      tls().async_read_some(buffers, std::forward<ReadHandler>(handler));
    } else {
      std::get<boost::beast::tcp_stream>(stream_).async_read_some(
          buffers, std::forward<ReadHandler>(handler));
    }
  }

  template <class ConstBufferSequence, class WriteHandler>
  void async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    if (is_tls()) {
      tls().async_write_some(buffers, std::forward<WriteHandler>(handler));
    } else {
      std::get<boost::beast::tcp_stream>(stream_).async_write_some(
          buffers, std::forward<WriteHandler>(handler));
    }
  }

  // WebSocket close: TLS close_notify then TCP shutdown, as Beast does for
  // each transport.
  friend void teardown(boost::beast::role_type role, HttpStream& stream,
                       boost::system::error_code& error) {
    using boost::beast::websocket::teardown;
    if (stream.is_tls()) {
      teardown(role, stream.tls(), error);
    } else {
      teardown(role, std::get<boost::beast::tcp_stream>(stream.stream_).socket(), error);
    }
  }
  template <class TeardownHandler>
  friend void async_teardown(boost::beast::role_type role, HttpStream& stream,
                             TeardownHandler&& handler) {
    using boost::beast::websocket::async_teardown;
    if (stream.is_tls()) {
      async_teardown(role, stream.tls(), std::forward<TeardownHandler>(handler));
    } else {
      async_teardown(role, std::get<boost::beast::tcp_stream>(stream.stream_),
                     std::forward<TeardownHandler>(handler));
    }
  }

 private:
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::variant<boost::beast::tcp_stream, TlsStream> stream_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_HTTP_STREAM_H_
