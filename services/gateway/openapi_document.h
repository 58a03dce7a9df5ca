#ifndef GYRE_SERVICES_GATEWAY_OPENAPI_DOCUMENT_H_
#define GYRE_SERVICES_GATEWAY_OPENAPI_DOCUMENT_H_

#include "absl/strings/string_view.h"

namespace gyre::gateway {

// The OpenAPI 3 description of the REST API: services/gateway/openapi.json,
// compiled in (tests/gateway_test checks it against the routes the server
// has and the responses it sends).
absl::string_view OpenApiDocument();

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_OPENAPI_DOCUMENT_H_
