#ifndef GYRE_LIBS_TESTING_HTTP_GET_H_
#define GYRE_LIBS_TESTING_HTTP_GET_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace gyre::testing {

// A completed HTTP response as a test sees it.
struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // as received

  // The first header named `name` (case-insensitive), empty when absent.
  std::string Header(const std::string& name) const;
};

// Performs a blocking HTTP/1.1 GET against host:port with a real socket
// (Boost.Beast). Errors are Unavailable with the reason.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path);

// Performs one blocking HTTP/1.1 request with any method, headers and body
// over a new connection. Errors are Unavailable with the reason.
absl::StatusOr<HttpResponse> HttpCall(
    const std::string& host, int port, const std::string& method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body = "");

// The value of one sample (e.g. `name{label="x"}`) in the Prometheus text
// served at 127.0.0.1:`port`/metrics, or -1 when unreachable or absent.
double MetricSample(int port, const std::string& sample);

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_HTTP_GET_H_
