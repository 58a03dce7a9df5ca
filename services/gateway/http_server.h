#ifndef GYRE_SERVICES_GATEWAY_HTTP_SERVER_H_
#define GYRE_SERVICES_GATEWAY_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "absl/status/status.h"

namespace gyre::gateway {

// An HTTP request as handlers see it (body already read and size-checked).
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. "/v1/executions?page_size=10"
  std::string body;
};

// What a handler answers.
struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// Answers one request. Runs on the server's I/O threads: it must not block
// for long (calls to backends should be asynchronous or short).
using HttpHandler = std::function<HttpReply(const HttpRequest&)>;

// A small asynchronous HTTP/1.1 server on Boost.Beast with keep-alive.
// Bounds every input: request header and body sizes, idle time. Thread-safe;
// Start() and Stop() are called from one controlling thread.
class HttpServer {
 public:
  struct Options {
    std::string address = "0.0.0.0:8080";  // port 0 picks a free port
    int threads = 2;
    size_t max_body_bytes = 4 << 20;
    int idle_timeout_seconds = 60;
  };

  HttpServer(Options options, HttpHandler handler);
  ~HttpServer();

  // Binds and starts the I/O threads. Unavailable when the address cannot be
  // bound, InvalidArgument when it is not host:port.
  absl::Status Start();
  // Stops accepting, closes connections and joins the I/O threads.
  void Stop();

  int port() const { return port_; }

 private:
  void Accept();

  Options options_;
  HttpHandler handler_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

// Renders an error body in the API's JSON error shape:
// {"error":{"code":404,"status":"NOT_FOUND","message":"..."}}.
// With an explicit HTTP status, for answers google.rpc.Code's mapping does
// not give (405 for a method, 413 for a body).
HttpReply JsonError(int http_status, absl::StatusCode code, absl::string_view message);
// A domain error, its HTTP status from the one shared mapping
// (libs/common/status_mapping.h: ToHttpStatusCode).
HttpReply JsonError(const absl::Status& status);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_HTTP_SERVER_H_
