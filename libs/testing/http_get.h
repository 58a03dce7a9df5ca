#ifndef GYRE_LIBS_TESTING_HTTP_GET_H_
#define GYRE_LIBS_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace gyre::testing {

// A completed HTTP response as a test sees it.
struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// Performs a blocking HTTP/1.1 GET against host:port with a real socket
// (Boost.Beast). Errors are Unavailable with the reason.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path);

}  // namespace gyre::testing

#endif  // GYRE_LIBS_TESTING_HTTP_GET_H_
