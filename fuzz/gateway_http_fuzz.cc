// The gateway's HTTP request handling from the first byte an unauthenticated
// client sends (issue 23): arbitrary bytes through Beast's request parser with
// the gateway's header and body limits (as HttpServer reads a request), then,
// for a request that parses, RestApi::Handle (CORS preflight, the target's
// URL parsing, the WebSocket ?access_token= path, credential parsing: API
// key, Basic, Bearer JWT) up to the refusal an unknown credential gets, and
// the route table's match of its path plus the JSON body decoder the routes
// use. No backend is reached: no credential the fuzzer can guess is valid.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "absl/strings/ascii.h"
#include "gyre/v1/orchestrator_service.pb.h"
#include "services/gateway/authenticator.h"
#include "services/gateway/json_body.h"
#include "services/gateway/rest_api.h"

namespace {

namespace http = boost::beast::http;
using ::gyre::gateway::Authenticator;
using ::gyre::gateway::RestApi;

// A JWT secret and API key the inputs do not know.
constexpr char kKey[] = "gyk_gateway-http-fuzz-unguessable-key-0123456789";
constexpr char kJwtSecret[] = "gateway-http-fuzz-hs256-secret-of-32-bytes-or-more";

RestApi& Api() {
  static RestApi* api = [] {
    auto authenticator = std::make_shared<Authenticator>();
    authenticator->mutable_api_keys().AddKey(kKey, {"fuzz", gyre::gateway::Role::kAdmin, ""});
    gyre::gateway::JwtAuthenticator::Options jwt;
    jwt.hs256_secret = kJwtSecret;
    auto verifier = gyre::gateway::JwtAuthenticator::Create(jwt);
    if (!verifier.ok()) __builtin_trap();
    authenticator->set_jwt(*std::move(verifier));
    RestApi::Options options;
    options.cors_origins = {"https://ui.example"};
    // Never called: every request is refused before a backend call.
    return new RestApi(
        grpc::CreateChannel("unix:/nonexistent/gyre-fuzz.sock", grpc::InsecureChannelCredentials()),
        std::move(authenticator), options);
  }();
  return *api;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  RestApi& api = Api();
  http::request_parser<http::string_body> parser;
  parser.eager(true);
  parser.header_limit(16 << 10);  // HttpServer's default max_header_bytes
  parser.body_limit(64 << 10);
  boost::beast::error_code error;
  const size_t used = parser.put(boost::asio::buffer(data, size), error);
  (void)used;
  if (!error && !parser.is_done()) parser.put_eof(error);
  if (error || !parser.is_done()) return 0;
  const http::request<http::string_body>& message = parser.get();

  gyre::gateway::HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.body = message.body();
  for (const auto& field : message) {
    request.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
        std::string(field.value());
  }
  // The route and body parts the handlers use.
  if (auto url = boost::urls::parse_origin_form(request.target)) {
    std::vector<std::string> segments;
    for (auto segment : url->segments()) segments.emplace_back(segment);
    (void)api.routes().Find(request.method, segments);
  }
  gyre::v1::StartExecutionRequest start;
  (void)gyre::gateway::FromJson(request.body, &start);
  bool answered = false;
  api.Handle(std::move(request), [&answered](gyre::gateway::HttpReply reply) {
    // Refused before any backend call: synchronously, and never 2xx for a
    // request that needs credentials.
    answered = true;
    (void)reply;
  });
  if (!answered) __builtin_trap();
  return 0;
}
