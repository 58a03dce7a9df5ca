#ifndef GYRE_SERVICES_GATEWAY_GATEWAY_ROUTES_H_
#define GYRE_SERVICES_GATEWAY_GATEWAY_ROUTES_H_

#include "services/gateway/http_server.h"

namespace gyre::gateway {

// The gateway's REST surface. Today: liveness (/healthz) and readiness
// (/readyz); every /v1/ API path answers 501 with a JSON error until the
// REST API is built, so clients learn plainly what is missing.
HttpReply RouteGatewayRequest(const HttpRequest& request);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_GATEWAY_ROUTES_H_
