#ifndef GYRE_SERVICES_GATEWAY_ROUTE_TABLE_H_
#define GYRE_SERVICES_GATEWAY_ROUTE_TABLE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/gateway/api_key_authenticator.h"
#include "services/gateway/http_server.h"

namespace gyre::gateway {

// One call of the REST API, from routing to reply. Shared by the
// asynchronous steps of a handler (a backend call's completion holds it).
struct ApiCall {
  HttpRequest request;
  // Path parameters by template name ("id" for /workflows/{id}); decoded.
  absl::flat_hash_map<std::string, std::string> params;
  // Query parameters, decoded; a repeated name keeps every value in order.
  absl::flat_hash_map<std::string, std::vector<std::string>> query;
  Principal principal;
  std::string request_id;
  std::string route;  // the template, e.g. "/api/v1/workflows/{id}", for metrics and logs
  HttpResponder respond;

  // The first value of query parameter `name`, empty when absent.
  std::string Query(absl::string_view name) const;
};

using ApiHandler = std::function<void(std::shared_ptr<ApiCall> call)>;

// A REST route: method and path template, with the least role that may
// call it.
struct Route {
  std::string method;
  std::string path_template;  // "/api/v1/executions/{id}/tasks/{task}/logs"
  Role min_role = Role::kViewer;
  ApiHandler handler;
};

// Finds the route of a request by method and path. Templates are matched
// segment by segment; "{name}" matches one non-empty segment. Routes are
// added at start, then only read: safe from any number of threads.
class RouteTable {
 public:
  void Add(Route route);

  struct Match {
    const Route* route = nullptr;
    absl::flat_hash_map<std::string, std::string> params;
  };
  // NotFound when no template matches the path; FailedPrecondition (405 to
  // the caller, with the allowed methods in the message) when some do but
  // not with this method.
  absl::StatusOr<Match> Find(absl::string_view method,
                             const std::vector<std::string>& segments) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  struct Compiled {
    std::vector<std::string> segments;  // "{name}" for a parameter
  };
  std::vector<Route> routes_;
  std::vector<Compiled> compiled_;
};

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_ROUTE_TABLE_H_
