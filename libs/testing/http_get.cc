#include "libs/testing/http_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"

namespace gyre::testing {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path) {
  boost::asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code error;
  const auto endpoints = resolver.resolve(host, std::to_string(port), error);
  if (!error) stream.connect(endpoints, error);
  http::request<http::string_body> request{http::verb::get, path, 11};
  request.set(http::field::host, host);
  if (!error) http::write(stream, request, error);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  if (!error) http::read(stream, buffer, response, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("GET http://", host, ":", port, path, ": ", error.message()));
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, error);
  return HttpResponse{static_cast<int>(response.result_int()),
                      std::string(response[http::field::content_type]), response.body()};
}

}  // namespace gyre::testing
