#ifndef GYRE_SERVICES_GATEWAY_HTTP_SERVER_H_
#define GYRE_SERVICES_GATEWAY_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "libs/security/server_ssl_context.h"
#include "services/gateway/http_stream.h"

namespace gyre::gateway {

// Takes over the connection of a WebSocket upgrade request (the original
// request is needed to complete the handshake).
using WebSocketAcceptor = std::function<void(
    HttpStream stream, boost::beast::http::request<boost::beast::http::string_body> request)>;

// An HTTP request as handlers see it: body already read and size-checked,
// header names lower-cased.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. "/api/v1/executions?page_size=10"
  std::string body;
  absl::flat_hash_map<std::string, std::string> headers;  // lower-case names
  // Set for a WebSocket upgrade request: hands the connection to the
  // acceptor (instead of answering through the responder). Callable from
  // any thread, once.
  std::function<void(WebSocketAcceptor)> upgrade;

  // The header's value, empty when absent.
  absl::string_view Header(absl::string_view lower_case_name) const {
    auto it = headers.find(lower_case_name);
    return it == headers.end() ? absl::string_view() : absl::string_view(it->second);
  }
};

// What a handler answers.
struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Sends the reply of one request. Callable from any thread, exactly once;
// the write happens on the connection's strand.
using HttpResponder = std::function<void(HttpReply)>;

// Answers one request. Runs on an I/O thread and must not block there:
// backend calls are started asynchronously and `respond` is called from
// their completion (any thread).
using HttpHandler = std::function<void(HttpRequest request, HttpResponder respond)>;

// An asynchronous HTTP/1.1 server on Boost.Beast with keep-alive, in
// plaintext or, with a TLS context, HTTPS (and WSS) only: a plaintext request
// on a TLS port is answered 400 in plaintext, saying so, and closed.
//
// Bounds every input: request header and body sizes, the time to receive a
// request (read timeout) and to wait for the next one (idle timeout), the
// number of open connections (past it, new ones get 503 and are closed).
// A connection has at most one call in flight: the next request is read only
// once the previous one is answered (no pipelining).
//
// Thread-safety: Start() and Stop() are called from one controlling thread;
// handlers run on the I/O threads.
class HttpServer {
 public:
  struct Options {
    std::string address = "0.0.0.0:8080";  // port 0 picks a free port
    int threads = 2;
    size_t max_body_bytes = 4 << 20;
    size_t max_header_bytes = 16 << 10;
    int read_timeout_seconds = 30;  // to receive one whole request
    int idle_timeout_seconds = 60;  // between requests on a keep-alive connection
    int max_connections = 10000;
    // Set: every connection is TLS, with the context current at its accept
    // (a renewed certificate is served to new connections).
    std::shared_ptr<security::ServerSslContext> tls;
  };

  HttpServer(Options options, HttpHandler handler);
  ~HttpServer();

  // Binds and starts the I/O threads. Unavailable when the address cannot be
  // bound, InvalidArgument when it is not host:port.
  absl::Status Start();
  // Stops accepting, closes connections and joins the I/O threads.
  void Stop();

  int port() const { return port_; }
  int open_connections() const { return open_connections_->load(std::memory_order_relaxed); }

 private:
  void Accept();

  Options options_;
  HttpHandler handler_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  std::shared_ptr<std::atomic<int>> open_connections_ = std::make_shared<std::atomic<int>>(0);
  int port_ = 0;
};

// Renders an error in the API's JSON error shape:
// {"error":{"code":404,"status":"NOT_FOUND","message":"...","details":{...}}}.
// `details_json` is a JSON value (object) or empty for none. With an explicit
// HTTP status, for answers google.rpc.Code's mapping does not give (405 for a
// method, 413 for a body, 415, 422 for an invalid definition).
HttpReply JsonError(int http_status, absl::StatusCode code, absl::string_view message,
                    absl::string_view details_json = "");
// A domain error, its HTTP status from the one shared mapping
// (libs/common/status_mapping.h: ToHttpStatusCode).
HttpReply JsonError(const absl::Status& status);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_HTTP_SERVER_H_
