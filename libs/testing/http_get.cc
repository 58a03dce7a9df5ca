#include "libs/testing/http_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gyre::testing {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

std::string HttpResponse::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

absl::StatusOr<HttpResponse> HttpCall(
    const std::string& host, int port, const std::string& method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body) {
  boost::asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code error;
  const auto endpoints = resolver.resolve(host, std::to_string(port), error);
  if (!error) stream.connect(endpoints, error);
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, host);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  if (!error) http::write(stream, request, error);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  if (!error) http::read(stream, buffer, parser, error);
  // A server may answer (413) and close before reading the whole body: the
  // write then fails, but the answer is there to read.
  if (error && error != http::error::end_of_stream && !parser.is_header_done()) {
    beast::error_code read_error;
    http::read(stream, buffer, parser, read_error);
    if (!read_error) error = {};
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat(method, " http://", host, ":", port, target, ": ", error.message()));
  }
  http::response<http::string_body> response = parser.release();
  HttpResponse result{static_cast<int>(response.result_int()),
                      std::string(response[http::field::content_type]),
                      response.body(),
                      {}};
  for (const auto& field : response) {
    result.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, error);
  return result;
}

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
                      std::string(response[http::field::content_type]),
                      response.body(),
                      {}};
}

double MetricSample(int port, const std::string& sample) {
  absl::StatusOr<HttpResponse> response = HttpGet("127.0.0.1", port, "/metrics");
  if (!response.ok()) return -1;
  // Samples start a line; "# HELP name ..." lines must not match.
  const std::string prefix = "\n" + sample + " ";
  const size_t at = response->body.find(prefix);
  if (at == std::string::npos) return -1;
  const size_t start = at + prefix.size();
  double value = -1;
  if (!absl::SimpleAtod(response->body.substr(start, response->body.find('\n', start) - start),
                        &value)) {
    return -1;
  }
  return value;
}

}  // namespace gyre::testing
