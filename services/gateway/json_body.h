#ifndef GYRE_SERVICES_GATEWAY_JSON_BODY_H_
#define GYRE_SERVICES_GATEWAY_JSON_BODY_H_

#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre::gateway {

// Renders a proto message in the canonical proto3 JSON mapping, with the
// proto field names (snake_case) as the whole REST API writes them.
std::string ToJson(const google::protobuf::Message& message);

// Parses a request body in the canonical mapping (either field-name style)
// into `message`. InvalidArgument says where the body is wrong; unknown
// fields are rejected, so a misspelled option is not silently dropped.
absl::Status FromJson(absl::string_view json, google::protobuf::Message* message);

// `value` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view value);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_JSON_BODY_H_
