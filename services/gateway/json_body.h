#ifndef GYRE_SERVICES_GATEWAY_JSON_BODY_H_
#define GYRE_SERVICES_GATEWAY_JSON_BODY_H_

#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gyre::gateway {

// Renders a proto message in the canonical proto3 JSON mapping, with the
// proto field names (snake_case) as the whole REST API writes them.
// Printed by reflection: Debian 12's protobuf (3.21) prints JSON by
// serializing to binary and converting it through google.protobuf.Type
// descriptors rebuilt on every call, which was a quarter of the gateway's
// CPU on GET /executions/{id} (bench/README.md). Rare well-known types
// (Struct, Any, wrappers, ...) are still printed by the library; the
// output parses to the same JSON as LibraryToJson's, its strings escaped
// byte for byte as the library escapes them (json_body_test).
std::string ToJson(const google::protobuf::Message& message);

// The same by protobuf's own printer: the reference ToJson is tested
// against.
std::string LibraryToJson(const google::protobuf::Message& message);

// Parses a request body in the canonical mapping (either field-name style)
// into `message`. InvalidArgument says where the body is wrong; unknown
// fields are rejected, so a misspelled option is not silently dropped.
absl::Status FromJson(absl::string_view json, google::protobuf::Message* message);

// `value` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view value);

}  // namespace gyre::gateway

#endif  // GYRE_SERVICES_GATEWAY_JSON_BODY_H_
