#include "libs/testing/websocket_client.h"

#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace gyre::testing {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

struct WebSocketClient::Impl {
  boost::asio::io_context io;
  websocket::stream<tcp::socket> ws{io};
  beast::flat_buffer buffer;
};

WebSocketClient::WebSocketClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebSocketClient::~WebSocketClient() { Drop(); }

absl::StatusOr<std::unique_ptr<WebSocketClient>> WebSocketClient::Connect(
    const std::string& host, int port, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers, int receive_buffer_bytes) {
  auto impl = std::make_unique<Impl>();
  beast::error_code error;
  tcp::socket& socket = impl->ws.next_layer();
  socket.open(tcp::v4(), error);
  if (!error && receive_buffer_bytes > 0) {
    socket.set_option(boost::asio::socket_base::receive_buffer_size(receive_buffer_bytes), error);
  }
  if (!error) {
    socket.connect(tcp::endpoint(boost::asio::ip::make_address(host), static_cast<uint16_t>(port)),
                   error);
  }
  if (error) {
    return absl::UnavailableError(absl::StrCat("connect ", host, ":", port, ": ", error.message()));
  }
  impl->ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& [name, value] : headers) req.set(name, value);
  }));
  websocket::response_type response;
  impl->ws.handshake(response, absl::StrCat(host, ":", port), target, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat("handshake ", target, ": HTTP ",
                                                      response.result_int(), " ", error.message(),
                                                      " ", response.body()));
  }
  impl->ws.read_message_max(16 << 20);
  return std::unique_ptr<WebSocketClient>(new WebSocketClient(std::move(impl)));
}

absl::StatusOr<std::string> WebSocketClient::Read(absl::Duration timeout) {
  if (impl_ == nullptr) return absl::FailedPreconditionError("dropped");
  // Asynchronous, so the timeout holds (asio's blocking read ignores
  // SO_RCVTIMEO: it polls again without a limit).
  std::optional<beast::error_code> result;
  impl_->buffer.clear();
  impl_->ws.async_read(impl_->buffer,
                       [&result](beast::error_code error, size_t) { result = error; });
  impl_->io.restart();
  impl_->io.run_for(absl::ToChronoMilliseconds(timeout));
  if (!result.has_value()) {
    // A cancelled read leaves a WebSocket stream unusable: drop it.
    beast::error_code ignored;
    impl_->ws.next_layer().cancel(ignored);
    impl_->io.restart();
    impl_->io.run();
    Drop();
    return absl::UnavailableError(
        absl::StrCat("read: no message within ", absl::FormatDuration(timeout)));
  }
  const beast::error_code error = *result;
  if (error == websocket::error::closed) {
    close_code_ = impl_->ws.reason().code;
    return absl::OutOfRangeError(
        absl::StrCat("close ", close_code_, ": ", std::string(impl_->ws.reason().reason.c_str())));
  }
  if (error) return absl::UnavailableError(absl::StrCat("read: ", error.message()));
  return beast::buffers_to_string(impl_->buffer.data());
}

void WebSocketClient::Drop() {
  if (impl_ == nullptr) return;
  beast::error_code ignored;
  impl_->ws.next_layer().close(ignored);
  impl_.reset();
}

}  // namespace gyre::testing
