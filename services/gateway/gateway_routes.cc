#include "services/gateway/gateway_routes.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gyre::gateway {

HttpReply RouteGatewayRequest(const HttpRequest& request) {
  const absl::string_view path =
      absl::string_view(request.target).substr(0, request.target.find('?'));
  if (path == "/healthz" || path == "/readyz") {
    if (request.method != "GET" && request.method != "HEAD") {
      return JsonError(405, absl::StatusCode::kInvalidArgument,
                       absl::StrCat("method ", request.method, " not allowed on ", path));
    }
    return HttpReply{200, "application/json", "{\"status\":\"ok\"}"};
  }
  if (absl::StartsWith(path, "/v1/")) {
    return JsonError(absl::UnimplementedError(absl::StrCat(
        request.method, " ", path, " is not implemented yet in this version of Gyre")));
  }
  return JsonError(absl::NotFoundError(absl::StrCat("no route for ", path)));
}

}  // namespace gyre::gateway
